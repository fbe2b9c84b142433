/**
 * Results are tagged with the state period they were admitted in: a slow
 * result from before a trip never moves a breaker that has recovered
 * since, and after an auth-guard block one trial request goes first.
 */
import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'
import { CircuitBreaker } from '../../src/policies/breaker.js'
import { AuthGuard } from '../../src/policies/auth-guard.js'
import { authGuardSchema, breakerSchema } from '../../src/policies/schema.js'
import { PolicyRejectionError } from '../../src/core/errors.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

function rejected (fn: () => unknown): string {
  try {
    fn()
    return 'admitted'
  } catch (err) {
    return err instanceof PolicyRejectionError ? err.reason : String(err)
  }
}

t.test('unit: failures admitted before a trip do not re-open a recovered breaker', async (t) => {
  let now = 0
  const b = new CircuitBreaker('u:1', breakerSchema.parse({ consecutiveFailures: 2, openMs: 100, halfOpenProbes: 1 }), () => now)
  const slow1 = b.admit()
  const slow2 = b.admit()
  b.record(b.admit(), false)
  b.record(b.admit(), false)
  t.equal(b.state.name, 'open')
  now = 150
  const probe = b.admit()
  t.equal(b.state.name, 'half_open')
  b.record(probe, true)
  t.equal(b.state.name, 'closed', 'recovered')
  b.record(slow1, false)
  b.record(slow2, false)
  t.equal(b.state.name, 'closed', 'the two slow failures belong to the period before the trip')
  b.record(b.admit(), false)
  b.record(b.admit(), false)
  t.equal(b.state.name, 'open', 'failures of the current period still count')
})

t.test('through the proxy: two slow 503s admitted before the trip do not re-open the recovered breaker', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    const status = req.url?.includes('/fail') === true ? 503 : 200
    // /slow answers its 503 long after the breaker has tripped and recovered.
    setTimeout(() => { res.writeHead(status).end(String(status)) }, req.url?.includes('/slow') === true ? 1_500 : 0)
  })
  const proxy = await startProxy(t, {
    routes: [route('g', '/g', upstream.url, {
      resilience: { timeoutMs: 5_000, breaker: { consecutiveFailures: 2, openMs: 300, halfOpenProbes: 1 } }
    })]
  })
  const slow = [fetchText(`${proxy.url}/g/slow/fail`), fetchText(`${proxy.url}/g/slow/fail`)]
  await sleep(100)
  t.equal((await fetchText(`${proxy.url}/g/fail`)).status, 503)
  t.equal((await fetchText(`${proxy.url}/g/fail`)).status, 503)
  const shorted = await fetchText(`${proxy.url}/g/ok`)
  t.equal(JSON.parse(shorted.body).error, 'short_circuited', 'tripped')
  await sleep(400)
  const probe = await fetchText(`${proxy.url}/g/ok`)
  t.equal(probe.status, 200, 'the probe went through and closed the breaker')
  for (const answer of await Promise.all(slow)) t.equal(answer.status, 503, 'the slow failures came back after the recovery')
  const after = await fetchText(`${proxy.url}/g/ok`)
  t.equal(after.status, 200, 'still closed: not short-circuited')
  t.equal(sumOf(await scrape(proxy), 'faultline_breaker_state', { route: 'g', state: 'closed' }), 1)
})

t.test('unit: after an auth-guard block one trial request goes first', async (t) => {
  let now = 0
  const g = new AuthGuard('u:1', authGuardSchema.parse({ failures: 2, blockMs: 100 }), () => now)
  const key = 'k'
  const slow = g.check(key)
  g.record(401, key, g.check(key))
  g.record(401, key, g.check(key))
  t.equal(rejected(() => g.check(key)), 'auth_blocked', 'blocked')
  now = 150
  const trial = g.check(key)
  t.equal(rejected(() => g.check(key)), 'auth_blocked', 'the others wait for the trial')
  g.record(200, key, slow)
  t.equal(rejected(() => g.check(key)), 'auth_blocked', 'an answer admitted before the block does not clear it')
  g.record(401, key, trial)
  t.equal(rejected(() => g.check(key)), 'auth_blocked', 'a failed trial blocks again at once')
  now = 300
  const second = g.check(key)
  t.equal(rejected(() => g.check(key)), 'auth_blocked')
  g.abandon(key, second)
  const third = g.check(key)
  t.pass('a trial that ended without an answer passes its turn on')
  g.record(200, key, third)
  t.equal(rejected(() => g.check(key)), 'admitted', 'a good trial clears the block for everyone')
  t.equal(rejected(() => g.check(key)), 'admitted')
})

t.test('unit: after an origin-wide auth-guard block one trial request goes first, for every credential', async (t) => {
  let now = 0
  const g = new AuthGuard('u:1', authGuardSchema.parse({ failures: 1, blockMs: 100, originAfter: 2 }), () => now)
  // Two credentials that worked, then both refused: a rotation gone wrong trips the whole origin.
  for (const key of ['a', 'b']) g.record(200, key, g.check(key))
  const slow = g.check('c')
  for (const key of ['a', 'b']) g.record(401, key, g.check(key))
  t.equal(rejected(() => g.check('c')), 'auth_blocked', 'the origin is blocked for every credential')
  now = 150
  const trial = g.check('c')
  t.ok(trial < 0, 'the first request after the block is the trial')
  t.equal(rejected(() => g.check('d')), 'auth_blocked', 'every other request waits for the trial')
  t.equal(rejected(() => g.check('c')), 'auth_blocked', 'the trial\'s own credential too')
  g.record(200, 'c', slow)
  t.equal(rejected(() => g.check('d')), 'auth_blocked', 'an answer admitted before the block does not end it')
  g.record(403, 'c', trial)
  t.equal(rejected(() => g.check('d')), 'auth_blocked', 'a refused trial blocks the origin again at once')
  t.equal((g.snapshot() as { blocked: boolean }).blocked, true)
  now = 300
  const second = g.check('d')
  g.abandon('d', second)
  const third = g.check('e')
  t.ok(third < 0, 'a trial that ended without an answer passes its turn on')
  t.equal(rejected(() => g.check('f')), 'auth_blocked')
  g.record(200, 'e', third)
  t.equal(rejected(() => g.check('f')), 'admitted', 'a good trial lets all traffic resume')
  t.equal(rejected(() => g.check('d')), 'admitted')
})
