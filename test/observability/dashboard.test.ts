/**
 * Every PromQL expression on the Grafana dashboard, evaluated by a real
 * Prometheus that scrapes a real proxy under a workload with faults and
 * failures: each must succeed and return data. The dashboard variables
 * are resolved the way Grafana does, from their own label_values queries.
 * The same Prometheus loads docker/prometheus/alerts.yml, so the rules are
 * also checked by the server that will run them.
 */
import t from 'tap'
import { join } from 'node:path'
import { z } from 'zod'
import { REPO, repoText } from '../docker-files.js'
import { needTool } from '../helpers.js'
import { startBusyProxy } from './workload.js'
import { startPrometheus } from './prometheus-server.js'

const { path: prometheus, skip } = needTool('prometheus')

const dashboard = z.object({
  // A datasource variable's query is the plugin type (a string); a query variable's is an object.
  templating: z.object({ list: z.array(z.object({ name: z.string(), type: z.string(), query: z.union([z.string(), z.object({ query: z.string() }).loose()]) }).loose()) }),
  annotations: z.object({ list: z.array(z.object({ name: z.string(), expr: z.string().optional() }).loose()) }),
  panels: z.array(z.object({ title: z.string(), type: z.string(), targets: z.array(z.object({ refId: z.string(), expr: z.string() }).loose()).optional() }).loose())
}).loose().parse(JSON.parse(await repoText('docker/grafana/dashboards/faultline.json')))

