import t from 'tap'
import { writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'
import { ADMIN_TOKEN, scriptedUpstream } from './fixtures.js'
import { CircuitBreaker } from '../../src/policies/breaker.js'
import { PolicyRejectionError } from '../../src/core/errors.js'

/** The rejection reason admit() throws, or 'admitted'. */
function admitResult (b: CircuitBreaker): string {
  try {
    b.admit()
    return 'admitted'
  } catch (err) {
    return err instanceof PolicyRejectionError ? err.reason : String(err)
  }
}
import { breakerSchema } from '../../src/policies/schema.js'

t.test('unit: closed -> open -> half-open -> closed, open time doubling, probe limit', async (t) => {
  let now = 0
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ consecutiveFailures: 2, openMs: 100, maxOpenMs: 250, halfOpenProbes: 2 }), () => now)
  const seen: string[] = []
  b.onTransition((from, to) => seen.push(`${from}>${to}`))
  b.record(b.admit(), false)
  t.equal(b.state.name, 'closed')
  b.record(b.admit(), false)
  t.equal(b.state.name, 'open', 'two failures in a row open it')
  t.equal(admitResult(b), 'short_circuited')
  now = 100
  const p1 = b.admit()
  const p2 = b.admit()
  t.equal(b.state.name, 'half_open')
  t.equal(admitResult(b), 'short_circuited', 'only halfOpenProbes trial requests')
  b.record(p1, false)
  t.equal(b.state.name, 'open', 'a failed probe reopens')
  b.record(p2, true)
  t.equal(b.state.name, 'open', 'a result from the previous state is ignored')
  now = 150
  t.equal(admitResult(b), 'short_circuited', 'the second trip lasts twice as long')
  now = 300
  const q1 = b.admit()
  const q2 = b.admit()
  b.record(q1, true)
  t.equal(b.state.name, 'half_open')
  b.record(q2, true)
  t.equal(b.state.name, 'closed', 'all probes succeeded')
  t.same(seen, ['closed>open', 'open>half_open', 'half_open>open', 'open>half_open', 'half_open>closed'])
  // Third trip after closing starts from openMs again.
  b.record(b.admit(), false)
  b.record(b.admit(), false)
  now = 399
  t.equal(admitResult(b), 'short_circuited')
  now = 400
  t.equal(admitResult(b), 'admitted', 'the third trip starts from openMs again')
})

t.test('unit: the open time doubles per trip in a row but never passes maxOpenMs', async (t) => {
  let now = 0
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ consecutiveFailures: 1, openMs: 100, maxOpenMs: 250, halfOpenProbes: 1 }), () => now)
  // Each step: the breaker is open until `until`; a probe then fails and it trips again.
  const steps = [{ until: 100 }, { until: 300 }, { until: 550 }, { until: 800 }]
  b.record(b.admit(), false)
  for (const [i, { until }] of steps.entries()) {
    now = until - 1
    t.equal(admitResult(b), 'short_circuited', `trip ${i + 1}: still open 1 ms before ${until}`)
    now = until
    const probe = b.admit()
    t.equal(b.state.name, 'half_open', `trip ${i + 1}: a probe at ${until}`)
    b.record(probe, false)
  }
  // 100, 200, then 400 and 800 capped at 250: without the cap the third trip would hold until 700.
})

t.test('unit: failure-rate mode waits for minRequests; forced states hold', async (t) => {
  let now = 0
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ failureRate: 0.5, windowMs: 1000, minRequests: 4, openMs: 100 }), () => now)
  b.record(b.admit(), false)
  b.record(b.admit(), false)
  b.record(b.admit(), false)
  t.equal(b.state.name, 'closed', '3 failures are fewer than minRequests')
  b.record(b.admit(), true)
  t.equal(b.state.name, 'closed', '3 of 4 failed, but the last call succeeded')
  b.record(b.admit(), false)
  t.equal(b.state.name, 'open', '4 of 5 failed')
  b.forceClose()
  for (let i = 0; i < 10; i++) b.record(b.admit(), false)
  t.equal(b.state.name, 'forced_closed', 'failures are not recorded while held closed')
  b.forceOpen()
  now = 10_000
  t.equal(admitResult(b), 'short_circuited', 'held open however long')
  b.reset()
  t.equal(b.state.name, 'closed')
  now = 20_000
  b.record(b.admit(), false)
  t.equal(b.state.name, 'closed', 'reset cleared the window')
})

