import t from 'tap'
import { closedPort, fetchText, route, scrape, startProxy, sumOf } from '../helpers.js'
import { garbageUpstream, scriptedUpstream } from './fixtures.js'
import { backoffMs, retryAfterMs } from '../../src/policies/retry.js'
import { RetryBudget } from '../../src/policies/retry-budget.js'

const fastRetry = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  resilience: { timeoutMs: 3000, retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 5 }, ...extra } }
})

t.test('a retry succeeds on the second attempt', async (t) => {
  const upstream = await scriptedUpstream(t, [503, 200])
  const proxy = await startProxy(t, { routes: [route('r', '/r', upstream.url, fastRetry())] })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 200)
  t.equal(res.body, 'status 200')
  t.equal(res.headers['x-faultline-attempts'], '2')
  t.equal(res.headers['x-faultline-outcome'], 'retried_ok')
  t.equal(upstream.hits(), 2)
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_retries_total', { route: 'r', error_class: 'http_5xx' }), 1)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'r', outcome: 'retried_ok' }), 1)
})

t.test('each failure class: retried or not, as classified', async (t) => {
  const port = await closedPort()
  const reset = await scriptedUpstream(t, ['reset'])
  const hang = await scriptedUpstream(t, ['hang'])
  const garbage = await garbageUpstream(t)
  const limited = await scriptedUpstream(t, [429])
  const auth = await scriptedUpstream(t, [401])
  const internal = await scriptedUpstream(t, [500])
  const proxy = await startProxy(t, {
    routes: [
      route('connect', '/connect', `http://127.0.0.1:${port}`, fastRetry()),
      route('reset', '/reset', reset.url, fastRetry()),
      route('timeout', '/timeout', hang.url, { resilience: { timeoutMs: 3000, attemptTimeoutMs: 300, retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 5 } } } }),
      route('invalid', '/invalid', garbage.url, fastRetry()),
      route('limited', '/limited', limited.url, fastRetry()),
      route('auth', '/auth', auth.url, fastRetry()),
      route('internal', '/internal', internal.url, fastRetry())
    ]
  })
  const cases: Array<[string, number, string, number]> = [
    // path, status, class (error body or x-faultline-outcome), attempts
    ['/connect', 502, 'connect', 3],
    ['/reset', 502, 'reset', 3],
    ['/timeout', 504, 'timeout', 3],
    ['/invalid', 502, 'invalid_response', 3],
    ['/limited', 429, 'ok', 3],
    ['/auth', 401, 'ok', 1],
    ['/internal', 500, 'failed', 1]
  ]
  for (const [path, status, cls, attempts] of cases) {
    const res = await fetchText(`${proxy.url}${path}`)
    t.equal(res.status, status, `${path} status`)
    t.equal(res.headers['x-faultline-attempts'], String(attempts), `${path} attempts`)
    if (status === 502 || status === 504) t.equal(JSON.parse(res.body).class, cls, `${path} class`)
    else t.equal(res.headers['x-faultline-outcome'], cls, `${path} outcome`)
  }
  t.equal(reset.hits(), 3)
  t.equal(hang.hits(), 3)
  t.equal(garbage.hits(), 3)
  t.equal(auth.hits(), 1, 'bad credentials are not retried')
  const m = await scrape(proxy)
  for (const cls of ['connect', 'reset', 'timeout', 'invalid_response', 'rate_limited']) {
    t.equal(sumOf(m, 'faultline_retries_total', { error_class: cls }), 2, `retries of ${cls}`)
  }
})

t.test('backoff waits exponentially between tries', async (t) => {
  const upstream = await scriptedUpstream(t, [503])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 5000, retry: { attempts: 3, backoff: { baseMs: 100, maxMs: 1000, jitter: 'none' } } } })]
  })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 503)
  t.equal(res.headers['x-faultline-attempts'], '3')
  t.ok(res.ms >= 290, `waited 100 + 200 ms between tries (${Math.round(res.ms)} ms)`)
  t.ok(res.ms < 2000, 'and not much more')
})