/** A value inside a PromQL regex matcher string: regex-escaped, then string-escaped (as Grafana does). */
function regexValue (values: string[]): string {
  const escaped = values.map((v) => v.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&').replace(/\\/g, '\\\\'))
  return escaped.length === 1 ? escaped[0]! : `(${escaped.join('|')})`
}

/** Grafana's $__rate_interval: max(4 x scrape, interval + scrape); 15 s holds every sample of the short run, a late scrape too. */
const RATE_INTERVAL = '15s'

function substitute (expr: string, vars: Map<string, string>): string {
  let out = expr.replaceAll('$__rate_interval', RATE_INTERVAL).replaceAll('$__interval', '2s').replaceAll('$__range', '1m')
  for (const [name, value] of vars) out = out.replaceAll('${' + name + '}', value).replace(new RegExp(`\\$${name}\\b`, 'g'), value)
  return out
}

t.test('every dashboard panel query returns data from a real Prometheus', { skip, timeout: 180_000 }, async (t) => {
  const busy = await startBusyProxy(t)
  const server = await startPrometheus(t, prometheus!, {
    targets: [`127.0.0.1:${busy.proxy.faultline.adminPort}`],
    // Samples sooner: 12 scrapes take 3 s instead of 12 (the queries only need several samples per window).
    scrapeIntervalMs: 250,
    // The label a PodMonitor adds (docs/KUBERNETES.md) and docker/prometheus/prometheus.yml sets for compose.
    labels: { namespace: 'test-ns' },
    ruleFiles: [join(REPO, 'docker/prometheus/alerts.yml')]
  })

  // Traffic keeps flowing while Prometheus scrapes and while we query, so
  // every rate has increases inside its window. Bounded in rounds and time.
  let stop = false
  const started = Date.now()
  const traffic = (async () => {
    for (let i = 0; i < 2000 && !stop && Date.now() - started < 150_000; i++) await busy.round()
  })()
  t.teardown(async () => { stop = true; await traffic })

  // Wait for enough scrapes that a 15 s window holds several samples.
  let samples = 0
  for (let i = 0; i < 240 && samples < 12; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    const data = await server.api('/api/v1/query', { query: 'max(count_over_time(faultline_routes[1m]))' }) as { result: Array<{ value: [number, string] }> }
    samples = Number(data.result[0]?.value[1] ?? 0)
  }
  t.ok(samples >= 12, `Prometheus scraped the proxy ${samples} times`)

  // Variables, in order (each may depend on those before it), from their label_values() queries.
  const vars = new Map<string, string>()
  const allVars = new Map<string, string>()
  const queryVars = dashboard.templating.list.filter((v) => v.type !== 'datasource')
  t.same(dashboard.templating.list.filter((v) => v.type === 'datasource').map((v) => v.query), ['prometheus'], 'one datasource variable, of Prometheus data sources')
  t.same(queryVars.map((v) => v.name), ['namespace', 'job', 'instance', 'route', 'upstream'])
  await t.test('every dashboard variable\'s query returns values', async (t) => {
    for (const v of queryVars) {
      const query = typeof v.query === 'string' ? v.query : v.query.query
      const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(query)
      t.ok(m, `${v.name}: a label_values(metric, label) query`)
      if (!m) continue
      const values = await server.api(`/api/v1/label/${m[2]}/values`, { 'match[]': substitute(m[1]!, vars) }) as string[]
      t.ok(values.length > 0, `${v.name} has values: ${values.join(', ')}`)
      vars.set(v.name, regexValue(values))
      allVars.set(v.name, '.*')
    }
    t.equal(vars.get('namespace'), 'test-ns')
    t.equal(vars.get('job'), 'faultline', 'job: the scrape job (the service, under a PodMonitor)')
    t.match(vars.get('instance'), /^127\\\\\.0\\\\\.0\\\\\.1:\d+$/, 'instance: the scraped address, regex-escaped')
  })
  t.match(vars.get('route'), /shop/, 'the route variable lists the workload\'s routes')
  // 127.0.0.1 as a regex is 127\.0\.0\.1, and each backslash doubles inside a PromQL string.
  t.ok(vars.get('upstream')?.includes(String.raw`127\\.0\\.0\\.1:`), 'upstream values are regex-escaped like Grafana does')

  // The chaos-period annotations: valid PromQL; the workload's fault routes are injecting, so "Chaos on" has data.
  const annotations = dashboard.annotations.list.filter((a) => a.expr !== undefined)
  t.same(annotations.map((a) => a.name), ['Chaos on', 'Chaos stopped by kill switch or guardrail'])
  for (const a of annotations) {
    const data = await server.api('/api/v1/query', { query: substitute(a.expr!, allVars) }) as { result: Array<{ metric: Record<string, string>, value: [number, string] }> }
    if (a.name === 'Chaos on') {
      t.ok(data.result.length > 0, 'chaos-on annotation: the injecting routes')
      t.ok(data.result.every((r) => r.value[1] === '1' && r.metric.route !== undefined && r.metric.job !== undefined), 'each a route of a job, at 1')
    }
  }

  let queries = 0
  for (const panel of dashboard.panels) {
    for (const target of panel.targets ?? []) {
      for (const [label, bindings] of [['selected', vars], ['All', allVars]] as const) {
        const query = substitute(target.expr, bindings)
        queries++
        let data: { resultType: string, result: Array<{ metric: Record<string, string>, value: [number, string] }> } | undefined
        try {
          data = await server.api('/api/v1/query', { query }) as typeof data
        } catch (err) {
          t.fail(`${panel.title} ${target.refId} (${label}): ${(err as Error).message}`)
          continue
        }
        t.ok((data?.result.length ?? 0) > 0, `${panel.title} ${target.refId} (${label}): non-empty result`, { query })
        t.ok(data?.result.some((r) => Number.isFinite(Number(r.value[1]))), `${panel.title} ${target.refId} (${label}): a finite value`, { query, result: data?.result })
      }
    }
  }
  t.ok(queries >= 40, `${queries} panel queries evaluated`)

  // The alert rules load and evaluate without error in the real server.
  const rules = await server.api('/api/v1/rules') as { groups: Array<{ name: string, rules: Array<{ name: string, health: string, lastError?: string }> }> }
  const all = rules.groups.flatMap((g) => g.rules)
  t.ok(all.length >= 10, `${all.length} rules loaded`)
  for (let i = 0; i < 40 && all.some((r) => r.health === 'unknown'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    const again = await server.api('/api/v1/rules') as typeof rules
    all.splice(0, all.length, ...again.groups.flatMap((g) => g.rules))
  }
  for (const r of all) t.equal(r.health, 'ok', `rule ${r.name} evaluates: ${r.lastError ?? ''}`)
  t.equal(server.log().match(/level=error/g)?.length ?? 0, 0, 'Prometheus logged no errors')
})