t.test('unit: consecutive mode counts failures in a row only; the snapshot says so', async (t) => {
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ consecutiveFailures: 2, openMs: 100 }), () => 0)
  b.record(b.admit(), false)
  t.match(b.snapshot(), { mode: 'consecutive', failuresInARow: 1, threshold: 2 })
  b.record(b.admit(), true)
  t.match(b.snapshot(), { failuresInARow: 0 }, 'a success ends the run')
  b.record(b.admit(), false)
  t.equal(b.state.name, 'closed', 'failure, success, failure: not two in a row')
})

t.test('unit: rate mode opens at exactly minRequests calls and exactly the rate, counts successes, forgets on closing', async (t) => {
  let now = 0
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ failureRate: 0.5, windowMs: 1000, minRequests: 4, openMs: 100 }), () => now)
  b.record(b.admit(), false)
  t.equal(b.state.name, 'closed', '1 of 1 failed, but 1 call is fewer than minRequests')
  for (let i = 0; i < 4; i++) b.record(b.admit(), true)
  t.match(b.snapshot(), { mode: 'rate', calls: 5, failures: 1, failureRate: 0.5, minRequests: 4 })
  b.record(b.admit(), false)
  t.equal(b.state.name, 'closed', '2 of 6 failed: under the rate (the successes count)')
  const rate = new CircuitBreaker('u:1', breakerSchema.parse({ failureRate: 0.5, windowMs: 1000, minRequests: 4, openMs: 100 }), () => now)
  rate.record(rate.admit(), true)
  rate.record(rate.admit(), true)
  rate.record(rate.admit(), false)
  t.equal(rate.state.name, 'closed', '1 of 3')
  rate.record(rate.admit(), false)
  t.equal(rate.state.name, 'open', 'exactly minRequests calls, exactly half failed: open')
  now = 100
  rate.record(rate.admit(), true)
  t.equal(rate.state.name, 'closed', 'the probe closed it')
  rate.record(rate.admit(), false)
  t.equal(rate.state.name, 'closed', 'closing forgot the window: one failure is not 4 calls')
})

/** The PolicyRejectionError admit() throws (fails the test when it admits). */
function rejectionOf (b: CircuitBreaker): PolicyRejectionError {
  try {
    b.admit()
  } catch (err) {
    if (err instanceof PolicyRejectionError) return err
    throw err
  }
  throw new Error('admitted')
}

t.test('unit: what GET /routes and the 503 say: trips, time left, probes, Retry-After per state', async (t) => {
  let now = 0
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ consecutiveFailures: 1, openMs: 2500, maxOpenMs: 60_000, halfOpenProbes: 2 }), () => now)
  t.notOk('trips' in b.snapshot(), 'closed: no trip count')
  b.record(b.admit(), false)
  now = 1000
  t.match(b.snapshot(), { upstream: 'u:1', state: 'open', trips: 1, reopensInMs: 1500 })
  const open = rejectionOf(b)
  t.equal(open.retryAfterS, 2, '1.5 s left: Retry-After rounds up to 2')
  t.match(open.message, /is open after repeated failures; the next trial request goes through in about 2 s/)
  now = 2499.5
  t.equal(rejectionOf(b).retryAfterS, 1, 'half a millisecond left: 1 s, never 0')
  now = 2600
  t.has(b.snapshot(), { state: 'open', reopensInMs: 0 }, 'past its time but not asked yet: 0, not negative')

  const p1 = b.admit()
  const p2 = b.admit()
  t.has(b.snapshot(), { state: 'half_open', trips: 1, probesAdmitted: 2, probesSucceeded: 0 })
  t.notOk('reopensInMs' in b.snapshot(), 'half-open: no reopening time')
  const probing = rejectionOf(b)
  t.equal(probing.retryAfterS, 1)
  t.match(probing.message, /is half-open and its trial requests are in flight/)
  b.record(p1, true)
  t.has(b.snapshot(), { state: 'half_open', probesAdmitted: 2, probesSucceeded: 1 })
  b.abandon(p2)
  t.match(b.snapshot(), { probesAdmitted: 1 }, 'a probe whose client left frees its slot')
  const p3 = b.admit()
  t.equal(b.state.name, 'half_open', 'so another request may be the trial')
  b.record(p3, false)
  t.has(b.snapshot(), { state: 'open', trips: 2, reopensInMs: 5000 }, 'a failed probe: the second trip, twice as long')

  b.forceOpen()
  const forced = rejectionOf(b)
  t.equal(forced.retryAfterS, 5)
  t.match(forced.message, /is held open by an operator/)
  t.notOk('trips' in b.snapshot(), 'held open: no trip count')
})

