import t from 'tap'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, type StartedProxy, type Teardown } from '../helpers.js'
import { scriptedUpstream } from './fixtures.js'
import type { IncomingMessage } from 'node:http'
import { AuthGuard, NO_CREDENTIALS, credentialKey } from '../../src/policies/auth-guard.js'
import { authGuardSchema } from '../../src/policies/schema.js'
import { PolicyRejectionError } from '../../src/core/errors.js'

t.test('repeated 401s stop further attempts for a while, with a 503 that says why', async (t) => {
  const upstream = await scriptedUpstream(t, [401, 401, 401, 200])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, {
      resilience: { authGuard: { failures: 2, blockMs: 300 }, retry: { attempts: 3, backoff: { baseMs: 1 } }, fallback: ['cache'] }
    })]
  })
  const first = await fetchText(`${proxy.url}/r`)
  t.equal(first.status, 401, 'the first 401 is passed on, not retried')
  t.equal(first.headers['x-faultline-attempts'], '1')
  t.equal((await fetchText(`${proxy.url}/r`)).status, 401)
  const blocked = await fetchText(`${proxy.url}/r`)
  t.equal(blocked.status, 503)
  const body = JSON.parse(blocked.body)
  t.equal(body.error, 'auth_blocked')
  t.match(body.message, /401 to 2 requests in a row.*credentials/)
  t.ok(Number(blocked.headers['retry-after']) >= 1)
  t.equal(upstream.hits(), 2, 'nothing was sent while blocked')
  t.equal(blocked.headers['x-faultline-fallback'], undefined, 'auth failures fail closed: no fallback')
  await new Promise((resolve) => setTimeout(resolve, 350))
  const again = await fetchText(`${proxy.url}/r`)
  t.equal(again.status, 401, 'after the block a request goes through')
  t.equal((await fetchText(`${proxy.url}/r`)).status, 503, 'and one more 401 blocks again at once')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_auth_guard_trips_total', { route: 'r' }), 2)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'r', outcome: 'failed', status_class: '5xx' }), 2)
})

t.test('any other answer clears the count', async (t) => {
  const upstream = await scriptedUpstream(t, [403, 200, 403, 200, 403])
  const proxy = await startProxy(t, { routes: [route('r', '/r', upstream.url, { resilience: { authGuard: { failures: 2, blockMs: 10_000 } } })] })
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await fetchText(`${proxy.url}/r`)).status)
  t.same(statuses, [403, 200, 403, 200, 403])
})

t.test('auth fails closed: neither a static answer nor an alternate origin stands in for a 401 or an auth block', async (t) => {
  const primary = await scriptedUpstream(t, [401, 401, 401, 401])
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'from-alternate' }])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', primary.url, {
      upstream: { url: primary.url, alternates: [alternate.url] },
      resilience: {
        authGuard: { failures: 2, blockMs: 10_000 },
        fallback: ['alternate', { static: { status: 200, body: '{"degraded":true}' } }]
      }
    })]
  })
  for (const i of [1, 2]) {
    const denied = await fetchText(`${proxy.url}/r`)
    t.equal(denied.status, 401, `401 number ${i} goes to the caller as it is`)
    t.equal(denied.headers['x-faultline-fallback'], undefined)
  }
  const blocked = await fetchText(`${proxy.url}/r`)
  t.equal(blocked.status, 503, 'blocked by the auth guard')
  t.equal(JSON.parse(blocked.body).error, 'auth_blocked', 'not the canned {"degraded":true}')
  t.equal(blocked.headers['x-faultline-fallback'], undefined)
  t.equal(alternate.hits(), 0, 'the alternate origin was never asked to stand in')
  t.equal(primary.hits(), 2)
})

/** A route with an auth guard and header-triggered faults, before an upstream that answers the status in `x-real-status` (200 without). */
interface Guarded { url: string, proxy: StartedProxy, hits: () => number }

async function guardedByHeader (t: Teardown, blockMs = 30_000): Promise<Guarded> {
  const upstream = await startUpstream(t, (req, res) => {
    const status = Number(req.headers['x-real-status'] ?? 200)
    res.writeHead(status, { 'content-length': '2' })
    res.end('ok')
  })
  const proxy = await startProxy(t, {
    routes: [route('canary', '/canary', upstream.url, {
      resilience: { authGuard: { failures: 2, blockMs } },
      chaos: { enabled: true, allowHeaderTriggers: true }
    })]
  })
  return { url: `${proxy.url}/canary/x`, proxy, hits: upstream.hits }
}

