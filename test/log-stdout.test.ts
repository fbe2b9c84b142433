/**
 * The real stdout path of the logger (buffered, batched per event-loop
 * turn): every line arrives, in order, whether the process ends by a
 * graceful shutdown, an immediate process.exit() or a crash.
 */
import { spawn } from 'node:child_process'
import { createWriteStream, readFileSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { LOADER_ARGS, REPO as ROOT, sourceModule } from './repo.js'

/** Runs a snippet with src/log.ts's logger on a real stdout (a file); returns its lines. */
async function run (body: string): Promise<{ lines: string[], code: number | null }> {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-log-'))
  const file = join(dir, 'out.log')
  const out = createWriteStream(file)
  await new Promise((resolve) => out.on('open', resolve))
  const script = `import { createLogger } from ${JSON.stringify(sourceModule('src/log.ts'))}\nconst log = createLogger('info')\n${body}`
  const child = spawn(process.execPath, [...LOADER_ARGS, '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', out, 'ignore'] })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  out.close()
  return { lines: readFileSync(file, 'utf8').split('\n').filter(Boolean), code }
}

const numbered = (lines: string[]): number[] => lines.map((l) => (JSON.parse(l) as { n: number }).n)
const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

t.test('lines written across many turns, then a graceful end, all arrive in order', async (t) => {
  const { lines } = await run(`
    let n = 0
    await new Promise((resolve) => { const tick = () => { for (let i = 0; i < 50; i++) log.info({ n: n++ }, 'x'); if (n < 5000) setImmediate(tick); else resolve() }; tick() })
    log.flush()`)
  t.same(numbered(lines), upTo(5000))
})

t.test('process.exit() in the same turn as the last lines loses nothing', async (t) => {
  const { lines, code } = await run(`
    for (let n = 0; n < 2000; n++) log.info({ n }, 'x')
    process.exit(3)`)
  t.equal(code, 3)
  t.same(numbered(lines), upTo(2000))
})

t.test('a crash right after logging loses nothing', async (t) => {
  const { lines, code } = await run(`
    for (let n = 0; n < 300; n++) log.info({ n }, 'x')
    throw new Error('boom')`)
  t.equal(code, 1)
  t.same(numbered(lines), upTo(300))
})

t.test('a lone line shows up within the flush interval', async (t) => {
  const { lines } = await run(`
    log.info({ n: 0 }, 'x')
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    // Still running: what is in the file now was written by the timer, not at exit.
    const { readFileSync } = await import('node:fs')
    const seen = readFileSync('/proc/self/fd/1', 'utf8')
    process.stderr.write(seen)
    log.info({ n: seen.includes('"n":0') ? 1 : -1 }, 'x')`)
  t.same(numbered(lines), [0, 1])
})
