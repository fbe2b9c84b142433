/**
 * issue 13: the controller follows the kill switch, a breach with nothing
 * injected is the upstream's (no guardrail halt, no disabling level), and
 * a body cut after its status line counts against the SLO.
 */
import t from 'tap'
import { request } from 'undici'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, type StartedProxy } from '../helpers.js'

const TOKEN = 'intent-token-0123456789abcdef'
const auth = { authorization: `Bearer ${TOKEN}` }

/** Sequential GETs for `ms` (at most `max`); resets and cut bodies are expected. */
async function traffic (url: string, ms: number, max = 3_000): Promise<number> {
  const until = performance.now() + ms
  let n = 0
  while (performance.now() < until && n < max) {
    n++
    try {
      const res = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 })
      await res.body.text()
    } catch { /* a cut body */ }
  }
  return n
}

async function controllerOf (proxy: StartedProxy): Promise<{ level: number, halted: boolean, resilienceMargin: number, disablingLevel?: number, breaches: number }> {
  const routes = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as { routes: Array<{ state: { intent: { controller: never } } }> }
  return routes.routes[0]!.state.intent.controller
}

t.test('with the kill switch off for ten windows the controller holds its level and judges nothing', async (t) => {
  let failing = false
  const upstream = await startUpstream(t, (_req, res) => { res.statusCode = failing ? 500 : 200; res.end('x') })
  const proxy = await startProxy(t, {
    admin: { token: TOKEN },
    controller: { evaluationMs: 100, cooldownMs: 60_000, holdWindows: 2, minRequests: 3 },
    routes: [route('svc', '/svc', upstream.url, {
      intent: { criticality: 'optional', protects: 'consistency', slo: { p99Ms: 1000, errorRate: 0.5 }, sensitivity: 0 },
      chaos: { enabled: true, budget: 0.5, seed: 7 }
    })]
  })
  t.equal((await fetchText(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: auth })).status, 200)
  const start = await controllerOf(proxy)
  await traffic(`${proxy.url}/svc`, 1_100)
  const healthy = await controllerOf(proxy)
  t.equal(healthy.level, start.level, `the level holds at ${start.level} while chaos is off`)
  t.equal(healthy.resilienceMargin, 0, 'no margin is claimed for levels never injected')
  // A real outage while chaos is off: not a chaos breach.
  failing = true
  await traffic(`${proxy.url}/svc`, 600)
  const after = await controllerOf(proxy)
  t.equal(after.breaches, 0, 'no guardrail breach')
  t.equal(after.disablingLevel, undefined, 'no disabling level')
  t.equal(sumOf(await scrape(proxy), 'faultline_guardrail_halts_total', { route: 'svc' }), 0)
  t.equal(after.level, start.level)
})

t.test('an SLO breach with nothing injected is the upstream\'s: no halt, no disabling level, said so in the log', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.statusCode = 500; res.end('down') })
  const proxy = await startProxy(t, {
    controller: { evaluationMs: 150, cooldownMs: 60_000, holdWindows: 2, minRequests: 3 },
    routes: [route('svc', '/svc', upstream.url, {
      intent: { criticality: 'critical', protects: 'availability' },
      // So small a chance that nothing is injected in these few windows.
      chaos: { enabled: true, budget: 0.001, seed: 11 }
    })]
  })
  await traffic(`${proxy.url}/svc`, 800)
  t.equal(sumOf(await scrape(proxy), 'faultline_faults_injected_total', { route: 'svc' }), 0, 'nothing was injected')
  const c = await controllerOf(proxy)
  t.equal(c.breaches, 0, 'not booked as a chaos breach')
  t.equal(c.disablingLevel, undefined, 'the route is not capped by a real outage')
  t.equal(sumOf(await scrape(proxy), 'faultline_guardrail_halts_total', { route: 'svc' }), 0)
  t.ok(proxy.logs.lines.some((l) => String(l.msg).startsWith('SLO breached with nothing injected')), 'logged as the upstream\'s breach')
})

t.test('responses cut mid-body count against the SLO: a truncate fault halts a critical route', async (t) => {
  const body = JSON.stringify({ items: Array.from({ length: 50 }, (_, i) => ({ id: i })) })
  const upstream = await startUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end(body) })
  const proxy = await startProxy(t, {
    controller: { evaluationMs: 150, cooldownMs: 60_000, holdWindows: 2, minRequests: 3 },
    routes: [route('svc', '/svc', upstream.url, {
      intent: { criticality: 'critical', protects: 'consistency' },
      chaos: { enabled: true, budget: 1, seed: 5, faults: [{ kind: 'truncate', bytes: 10, probability: 0.5 }] }
    })]
  })
  await traffic(`${proxy.url}/svc`, 1_000)
  const samples = await scrape(proxy)
  t.ok(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc' }) > 0, 'bodies were cut')
  t.ok(sumOf(samples, 'faultline_slo_error_rate', { route: 'svc' }) > 0, 'the SLO tracker saw the cut bodies')
  t.ok(sumOf(samples, 'faultline_guardrail_halts_total', { route: 'svc' }) >= 1, 'the guardrail halted the critical route')
})

t.test('a body that fails while validate buffers it is a counted failed attempt; short of its Content-Length it is invalid_response', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' })
    res.write('{"partial":')
    setTimeout(() => { res.socket?.destroy() }, 20)
  })
  const proxy = await startProxy(t, { routes: [route('svc', '/svc', upstream.url, { validate: {} })] })
  const res = await fetchText(`${proxy.url}/svc`)
  t.equal(res.status, 502)
  t.match(res.body, /invalid_response/)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'invalid_response' }), 1, 'counted once, as invalid_response')
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc' }), 1)
})
