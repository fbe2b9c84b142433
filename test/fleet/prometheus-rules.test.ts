/**
 * The recording rules the fleet SLO source reads
 * (docker/prometheus/fleet-rules.yml): valid (promtool check rules),
 * unit-tested (promtool test rules), reading only metrics faultline
 * exports, loaded by the docker-compose Prometheus, and the only series
 * the default queries read.
 */
import t from 'tap'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { REPO, repoText, promqlMetricNames, parseVolume } from '../docker-files.js'
import { Metrics } from '../../src/metrics/metrics.js'
import { DEFAULT_FLEET_QUERIES } from '../../src/fleet/prometheus-schema.js'
import { needTool } from '../helpers.js'
import { run } from '../observability/tools.js'

const { path: promtool, skip } = needTool('promtool')

const rules = z.object({ groups: z.array(z.object({ name: z.string(), rules: z.array(z.object({ record: z.string(), expr: z.string() }).strict()) })) })
  .parse(parseYaml(await repoText('docker/prometheus/fleet-rules.yml')))
const recorded = new Set(rules.groups.flatMap((g) => g.rules.map((r) => r.record)))

t.test('the rules read only metrics faultline exports, and the default queries only recorded series', async (t) => {
  const exported = new Set((await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name))
  for (const r of rules.groups.flatMap((g) => g.rules)) {
    const names = promqlMetricNames(r.expr)
    t.ok(names.length > 0, `${r.record}: selects something`)
    // A histogram is exported under its base name; its series are _bucket, _sum and _count.
    for (const name of names) t.ok(exported.has(name) || exported.has(name.replace(/_bucket$/, '')), `${r.record}: ${name} is exported`)
    t.ok(/\bsum by \(namespace, job, route|max by \(namespace, job, route/.test(r.expr), `${r.record}: sums over instances, keeps namespace, job and route`)
  }
  for (const [figure, query] of Object.entries(DEFAULT_FLEET_QUERIES)) {
    const names = promqlMetricNames(query.replaceAll('$labels', 'route="x"'))
    t.ok(names.length > 0 && names.every((n) => recorded.has(n)), `default ${figure} query reads recorded series only: ${names.join(', ')}`)
    t.match(query, /\{\$labels\}/, `default ${figure} query is narrowed to the route and selector`)
  }
})

t.test('the docker-compose Prometheus loads fleet-rules.yml', async (t) => {
  const prometheus = z.object({ rule_files: z.array(z.string()) }).loose().parse(parseYaml(await repoText('docker/prometheus/prometheus.yml')))
  const compose = z.object({ services: z.record(z.string(), z.object({ volumes: z.array(z.string()).optional() }).loose()) }).loose().parse(parseYaml(await repoText('docker-compose.yml')))
  const mount = (compose.services.prometheus?.volumes ?? []).map(parseVolume).find((m) => m.source === './docker/prometheus/fleet-rules.yml')
  t.ok(mount?.readOnly, 'fleet-rules.yml is mounted read-only into the prometheus container')
  t.ok(prometheus.rule_files.includes(mount?.target ?? '<unmounted>'), 'prometheus.yml lists it in rule_files')
})

t.test('promtool check rules and check config', { skip }, async (t) => {
  const file = join(REPO, 'docker/prometheus/fleet-rules.yml')
  const r = await run(promtool!, ['check', 'rules', file])
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, new RegExp(`SUCCESS: ${recorded.size} rules found`))
  // The compose config with both rule files, at the repo's paths.
  const dir = t.testdir({})
  const config = parseYaml(await repoText('docker/prometheus/prometheus.yml')) as { rule_files: string[] }
  config.rule_files = config.rule_files.map((f) => join(REPO, 'docker/prometheus', f.split('/').pop()!))
  await writeFile(join(dir, 'prometheus.yml'), JSON.stringify(config))
  const c = await run(promtool!, ['check', 'config', join(dir, 'prometheus.yml')])
  t.equal(c.code, 0, c.stdout + c.stderr)
  t.match(c.stdout, /fleet-rules\.yml/)
})

t.test('promtool test rules: the fleet figures of three replicas, the client\'s view', { skip }, async (t) => {
  const r = await run(promtool!, ['test', 'rules', 'fleet-rules.test.yml'], { cwd: join(REPO, 'docker/prometheus') })
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, /SUCCESS/)
})