/** A breaker tripped by one failure while `slow` (admitted before the trip) is still out, then half-open with its one trial admitted. */
function halfOpenWithAStaleRequest (): { b: CircuitBreaker, slow: ReturnType<CircuitBreaker['admit']> } {
  let now = 0
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ consecutiveFailures: 1, openMs: 100, halfOpenProbes: 1 }), () => now)
  const slow = b.admit()
  b.record(b.admit(), false)
  now = 100
  b.admit()
  return { b, slow }
}

t.test('unit: a request admitted before a trip, abandoned while half-open, frees no probe slot', async (t) => {
  const { b, slow } = halfOpenWithAStaleRequest()
  b.abandon(slow)
  t.has(b.snapshot(), { state: 'half_open', probesAdmitted: 1 })
  t.equal(admitResult(b), 'short_circuited', 'the trial is still in flight: one probe only')
})

t.test('unit: a success admitted before a trip, answered while half-open, is not a trial\'s success', async (t) => {
  const { b, slow } = halfOpenWithAStaleRequest()
  b.record(slow, true)
  t.equal(b.state.name, 'half_open', 'only the trial request\'s own answer closes it')
})

t.test('unit: the fleet\'s moves (openFromFleet, closeFromFleet): an operator\'s force holds, an open breaker takes the fleet\'s time', async (t) => {
  let now = 0
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ consecutiveFailures: 2, openMs: 100 }), () => now)
  const seen: string[] = []
  b.onTransition((from, to, change) => seen.push(`${from}>${to}${change?.by !== undefined ? ` by ${change.by}` : ''}`))
  b.closeFromFleet({ reason: 'closed there', by: 'r1' })
  t.same(seen, [], 'closed already: closing moves nothing')
  b.record(b.admit(), false)
  b.openFromFleet(1000, 3, { reason: 'opened there', by: 'r1' })
  t.has(b.snapshot(), { state: 'open', trips: 3, reopensInMs: 1000 })
  now = 200
  b.openFromFleet(500, 1, { reason: 'again', by: 'r2' })
  t.has(b.snapshot(), { state: 'open', trips: 3, reopensInMs: 500 }, 'already open: the fleet\'s time, the larger trip count')
  t.same(seen, ['closed>open by r1'], 'and no second transition')
  now = 700
  b.admit()
  b.closeFromFleet({ reason: 'the trial succeeded there', by: 'r2' })
  t.equal(b.state.name, 'closed', 'half-open here, closed by the fleet')
  b.record(b.admit(), false)
  t.equal(b.state.name, 'closed', 'closing forgot the failure seen before the trip: one is not two in a row')
  t.same(seen, ['closed>open by r1', 'open>half_open', 'half_open>closed by r2'])

  for (const force of ['forceOpen', 'forceClose'] as const) {
    b[force]()
    const held = b.state.name
    b.openFromFleet(1000, 1, { reason: 'opened there', by: 'r1' })
    t.equal(b.state.name, held, `${held}: the fleet's opening does not move it`)
    b.closeFromFleet({ reason: 'closed there', by: 'r1' })
    t.equal(b.state.name, held, `${held}: nor its closing`)
  }
})

t.test('through the proxy: trips, short-circuits fast, probes and closes; metrics follow', async (t) => {
  let healthy = false
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(healthy ? 200 : 503).end(healthy ? 'ok' : 'down') })
  const hits = (): number => upstream.hits()
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { breaker: { consecutiveFailures: 3, openMs: 200 } } })]
  })
  for (let i = 0; i < 3; i++) t.equal((await fetchText(`${proxy.url}/r`)).status, 503)
  t.equal(hits(), 3)
  const fast = await fetchText(`${proxy.url}/r`)
  t.equal(fast.status, 503)
  t.equal(fast.headers['x-faultline-outcome'], 'short_circuited')
  t.equal(fast.headers['retry-after'], '1')
  t.equal(JSON.parse(fast.body).error, 'short_circuited')
  t.equal(hits(), 3, 'the upstream was not called')
  let m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_breaker_state', { route: 'r', state: 'open' }), 1)
  t.equal(sumOf(m, 'faultline_breaker_state', { route: 'r', state: 'closed' }), 0)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'r', outcome: 'short_circuited' }), 1)
  const routes = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body)
  t.equal(routes.routes[0].state.breaker.state, 'open', 'GET /routes shows the breaker')
  healthy = true
  await new Promise((resolve) => setTimeout(resolve, 250))
  const probe = await fetchText(`${proxy.url}/r`)
  t.equal(probe.status, 200, 'the probe went through')
  t.equal(hits(), 4)
  m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_breaker_state', { route: 'r', state: 'closed' }), 1)
  t.equal(sumOf(m, 'faultline_breaker_transitions_total', { route: 'r', from: 'closed', to: 'open' }), 1)
  t.equal(sumOf(m, 'faultline_breaker_transitions_total', { route: 'r', from: 'open', to: 'half_open' }), 1)
  t.equal(sumOf(m, 'faultline_breaker_transitions_total', { route: 'r', from: 'half_open', to: 'closed' }), 1)
})