const INJECT_401 = { 'x-faultline-fault': 'auth' }

t.test('the route\'s own guard counts injected 401s only: a real 401 or 403 between two never adds to it, a real success clears it', async (t) => {
  for (const real of [401, 403]) {
    const { url, hits } = await guardedByHeader(t)
    t.equal((await fetchText(url, { headers: INJECT_401 })).status, 401)
    t.equal((await fetchText(url, { headers: { 'x-real-status': String(real) } })).status, real, `a real ${real}`)
    const next = await fetchText(url)
    t.equal(next.status, 200, `one injected 401 and one real ${real} are one each, not two in a row for either guard`)
    t.equal(hits(), 2)
  }
  const { url } = await guardedByHeader(t)
  t.equal((await fetchText(url, { headers: INJECT_401 })).status, 401)
  t.equal((await fetchText(url)).status, 200, 'a real success')
  t.equal((await fetchText(url, { headers: INJECT_401 })).status, 401)
  t.equal((await fetchText(url)).status, 200, 'the real success in between cleared the injected count too')
})

t.test('a block by the route\'s own guard is chaos\'s doing: labeled injected in the metrics and the log', async (t) => {
  const { url, proxy, hits } = await guardedByHeader(t)
  for (let i = 0; i < 2; i++) t.equal((await fetchText(url, { headers: INJECT_401 })).status, 401)
  const blocked = await fetchText(url)
  t.equal(blocked.status, 503)
  t.match(blocked.body, /auth_blocked.*as injected on route canary/)
  t.equal(hits(), 0, 'the upstream was never asked')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'canary', status_class: '5xx', injected: 'true' }), 1, 'the 503 is counted as injected')
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'canary', status_class: '5xx', injected: 'false' }), 0, 'and not as a real failure')
  const line = proxy.logs.lines.find((l) => l.msg === 'request' && l.status === 503)
  t.equal(line?.injected, true, 'the request log line says injected')
})

t.test('the route\'s own trial after its block, answered by a real 401, passes the trial on instead of holding every request back', async (t) => {
  const { url, hits } = await guardedByHeader(t, 200)
  for (let i = 0; i < 2; i++) t.equal((await fetchText(url, { headers: INJECT_401 })).status, 401)
  t.equal((await fetchText(url)).status, 503, 'the route\'s own guard is blocking')
  await new Promise((resolve) => setTimeout(resolve, 250))
  t.equal((await fetchText(url, { headers: { 'x-real-status': '401' } })).status, 401, 'the trial: a real 401, the shared guard\'s to count')
  const next = await fetchText(url)
  t.equal(next.status, 200, 'the next request is the route guard\'s trial and goes through')
  t.equal(hits(), 2)
})

t.test('reloads: a guard whose options went away and came back starts fresh, not blocked', async (t) => {
  const upstream = await scriptedUpstream(t, [401, 401, 200])
  const dir = await mkdtemp(join(tmpdir(), 'faultline-auth-guard-'))
  const file = join(dir, 'config.json')
  const config = (resilience: object): Parameters<typeof startProxy>[1] => ({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    routes: [route('r', '/r', upstream.url, { resilience })]
  })
  const guarded = config({ authGuard: { failures: 2, blockMs: 60_000 } })
  await writeFile(file, JSON.stringify(guarded))
  const proxy = await startProxy(t, guarded, { configFile: file })
  for (let i = 0; i < 2; i++) t.equal((await fetchText(`${proxy.url}/r`)).status, 401)
  t.equal((await fetchText(`${proxy.url}/r`)).status, 503, 'blocked')
  await proxy.faultline.reload()
  t.equal((await fetchText(`${proxy.url}/r`)).status, 503, 'a reload that keeps the guard keeps its block')

  await writeFile(file, JSON.stringify(config({})))
  await proxy.faultline.reload()
  await writeFile(file, JSON.stringify(guarded))
  await proxy.faultline.reload()
  t.equal((await fetchText(`${proxy.url}/r`)).status, 200, 'the guard of two configs ago was let go: the request reached the upstream')
  t.equal(upstream.hits(), 3)
})