t.test('backoff math: doubling, cap, full jitter within [0, delay]', async (t) => {
  const b = { baseMs: 100, maxMs: 350, jitter: 'none' as const }
  t.same([1, 2, 3, 4].map((n) => backoffMs(b, n)), [100, 200, 350, 350])
  t.equal(backoffMs({ ...b, jitter: 'full' }, 2, () => 0.5), 100)
  t.equal(backoffMs({ ...b, jitter: 'full' }, 2, () => 0), 0)
  t.equal(retryAfterMs('2'), 2000)
  const now = Date.parse('Wed, 02 Dec 2026 04:00:00 GMT')
  t.equal(retryAfterMs('Wed, 02 Dec 2026 04:00:03 GMT', now), 3000, 'an HTTP-date: the time until it')
  t.equal(retryAfterMs('Wed, 02 Dec 2026 03:59:00 GMT', now), 0, 'a date in the past: retry now, never a negative wait')
  t.equal(retryAfterMs([' 5 ', '9'], now), 5000, 'the first of repeated headers, spaces trimmed')
  t.equal(retryAfterMs('', now), undefined)
  t.equal(retryAfterMs('soon'), undefined)
})

t.test('Retry-After is honoured, and one beyond maxRetryAfterMs ends the retries', async (t) => {
  const upstream = await scriptedUpstream(t, [{ status: 503, headers: { 'retry-after': '1' } }, 200])
  const patient = await scriptedUpstream(t, [{ status: 429, headers: { 'retry-after': '30' } }, 200])
  const proxy = await startProxy(t, {
    routes: [
      route('r', '/r', upstream.url, fastRetry()),
      route('p', '/p', patient.url, fastRetry({ maxRetryAfterMs: 2000 }))
    ]
  })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 200)
  t.ok(res.ms >= 990, `waited the second the upstream asked for (${Math.round(res.ms)} ms)`)
  t.ok(res.ms < 2500)
  const far = await fetchText(`${proxy.url}/p`)
  t.equal(far.status, 429, 'the upstream\'s answer is passed on')
  t.equal(far.headers['retry-after'], '30')
  t.equal(far.headers['x-faultline-attempts'], '1')
  t.ok(far.ms < 1000)
})

t.test('POST is retried only with an Idempotency-Key or the route opt-in; the body is replayed', async (t) => {
  const body = JSON.stringify({ order: 42, pad: 'x'.repeat(2000) })
  const seen: string[] = []
  const plain = await scriptedUpstream(t, [503, 200])
  const keyed = await scriptedUpstream(t, [503, 200], (_req, b) => { seen.push(b) })
  const optin = await scriptedUpstream(t, [503, 200], (_req, b) => { seen.push(b) })
  const proxy = await startProxy(t, {
    routes: [
      route('plain', '/plain', plain.url, fastRetry()),
      route('keyed', '/keyed', keyed.url, fastRetry()),
      route('optin', '/optin', optin.url, fastRetry({ nonIdempotent: true }))
    ]
  })
  const once = await fetchText(`${proxy.url}/plain`, { method: 'POST', body })
  t.equal(once.status, 503, 'not retried without a key')
  t.equal(once.headers['x-faultline-attempts'], '1')
  t.equal(plain.hits(), 1)
  const withKey = await fetchText(`${proxy.url}/keyed`, { method: 'POST', body, headers: { 'idempotency-key': 'k-1' } })
  t.equal(withKey.status, 200, 'retried with an Idempotency-Key')
  t.equal(withKey.headers['x-faultline-attempts'], '2')
  const optedIn = await fetchText(`${proxy.url}/optin`, { method: 'POST', body })
  t.equal(optedIn.status, 200, 'retried on a route that opts in')
  t.equal(seen.length, 4)
  t.ok(seen.every((b) => b === body), 'every attempt carried the whole body')
})

t.test('a body larger than maxReplayBytes is sent once, not retried', async (t) => {
  const seen: number[] = []
  const upstream = await scriptedUpstream(t, [503, 200], (_req, b) => { seen.push(b.length) })
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 3000, maxReplayBytes: 1024, retry: { attempts: 3, backoff: { baseMs: 1 } } } })]
  })
  const small = await fetchText(`${proxy.url}/r`, { method: 'PUT', body: 'y'.repeat(1000) })
  t.equal(small.status, 200, 'a small PUT body is replayed')
  t.equal(small.headers['x-faultline-attempts'], '2')
  const big = await fetchText(`${proxy.url}/r`, { method: 'PUT', body: 'z'.repeat(5000) })
  t.equal(big.status, 200, 'the script repeats its last step')
  t.equal(big.headers['x-faultline-attempts'], '1')
  t.same(seen, [1000, 1000, 5000], 'the large body arrived whole, once')
})

t.test('the total timeout bounds all attempts and backoff: 504 timeout', async (t) => {
  const upstream = await scriptedUpstream(t, ['hang'])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 400, attemptTimeoutMs: 150, retry: { attempts: 5, backoff: { baseMs: 10, maxMs: 20 } } } })]
  })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 504)
  const body = JSON.parse(res.body)
  t.equal(body.class, 'timeout')
  t.match(body.message, /timeoutMs \(400 ms\)/)
  t.ok(res.ms >= 380 && res.ms < 1500, `answered at the deadline (${Math.round(res.ms)} ms)`)
  t.ok(upstream.hits() >= 2 && upstream.hits() <= 3, `tries fit in the deadline (${upstream.hits()})`)
})

