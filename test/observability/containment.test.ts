/**
 * Containment in what people and alerts read (issue 12): a chaos-only run
 * against a healthy upstream. /report judges the upstream on real traffic
 * and shows the injected requests beside; the shipped alert rules,
 * evaluated by promtool over the series this run really exported, fire
 * nothing.
 */
import t from 'tap'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { REPO } from '../docker-files.js'
import { fetchText, needTool, route, scrape, startProxy, startUpstream } from '../helpers.js'
import { run } from './tools.js'

const { path: promtool, skip } = needTool('promtool')

t.test('a chaos-only run: /report blames nothing on the upstream, and no shipped alert fires', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'content-length': '2' }); res.end('ok') })
  const proxy = await startProxy(t, {
    routes: [
      route('api', '/api', upstream.url, {
        resilience: { breaker: { consecutiveFailures: 3, openMs: 60_000 } },
        chaos: { enabled: true, seed: 3, faults: [{ kind: 'abort', status: 503 }] }
      }),
      route('login', '/login', upstream.url, { chaos: { enabled: true, seed: 3, faults: [{ kind: 'auth' }] } })
    ]
  })
  for (let i = 0; i < 60; i++) await fetchText(`${proxy.url}/api/items/${i}`)
  for (let i = 0; i < 20; i++) await fetchText(`${proxy.url}/login/me`)

  const report = JSON.parse((await fetchText(`${proxy.adminUrl}/report`)).body) as { routes: Array<{ route: string, upstreams: Array<{ windows: Record<string, any> }>, suggestions: string[] }> }
  const api = report.routes.find((r) => r.route === 'api')!
  const w = api.upstreams[0]!.windows['1h']
  t.equal(w.requests, 0, 'no real request: nothing to judge the upstream on')
  t.equal(w.failed, 0)
  t.equal(w.shortCircuited, 0)
  t.same(w.injected, { requests: 60, failed: 60, shortCircuited: 57, fallbacks: 0 }, 'the injected ones are shown beside')
  t.notOk(api.suggestions.some((s) => /down for a good part|short-circuited|transient failure/.test(s)), api.suggestions.join(' | '))
  t.ok(api.suggestions.some((s) => /60 requests carried injected faults/.test(s)), 'the report says chaos was running')
  const login = report.routes.find((r) => r.route === 'login')!
  t.notOk(login.suggestions.some((s) => /refused with 401\/403/.test(s)), 'no credentials advice for injected 401s')

  const samples = await scrape(proxy)
  const labelled = samples.filter((s) => s.name === 'faultline_requests_total' && s.labels.route === 'api')
  t.ok(labelled.length > 0 && labelled.every((s) => s.labels.injected === 'true'), 'every api request is labelled injected')
  t.ok(samples.some((s) => s.name === 'faultline_upstream_errors_total' && s.labels.error_class === 'auth' && s.labels.injected === 'true'), 'injected 401s are labelled')

  if (promtool === undefined) {
    t.comment(String(skip))
    return
  }
  // The run's counters as promtool input: each grows by what this run counted, every minute, for two hours.
  const series = samples
    .filter((s) => ['faultline_requests_total', 'faultline_upstream_errors_total', 'faultline_breaker_state'].includes(s.name))
    .map((s) => ({
      series: `${s.name}{${Object.entries(s.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`,
      values: s.name === 'faultline_breaker_state' ? `${s.value}x120` : `0+${s.value}x120`
    }))
  const silent = ['FaultlineErrorBudgetBurnFast', 'FaultlineErrorBudgetBurnSlow', 'FaultlineAuthFailures', 'FaultlineBreakerOpen']
  const dir = await mkdtemp(join(tmpdir(), 'faultline-containment-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await copyFile(join(REPO, 'docker/prometheus/alerts.yml'), join(dir, 'alerts.yml'))
  await writeFile(join(dir, 'chaos-only.test.yml'), stringify({
    rule_files: ['alerts.yml'],
    evaluation_interval: '1m',
    tests: [{
      interval: '1m',
      input_series: series,
      alert_rule_test: silent.flatMap((alertname) => ['30m', '100m'].map((evalTime) => ({ eval_time: evalTime, alertname, exp_alerts: [] })))
    }]
  }))
  const r = await run(promtool, ['test', 'rules', 'chaos-only.test.yml'], { cwd: dir })
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.match(r.stdout, /SUCCESS/)
})

t.test('webhook alerts: a chaos-only route pages nobody; a real outage beside it does, with the injected figures shown', async (t) => {
  const received: Array<Record<string, any>> = []
  const hook = await startUpstream(t, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => { received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, any>); res.end('ok') })
  })
  const healthy = await startUpstream(t, (_req, res) => { res.end('ok') })
  const down = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('down') })
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: `${hook.url}/hook` }], errorRate: { threshold: 0.5, minRequests: 5, checkIntervalMs: 100 } },
    routes: [
      route('chaos', '/chaos', healthy.url, {
        resilience: { breaker: { consecutiveFailures: 2, openMs: 60_000 }, authGuard: { failures: 2, blockMs: 60_000 } },
        chaos: { enabled: true, allowHeaderTriggers: true }
      }),
      route('real', '/real', down.url)
    ]
  })
  for (let i = 0; i < 4; i++) await fetchText(`${proxy.url}/chaos/x`, { headers: { 'x-faultline-fault': 'auth' } })
  for (let i = 0; i < 8; i++) await fetchText(`${proxy.url}/chaos/y`, { headers: { 'x-faultline-fault': 'abort=503' } })
  for (let i = 0; i < 6; i++) await fetchText(`${proxy.url}/real/z`)
  const end = Date.now() + 5_000
  while (Date.now() < end && !received.some((r) => r.type === 'error_rate')) await new Promise((resolve) => setTimeout(resolve, 50))
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.ok(received.some((r) => r.type === 'error_rate' && r.route === 'real'), 'the real outage is alerted (the check is alive)')
  t.same(received.filter((r) => r.route === 'chaos').map((r) => r.type), [], 'nothing about the chaos route: no breaker, auth guard or error-rate alert')
  const rate = received.find((r) => r.type === 'error_rate' && r.route === 'real')
  t.same(rate?.context.injected, { requests: 0, failed: 0, shortCircuited: 0, fallbacks: 0 }, 'injected figures shown beside the real ones')
})