/** The PolicyRejectionError check() throws, or undefined when it admits. */
function refusal (guard: AuthGuard, key?: string): PolicyRejectionError | undefined {
  try {
    guard.check(key)
    return undefined
  } catch (err) {
    if (err instanceof PolicyRejectionError) return err
    throw err
  }
}

t.test('unit: a credential\'s block, its one trial request, and what the 503 and GET /routes say', async (t) => {
  let now = 0
  const guard = new AuthGuard('u:1', authGuardSchema.parse({ failures: 2, blockMs: 2500 }), () => now)
  let trips = 0
  guard.onTrip(() => { trips++ })
  guard.record(401, 'k', guard.check('k'))
  t.equal(refusal(guard, 'k'), undefined, 'one 401 of two: not blocked yet')
  t.match(guard.snapshot(), { blockedCredentials: 0 })
  guard.record(403, 'k', guard.check('k'))
  t.equal(trips, 1, 'the block is reported')
  now = 1000
  const blocked = refusal(guard, 'k')!
  t.equal(blocked.reason, 'auth_blocked')
  t.equal(blocked.retryAfterS, 2, '1.5 s left: Retry-After rounds up')
  t.match(blocked.message, /^u:1 answered 403 to 2 requests in a row with these credentials, so faultline is holding requests with them back for 2 s /)
  t.match(guard.snapshot(), { upstream: 'u:1', blocked: false, blockedForMs: 0, originTrialInFlight: false, blockedCredentials: 1, noCredentialsBlocked: false })
  t.equal(refusal(guard, 'other'), undefined, 'another credential passes')

  now = 2500
  t.match(guard.snapshot(), { blockedCredentials: 0 }, 'at blockMs the block is over')
  const trial = guard.check('k')
  const waiting = refusal(guard, 'k')!
  t.equal(waiting.retryAfterS, 1)
  t.match(waiting.message, /one trial request is checking whether they work again/)
  guard.abandon('k', trial)
  const trial2 = guard.check('k')
  t.pass('a trial whose client left passes its turn to the next request')
  guard.record(401, 'k', trial2)
  t.equal(trips, 2, 'the trial\'s 401 blocks again at once')
  t.ok(refusal(guard, 'k'), 'blocked again')
  now = 5000
  const trial3 = guard.check('k')
  guard.record(200, 'k', trial3)
  t.equal(refusal(guard, 'k'), undefined, 'a trial that is not a 401/403 clears the block')
  t.equal(refusal(guard, 'k'), undefined, 'and lets every request through')
  guard.record(401, 'k', guard.check('k'))
  t.equal(refusal(guard, 'k'), undefined, 'and the count: one 401 after it does not block')
})

t.test('unit: an answer admitted before a block or a trial moves nothing', async (t) => {
  let now = 0
  const guard = new AuthGuard('u:1', authGuardSchema.parse({ failures: 2, blockMs: 1000 }), () => now)
  const slow = guard.check('k')
  const slow2 = guard.check('k')
  guard.record(401, 'k', guard.check('k'))
  guard.record(401, 'k', guard.check('k'))
  guard.record(200, 'k', slow)
  t.ok(refusal(guard, 'k'), 'a slow 200 admitted before the block does not clear it')
  now = 1000
  const trial = guard.check('k')
  guard.abandon('k', slow2)
  t.ok(refusal(guard, 'k'), 'nor does its client leaving free the trial\'s turn')
  guard.record(200, 'k', trial)
  guard.record(401, 'k', slow2)
  guard.record(401, 'k', guard.check('k'))
  t.equal(refusal(guard, 'k'), undefined, 'a late 401 from before the trial does not count toward the next block')
})