t.test('an open breaker stops retries at once', async (t) => {
  const upstream = await scriptedUpstream(t, [503])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { retry: { attempts: 5, backoff: { baseMs: 1, maxMs: 2 } }, breaker: { consecutiveFailures: 2, openMs: 10_000 } } })]
  })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 503)
  t.equal(res.headers['x-faultline-outcome'], 'short_circuited')
  t.equal(res.headers['x-faultline-attempts'], '2')
  t.equal(upstream.hits(), 2, 'no attempts after the breaker opened')
})

t.test('admin: force-open, force-close and reset need the token; the breaker is shared per upstream and survives a reload', async (t) => {
  const upstream = await scriptedUpstream(t, [200])
  const breaker = { consecutiveFailures: 3, openMs: 1000 }
  const dir = await mkdtemp(join(tmpdir(), 'faultline-breaker-'))
  const file = join(dir, 'config.json')
  const config = {
    admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
    listen: { host: '127.0.0.1', port: 0 },
    routes: [
      route('a', '/a', upstream.url, { resilience: { breaker } }),
      route('b', '/b', upstream.url, { resilience: { breaker } })
    ]
  }
  await writeFile(file, JSON.stringify(config))
  const proxy = await startProxy(t, config, { configFile: file })
  const post = async (path: string, token?: string): Promise<{ status: number, body: any }> => {
    const res = await request(`${proxy.adminUrl}${path}`, { method: 'POST', headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} })
    return { status: res.statusCode, body: await res.body.json() }
  }
  t.equal((await post('/routes/a/breaker/force-open')).status, 401, 'refused without a token')
  t.equal((await post('/routes/a/breaker/force-open', 'wrong-token-wrong-token')).status, 401, 'refused with a wrong token')
  t.equal((await fetchText(`${proxy.url}/a`)).status, 200, 'still closed')
  const opened = await post('/routes/a/breaker/force-open', ADMIN_TOKEN)
  t.equal(opened.status, 200)
  t.equal(opened.body.state.state, 'forced_open')
  t.same(opened.body.routes, ['a', 'b'], 'one breaker for the upstream, shared by both routes')
  t.equal((await fetchText(`${proxy.url}/a`)).headers['x-faultline-outcome'], 'short_circuited')
  t.equal((await fetchText(`${proxy.url}/b`)).headers['x-faultline-outcome'], 'short_circuited', 'route b shares it')
  t.ok(proxy.logs.lines.some((l) => l.audit === 'breaker force-open'), 'audited')

  await proxy.faultline.reload()
  t.equal((await fetchText(`${proxy.url}/a`)).headers['x-faultline-outcome'], 'short_circuited', 'still open after a reload with the same config')

  const closed = await post('/routes/b/breaker/force-close', ADMIN_TOKEN)
  t.equal(closed.body.state.state, 'forced_closed')
  t.equal((await fetchText(`${proxy.url}/a`)).status, 200)
  t.equal((await post('/routes/a/breaker/reset', ADMIN_TOKEN)).body.state.state, 'closed')
  t.equal((await post('/routes/nope/breaker/reset', ADMIN_TOKEN)).status, 404)
  t.equal((await post('/routes/a/breaker/explode', ADMIN_TOKEN)).status, 404)

  await writeFile(file, JSON.stringify({ ...config, routes: [route('a', '/a', upstream.url, { resilience: { breaker: { ...breaker, openMs: 2000 } } }), route('c', '/c', upstream.url)] }))
  await post('/routes/a/breaker/force-open', ADMIN_TOKEN)
  await proxy.faultline.reload()
  t.equal((await fetchText(`${proxy.url}/a`)).status, 200, 'changed breaker options start a fresh breaker')
  t.equal((await post('/routes/c/breaker/reset', ADMIN_TOKEN)).status, 409, 'a route without a breaker')
})