t.test('retry budget: a failing upstream sees at most about (1 + ratio) x N attempts', async (t) => {
  const upstream = await scriptedUpstream(t, [503])
  const ratio = 0.2
  const floor = 3
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 3000, retry: { attempts: 4, backoff: { baseMs: 0, maxMs: 0 }, budgetRatio: ratio, budgetMinRetries: floor, budgetWindowMs: 60_000 } } })]
  })
  const n = 40
  for (let i = 0; i < n; i++) {
    const res = await fetchText(`${proxy.url}/r`)
    t.equal(res.status, 503)
  }
  const limit = Math.ceil((1 + ratio) * n + floor)
  t.ok(upstream.hits() <= limit, `${upstream.hits()} attempts <= ${limit} (without a budget: ${4 * n})`)
  t.ok(upstream.hits() >= n)
  const m = await scrape(proxy)
  t.ok(sumOf(m, 'faultline_retry_budget_exhausted_total', { route: 'r' }) > 0, 'exhaustion is counted')
  t.equal(sumOf(m, 'faultline_retries_total', { route: 'r' }), upstream.hits() - n, 'every retry is counted')
  const state = await fetchText(`${proxy.adminUrl}/routes`)
  t.equal(JSON.parse(state.body).routes[0].state.retry.budget.requests, n, 'the budget is visible in GET /routes')
})

t.test('retry budget unit: ratio plus floor over the window, freed as the window slides', async (t) => {
  let now = 0
  const budget = new RetryBudget({ ratio: 0.5, windowMs: 1000, minRetries: 1 }, () => now)
  for (let i = 0; i < 4; i++) budget.request()
  let granted = 0
  for (let i = 0; i < 10; i++) if (budget.tryRetry()) granted++
  t.equal(granted, 3, '0.5 x 4 + 1')
  now = 1500
  t.equal(budget.tryRetry(), true, 'the floor is back once the window has moved on')
  t.equal(budget.tryRetry(), false)
  const fresh = new RetryBudget({ ratio: 0.5, windowMs: 1000, minRetries: 1 }, () => 0)
  for (let i = 0; i < 4; i++) fresh.request()
  t.same(fresh.snapshot(), { requests: 4, retries: 0, available: 3 }, 'available: 0.5 x 4 + 1 (GET /routes shows it)')
  fresh.tryRetry()
  t.same(fresh.snapshot(), { requests: 4, retries: 1, available: 2 })
  fresh.tryRetry()
  fresh.tryRetry()
  t.same(fresh.snapshot(), { requests: 4, retries: 3, available: 0 })
})

t.test('a first-try success is ok, not retried_ok; attempts used up are not the budget', async (t) => {
  const fine = await scriptedUpstream(t, [200])
  const failing = await scriptedUpstream(t, [503])
  const proxy = await startProxy(t, { routes: [route('fine', '/fine', fine.url, fastRetry()), route('failing', '/failing', failing.url, fastRetry())] })
  const first = await fetchText(`${proxy.url}/fine`)
  t.equal(first.status, 200)
  t.equal(first.headers['x-faultline-outcome'], 'ok')
  t.equal(first.headers['x-faultline-attempts'], '1')
  const spent = await fetchText(`${proxy.url}/failing`)
  t.equal(spent.status, 503)
  t.equal(spent.headers['x-faultline-attempts'], '3')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'fine', outcome: 'ok' }), 1)
  t.equal(sumOf(m, 'faultline_retry_budget_exhausted_total', {}), 0, 'the budget refused nothing')
})

t.test('a pause that would end past the deadline is not taken: the last answer goes out at once', async (t) => {
  const upstream = await scriptedUpstream(t, [{ status: 503, headers: { 'retry-after': '2' } }])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 1000, retry: { attempts: 3, maxRetryAfterMs: 5000, backoff: { baseMs: 1, maxMs: 5 } } } })]
  })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 503, 'the upstream\'s answer, not a 504 after waiting the 2 s it asked for')
  t.equal(res.headers['retry-after'], '2')
  t.equal(upstream.hits(), 1)
  t.equal(sumOf(await scrape(proxy), 'faultline_retry_budget_exhausted_total', { route: 'r' }), 0, 'no time left is not the budget')
})