t.test('unit: the origin trips on credentials that worked and are blocked at once, then one trial request decides', async (t) => {
  let now = 0
  const guard = new AuthGuard('u:1', authGuardSchema.parse({ failures: 1, blockMs: 1000, originAfter: 2 }), () => now)
  let trips = 0
  guard.onTrip(() => { trips++ })
  for (const k of ['a', 'b', 'c']) guard.record(200, k, guard.check(k))
  guard.record(401, NO_CREDENTIALS, guard.check())
  guard.record(401, 'made-up', guard.check('made-up'))
  t.equal(refusal(guard, 'c'), undefined, 'no credentials and one that never worked: the origin is not tripped')
  guard.record(401, 'a', guard.check('a'))
  now = 1000
  guard.record(401, 'b', guard.check('b'))
  t.equal(refusal(guard, 'c'), undefined, 'a\'s block ended as b\'s started: not two at once')
  now = 1500
  guard.record(403, 'a', guard.check('a'))
  t.equal(trips, 5)
  const held = refusal(guard, 'c')!
  t.equal(held.retryAfterS, 1)
  t.match(held.message, /^u:1 answered 403 for 2 different credentials that had worked before, so faultline is holding every request to it back for 1 s /)
  t.match(guard.snapshot(), { blocked: true, blockedForMs: 1000, originTrialInFlight: false })
  now = 2000
  t.ok(refusal(guard, 'c'), 'still blocked a moment before blockMs')
  now = 2500
  const trial = guard.check('c')
  t.ok(trial < 0, 'the first request after the block is the origin\'s trial')
  t.match(guard.snapshot(), { blocked: false, originTrialInFlight: true })
  const waiting = refusal(guard, 'd')!
  t.equal(waiting.retryAfterS, 1)
  t.match(waiting.message, /one trial request is checking whether it accepts credentials again/)
  guard.abandon('c', trial)
  const trial2 = guard.check('c')
  t.not(trial2, trial, 'its client left: the next request is the trial')
  guard.record(401, 'c', trial2)
  t.equal(trips, 7, 'the trial\'s 401 blocks the origin again (and the credential)')
  t.match(refusal(guard, 'd')!.message, /holding every request to it back for 1 s/)
  guard.record(200, 'c', trial2)
  t.ok(refusal(guard, 'd'), 'a second answer for the same trial moves nothing')
  now = 3500
  const trial3 = guard.check('d')
  guard.record(200, 'd', trial3)
  t.equal(refusal(guard, 'e'), undefined, 'a trial answered 200 ends the origin block')
  t.equal(refusal(guard, 'e'), undefined, 'for every request')
  t.match(guard.snapshot(), { blocked: false, originTrialInFlight: false })
})

t.test('unit: what counts as a credential that worked, as no credentials, and as a stale origin trial', async (t) => {
  let now = 0
  const guard = new AuthGuard('u:1', authGuardSchema.parse({ failures: 2, blockMs: 1000, originAfter: 2 }), () => now)
  t.equal(credentialKey({ headers: { authorization: '' } } as unknown as IncomingMessage), NO_CREDENTIALS, 'an empty Authorization is no credential')
  // Anonymous requests that got a 200 once are still not a credential that worked: they never trip the origin.
  guard.record(401, NO_CREDENTIALS, guard.check())
  guard.record(200, NO_CREDENTIALS, guard.check())
  guard.record(401, NO_CREDENTIALS, guard.check())
  guard.record(401, NO_CREDENTIALS, guard.check())
  // A credential refused once and then accepted has worked.
  guard.record(401, 'a', guard.check('a'))
  guard.record(200, 'a', guard.check('a'))
  t.equal(refusal(guard, 'a'), undefined)
  guard.record(401, 'a', guard.check('a'))
  t.equal(refusal(guard, 'x'), undefined, 'no credentials blocked and one credential refused once: not the origin')
  // Two requests in flight with b; the first's 200 does not make the second's 401 stale.
  guard.record(200, 'b', guard.check('b'))
  const b1 = guard.check('b')
  const b2 = guard.check('b')
  guard.record(200, 'b', b1)
  guard.record(401, 'b', b2)
  guard.record(401, 'b', guard.check('b'))
  guard.record(401, 'a', guard.check('a'))
  const held = refusal(guard, 'x')!
  t.match(held.message, /2 different credentials that had worked before, so faultline is holding every request to it back for 1 s instead of risking lockouts; check the credentials the services send/, 'a and b worked and are blocked: the origin trips')

  now = 1000
  const trial = guard.check('x')
  guard.abandon('x', trial)
  const trial2 = guard.check('x')
  guard.record(200, 'x', trial)
  guard.abandon('x', trial)
  t.match(refusal(guard, 'y')!.message, /one trial request is checking/, 'a trial that passed its turn moves nothing afterwards')
  guard.record(403, 'x', trial2)
  t.match(refusal(guard, 'y')!.message, /^u:1 answered 403 for 2 different credentials/, 'a 403 to the trial blocks the origin again')
})
