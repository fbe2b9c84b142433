/**
 * The Prometheus alert rules (docker/prometheus/alerts.yml): valid
 * (promtool check rules), unit-tested (promtool test rules, with a case
 * that fires each alert), reading only metrics faultline exports, and
 * loaded by the docker-compose Prometheus. And promtool check metrics on a
 * live scrape of a proxy that has every series.
 */
import t from 'tap'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { REPO, repoText, promqlMetricNames, parseVolume } from '../docker-files.js'
import { Metrics } from '../../src/metrics/metrics.js'
import { fetchText, needTool } from '../helpers.js'
import { run } from './tools.js'
import { startBusyProxy } from './workload.js'

const { path: promtool, skip } = needTool('promtool')

const rule = z.union([
  z.object({ record: z.string(), expr: z.string() }).loose(),
  z.object({ alert: z.string(), expr: z.string(), labels: z.object({ severity: z.enum(['page', 'ticket']) }).loose(), annotations: z.object({ summary: z.string(), description: z.string(), runbook: z.string() }).loose() }).loose()
])
const rules = z.object({ groups: z.array(z.object({ name: z.string(), rules: z.array(rule) })) }).parse(parseYaml(await repoText('docker/prometheus/alerts.yml')))
const unitTests = z.object({
  rule_files: z.array(z.string()),
  tests: z.array(z.object({
    alert_rule_test: z.array(z.object({ alertname: z.string(), eval_time: z.string(), exp_alerts: z.array(z.unknown()) })).optional()
  }).loose())
}).parse(parseYaml(await repoText('docker/prometheus/alerts.test.yml')))

const alerts = rules.groups.flatMap((g) => g.rules).flatMap((r) => 'alert' in r ? [r] : [])
const recorded = new Set(rules.groups.flatMap((g) => g.rules).flatMap((r) => 'record' in r ? [r.record] : []))

t.test('alerts cover the SLO burn, breaker, auth and retry budget', async (t) => {
  const names = alerts.map((a) => a.alert as string)
  for (const expected of ['FaultlineErrorBudgetBurnFast', 'FaultlineErrorBudgetBurnSlow', 'FaultlineBreakerOpen', 'FaultlineAuthGuardTripped', 'FaultlineAuthFailures', 'FaultlineRetryBudgetExhausted']) {
    t.ok(names.includes(expected), `${expected} is defined`)
  }
  t.equal(new Set(names).size, names.length, 'alert names are unique')
})

t.test('every alert and recording rule reads only metrics faultline exports (or recorded ones)', async (t) => {
  const exported = new Set((await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name))
  for (const r of rules.groups.flatMap((g) => g.rules)) {
    const names = promqlMetricNames(r.expr)
    t.ok(names.length > 0, `${'alert' in r ? r.alert : r.record}: selects something`)
    for (const name of names) t.ok(exported.has(name) || recorded.has(name), `${name} is exported or recorded`)
  }
})

t.test('every alert has a unit test in which it fires, and one in which it does not', async (t) => {
  t.same(unitTests.rule_files, ['alerts.yml'])
  const cases = unitTests.tests.flatMap((c) => c.alert_rule_test ?? [])
  for (const a of alerts) {
    const mine = cases.filter((c) => c.alertname === a.alert)
    t.ok(mine.some((c) => c.exp_alerts.length > 0), `${a.alert}: a case expects it to fire`)
    t.ok(mine.some((c) => c.exp_alerts.length === 0), `${a.alert}: a case expects it silent`)
  }
})

t.test('the docker-compose Prometheus loads the rules', async (t) => {
  const prometheus = z.object({ rule_files: z.array(z.string()) }).loose().parse(parseYaml(await repoText('docker/prometheus/prometheus.yml')))
  const compose = z.object({ services: z.record(z.string(), z.object({ volumes: z.array(z.string()).optional() }).loose()) }).loose().parse(parseYaml(await repoText('docker-compose.yml')))
  const mount = (compose.services.prometheus?.volumes ?? []).map(parseVolume).find((m) => m.source === './docker/prometheus/alerts.yml')
  t.ok(mount, 'alerts.yml is mounted into the prometheus container')
  t.ok(mount?.readOnly, 'read-only')
  t.ok(prometheus.rule_files.includes(mount?.target ?? '<unmounted>'), 'prometheus.yml lists the mounted file in rule_files')
})

t.test('promtool check config: the docker-compose prometheus.yml with its rule file', { skip }, async (t) => {
  // The compose file mounts alerts.yml at an absolute path; check a copy pointing at the repo's file.
  const dir = t.testdir({})
  const config = parseYaml(await repoText('docker/prometheus/prometheus.yml')) as { rule_files: string[] }
  config.rule_files = [join(REPO, 'docker/prometheus/alerts.yml')]
  await writeFile(join(dir, 'prometheus.yml'), JSON.stringify(config))
  const r = await run(promtool!, ['check', 'config', join(dir, 'prometheus.yml')])
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, new RegExp(`SUCCESS: ${alerts.length + recorded.size} rules found`), 'the rule file is loaded')
})

t.test('promtool check rules', { skip }, async (t) => {
  const r = await run(promtool!, ['check', 'rules', join(REPO, 'docker/prometheus/alerts.yml')])
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, new RegExp(`SUCCESS: ${alerts.length + recorded.size} rules found`))
})

t.test('promtool test rules (a unit test per alert)', { skip }, async (t) => {
  const r = await run(promtool!, ['test', 'rules', 'alerts.test.yml'], { cwd: join(REPO, 'docker/prometheus') })
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, /SUCCESS/)
})

t.test('promtool check metrics on a live scrape with every faultline series', { skip }, async (t) => {
  const busy = await startBusyProxy(t)
  const scrape = await fetchText(`${busy.proxy.adminUrl}/metrics`)
  t.equal(scrape.status, 200)
  for (const name of ['faultline_retries_total', 'faultline_breaker_transitions_total', 'faultline_cache_lookups_total', 'faultline_faults_injected_total', 'faultline_auth_guard_trips_total']) {
    t.match(scrape.body, new RegExp(`^${name}\\{`, 'm'), `the scrape has ${name} samples`)
  }
  const r = await run(promtool!, ['check', 'metrics'], { input: scrape.body })
  // promtool prints lint problems and exits non-zero when there are any.
  t.equal(r.code, 0, 'no lint problems')
  t.equal((r.stdout + r.stderr).trim(), '', 'promtool reports nothing')
})
