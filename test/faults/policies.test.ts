/**
 * Upstream-side faults go through the route's own policies like real
 * failures (the point of injecting at the upstream side); client-side
 * faults bypass them.
 */
import t from 'tap'
import { scrape, sumOf } from '../helpers.js'
import { chaosProxy, jsonUpstream, see } from './fixtures.js'

// A budget large enough that it never limits these tests' retries.
const RETRY = { attempts: 3, backoff: { baseMs: 1, maxMs: 5 }, budgetRatio: 10 }

t.test('retry absorbs an injected 503: every attempt re-rolls the dice', async (t) => {
  const upstream = await jsonUpstream(t)
  // p=0.5 per attempt, up to 3 attempts: about one request in eight fails all three.
  const proxy = await chaosProxy(t, upstream.url, { seed: 5, faults: [{ kind: 'abort', status: 503, probability: 0.5 }] }, { resilience: { retry: RETRY } })
  let ok = 0
  for (let i = 0; i < 20; i++) if ((await see(`${proxy.url}/svc/x`)).status === 200) ok++
  const samples = await scrape(proxy)
  const injected = sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'abort' })
  t.ok(injected >= 5, `${injected} injected 503s`)
  t.ok(ok >= 15, `${ok} of 20 succeeded: retries absorbed most injected 503s`)
  t.ok(injected >= 3 * (20 - ok) + 1, 'a failed request was faulted on every attempt, and some succeeded after one')
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'http_5xx' }), injected, 'each injected attempt counted as a failed attempt')
  t.ok(sumOf(samples, 'faultline_requests_total', { route: 'svc', outcome: 'retried_ok' }) >= 1, 'some requests succeeded on a retry')
})

t.test('the breaker opens on injected failures and then stops calling upstream', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'reset' }] }, { resilience: { breaker: { consecutiveFailures: 3, openMs: 10_000 } } })
  const statuses: Array<number | undefined> = []
  for (let i = 0; i < 6; i++) statuses.push((await see(`${proxy.url}/svc/x`)).status)
  t.same(statuses.slice(0, 3), [502, 502, 502], 'injected resets reach the client')
  t.same(statuses.slice(3), [503, 503, 503], 'then the breaker short-circuits')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'reset' }), 3, 'an open breaker stops the attempts, and so the faults')
})

t.test('a static fallback answers for an injected timeout', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'timeout' }] }, {
    resilience: { timeoutMs: 200, fallback: [{ static: { status: 200, body: '{"degraded":true}', headers: { 'content-type': 'application/json' } } }] }
  })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.same(JSON.parse(res.body.toString()), { degraded: true })
  t.equal(res.headers['x-faultline-fallback'], 'static')
  t.equal(res.headers['x-faultline-fault'], 'timeout')
})

t.test('client-side faults bypass retry and fallback', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'abort', status: 503, at: 'client' }] }, {
    resilience: { retry: RETRY, fallback: [{ static: { status: 200, body: 'fallback' } }] }
  })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 503, 'neither retried nor replaced by the fallback')
  t.equal(upstream.hits(), 0)
})
