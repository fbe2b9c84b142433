/**
 * Every fault is governed (issue 12): the guardrail halt stops hand-written
 * faults as well as planned ones, and chaos.maxShare caps the share of
 * requests any fault touches, per request, retries included.
 */
import t from 'tap'
import { request } from 'undici'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('a guardrail halt stops a hand-written fault, not only planned ones', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('real') })
  const proxy = await startProxy(t, {
    controller: { evaluationMs: 150, cooldownMs: 60_000, holdWindows: 2, minRequests: 3 },
    routes: [route('svc', '/svc', upstream.url, {
      intent: { criticality: 'critical' },
      chaos: { enabled: true, seed: 5, faults: [{ kind: 'abort', name: 'handwritten', status: 503 }] }
    })]
  })
  // Sequential requests until the guardrail halts the route (bounded: 4 s, 2000 requests).
  const until = performance.now() + 4_000
  for (let n = 0; n < 2_000 && performance.now() < until; n++) {
    const res = await request(`${proxy.url}/svc`)
    await res.body.dump()
    if (n % 20 === 19 && sumOf(await scrape(proxy), 'faultline_guardrail_halts_total', { route: 'svc' }) >= 1) break
  }
  t.ok(sumOf(await scrape(proxy), 'faultline_guardrail_halts_total', { route: 'svc' }) >= 1, 'the guardrail halted the route')
  await sleep(50)
  const statuses = []
  for (let i = 0; i < 10; i++) statuses.push((await fetchText(`${proxy.url}/svc`)).status)
  t.same(statuses, Array(10).fill(200), 'the hand-written fault no longer fires during the halt')
  const active = (await scrape(proxy)).find((s) => s.name === 'faultline_chaos_active' && s.labels.route === 'svc')
  t.equal(active?.labels.reason, 'guardrail', 'faultline_chaos_active says why')
})

t.test('chaos.maxShare caps the share of requests any fault touches; a retry does not restart the count', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('real') })
  const proxy = await startProxy(t, {
    routes: [route('capped', '/capped', upstream.url, {
      resilience: { retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 1 }, budgetRatio: 10, budgetMinRetries: 1000 } },
      chaos: { enabled: true, seed: 1, maxShare: 0.25, faults: [{ kind: 'abort', status: 503 }] }
    })]
  })
  const results = []
  for (let i = 0; i < 40; i++) results.push(await fetchText(`${proxy.url}/capped/${i}`))
  const touched = results.filter((r) => r.status === 503)
  t.equal(touched.length, 10, 'a quarter of 40 requests, not every one as probability 1 would have it')
  t.ok(touched.every((r) => r.headers['x-faultline-attempts'] === '3'), 'a touched request is faulted on every retry')
  t.ok(results.filter((r) => r.status === 200).every((r) => r.headers['x-faultline-attempts'] === '1'), 'the others are not touched at all')
  const injected = sumOf(await scrape(proxy), 'faultline_requests_total', { route: 'capped', injected: 'true' })
  t.equal(injected, 10, 'counted per request')
})
