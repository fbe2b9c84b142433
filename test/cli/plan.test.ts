/**
 * `faultline plan`: the intent planner's table and JSON, printed by the
 * CLI for config/demo.yaml. (The planner itself is tested directly in
 * test/intent/planner.test.ts; this file spawns the CLI, which takes
 * seconds, so the planner's own tests stay fast enough to mutate.)
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { CLI } from '../repo.js'

const run = promisify(execFile)

t.test('faultline plan prints the table, or JSON', async (t) => {
  const cli = CLI
  const file = join(import.meta.dirname, '..', '..', 'config', 'demo.yaml')
  const text = await run(process.execPath, [...cli, 'plan', file])
  t.match(text.stdout, /route catalog-protected: critical, protects availability; SLO p99 <= 250 ms/)
  t.match(text.stdout, /fault probability 0\.\.12\.00%/)
  t.match(text.stdout, /abort-503/)
  const json = JSON.parse((await run(process.execPath, [...cli, 'plan', file, '--json'])).stdout) as Array<{ route: string, mix: unknown[], intensity: { maxProbability: number } }>
  t.same(json.map((r) => r.route), ['catalog-protected', 'catalog-fragile'])
  t.equal(json[0]!.intensity.maxProbability, 0.12)
  t.equal(json[0]!.mix.length, 5)
})
