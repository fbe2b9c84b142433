/**
 * The retry decision as a table: one row per branch of
 * src/policies/retry-decision.ts. The same decisions through a real proxy
 * are in retry.test.ts and documented.test.ts.
 */
import t from 'tap'
import { UpstreamError, type ErrorClass, type TimeoutPhase } from '../../src/core/errors.js'
import { retrySchema } from '../../src/policies/schema.js'
import { backoffMs, failedClass, retryAfterMs, retryDecision, type FailedAttempt, type GiveUpReason, type RetryDecision, type RetryFacts } from '../../src/policies/retry-decision.js'

const NOW = Date.parse('Wed, 02 Dec 2026 04:00:00 GMT')

const answered = (status: number, errorClass: ErrorClass, retryAfter?: string | string[]): FailedAttempt =>
  ({ kind: 'answered', status, errorClass, retryAfter })
const thrown = (errorClass: ErrorClass, timeoutPhase?: TimeoutPhase): FailedAttempt =>
  ({ kind: 'thrown', error: new UpstreamError(errorClass, `test ${errorClass}`, { timeoutPhase }) })
const after = (ms: number): RetryDecision => ({ retry: true, delayMs: ms })
const giveUp = (reason: GiveUpReason): RetryDecision => ({ retry: false, reason })

/** A 503 on the first of three attempts, with room for everything: the row says what differs. */
const BASE: RetryFacts = {
  attempt: 1,
  failed: answered(503, 'http_5xx'),
  replayable: true,
  resendable: true,
  msLeft: 10_000,
  budgetAllows: true,
  now: NOW,
  random: 0.5
}

type Row = [string, Partial<RetryFacts>, RetryDecision]

t.test('the default retry options: one row per branch', async (t) => {
  // backoff 100 ms doubling up to 350, no jitter; Retry-After honoured up to 2 s.
  const decide = retryDecision(retrySchema.parse({ attempts: 3, backoff: { baseMs: 100, maxMs: 350, jitter: 'none' }, maxRetryAfterMs: 2000 }))
  const rows: Row[] = [
    // attempts
    ['a 503 on the first attempt: retry after baseMs', {}, after(100)],
    ['the second attempt: the delay doubles', { attempt: 2 }, after(200)],
    ['the last attempt: attempts used', { attempt: 3 }, giveUp('attempts_used')],
    // what retry.on names (the default list)
    ['502 is retried', { failed: answered(502, 'http_5xx') }, after(100)],
    ['504 is retried', { failed: answered(504, 'http_5xx') }, after(100)],
    ['500 is not: only 502, 503 and 504 of the 5xx', { failed: answered(500, 'http_5xx') }, giveUp('not_retryable')],
    ['429 is retried (rate_limited)', { failed: answered(429, 'rate_limited') }, after(100)],
    ['401 is not: bad credentials are not retried', { failed: answered(401, 'auth') }, giveUp('not_retryable')],
    ['a refused connection is retried', { failed: thrown('connect') }, after(100)],
    ['a reset is retried', { failed: thrown('reset') }, after(100)],
    ['an invalid response is retried', { failed: thrown('invalid_response') }, after(100)],
    ['an attempt timeout is retried', { failed: thrown('timeout', 'headers') }, after(100)],
    ['the request\'s own deadline (a total timeout) is not', { failed: thrown('timeout', 'total') }, giveUp('not_retryable')],
    ['a thrown auth failure is not', { failed: thrown('auth') }, giveUp('not_retryable')],
    // method and body
    ['an unsafe method the upstream answered: not sent twice', { resendable: false }, giveUp('not_resendable')],
    ['an unsafe method whose connection reset: the upstream may have seen it', { resendable: false, failed: thrown('reset') }, giveUp('not_resendable')],
    ['an unsafe method that never connected: sent again', { resendable: false, failed: thrown('connect') }, after(100)],
    ['an unsafe method whose connect timed out: sent again', { resendable: false, failed: thrown('timeout', 'connect') }, after(100)],
    ['a body too large to keep: never sent twice, not even after a refused connection', { replayable: false, failed: thrown('connect') }, giveUp('not_resendable')],
    ['a body too large to keep, safe method: not sent twice', { replayable: false }, giveUp('not_resendable')],
    // Retry-After
    ['Retry-After longer than the backoff: waited for', { failed: answered(503, 'http_5xx', '1') }, after(1000)],
    ['Retry-After 0: the backoff stands (never sooner than the backoff either)', { failed: answered(429, 'rate_limited', '0') }, after(100)],
    ['Retry-After exactly maxRetryAfterMs: honoured', { failed: answered(503, 'http_5xx', '2') }, after(2000)],
    ['Retry-After past maxRetryAfterMs: give up, the answer goes out', { failed: answered(429, 'rate_limited', '3') }, giveUp('retry_after_too_long')],
    ['Retry-After as an HTTP-date: the time until it', { failed: answered(503, 'http_5xx', 'Wed, 02 Dec 2026 04:00:01 GMT') }, after(1000)],
    ['Retry-After as a date past maxRetryAfterMs', { failed: answered(503, 'http_5xx', 'Wed, 02 Dec 2026 04:00:05 GMT') }, giveUp('retry_after_too_long')],
    ['Retry-After in no allowed form: ignored, the backoff applies', { failed: answered(503, 'http_5xx', '1.5') }, after(100)],
    ['a Retry-After on a failure retry.on does not name: still not retried', { failed: answered(500, 'http_5xx', '1') }, giveUp('not_retryable')],
    // the deadline
    ['the pause ends exactly at the deadline: the last answer now, not a 504 later', { msLeft: 100 }, giveUp('no_time_left')],
    ['1 ms to spare after the pause: retried', { msLeft: 101 }, after(100)],
    ['a Retry-After the deadline cannot wait for', { msLeft: 999, failed: answered(503, 'http_5xx', '1') }, giveUp('no_time_left')],
    ['the deadline has passed', { msLeft: -5 }, giveUp('no_time_left')],
    // the budget: asked last, so only a retry that would be sent counts as refused by it
    ['the budget is spent', { budgetAllows: false }, giveUp('budget_exhausted')],
    ['budget spent and attempts used: attempts_used', { budgetAllows: false, attempt: 3 }, giveUp('attempts_used')],
    ['budget spent and not retryable: not_retryable', { budgetAllows: false, failed: answered(500, 'http_5xx') }, giveUp('not_retryable')],
    ['budget spent and not resendable: not_resendable', { budgetAllows: false, resendable: false }, giveUp('not_resendable')],
    ['budget spent and Retry-After too long: retry_after_too_long', { budgetAllows: false, failed: answered(503, 'http_5xx', '9') }, giveUp('retry_after_too_long')],
    ['budget spent and no time left: no_time_left', { budgetAllows: false, msLeft: 10 }, giveUp('no_time_left')]
  ]
  for (const [name, facts, want] of rows) t.same(decide({ ...BASE, ...facts }), want, name)
})

t.test('backoff: capped at maxMs; full jitter draws in [0, delay)', async (t) => {
  const capped = retryDecision(retrySchema.parse({ attempts: 10, backoff: { baseMs: 100, maxMs: 350, jitter: 'none' } }))
  t.same([1, 2, 3, 4, 9].map((attempt) => capped({ ...BASE, attempt })), [after(100), after(200), after(350), after(350), after(350)])
  const jittered = retryDecision(retrySchema.parse({ attempts: 5, backoff: { baseMs: 100, maxMs: 1000, jitter: 'full' } }))
  t.same(jittered({ ...BASE, attempt: 2, random: 0.5 }), after(100), 'half of 200')
  t.same(jittered({ ...BASE, attempt: 2, random: 0.999 }), after(199), 'floored')
  t.same(jittered({ ...BASE, attempt: 1, random: 0 }), after(0), 'no pause at all')
  t.same(jittered({ ...BASE, attempt: 1, random: 0, msLeft: 0 }), giveUp('no_time_left'), 'even no pause needs time left for the attempt')
  t.same(jittered({ ...BASE, random: 0.1, failed: answered(503, 'http_5xx', '1') }), after(1000), 'jitter never goes below a Retry-After')
})

t.test('retry.on: exact statuses and classes', async (t) => {
  const decide = retryDecision(retrySchema.parse({ on: [500, 'reset'], backoff: { baseMs: 10, jitter: 'none' } }))
  t.same(decide({ ...BASE, failed: answered(500, 'http_5xx') }), after(10), 'a listed status')
  t.same(decide({ ...BASE, failed: answered(503, 'http_5xx') }), giveUp('not_retryable'), 'another 5xx: its class is not listed')
  t.same(decide({ ...BASE, failed: thrown('reset') }), after(10), 'a listed class')
  t.same(decide({ ...BASE, failed: thrown('connect') }), giveUp('not_retryable'), 'an unlisted class')
  const byClass = retryDecision(retrySchema.parse({ on: ['http_5xx', 'auth'], backoff: { baseMs: 10, jitter: 'none' } }))
  t.same(byClass({ ...BASE, failed: answered(500, 'http_5xx') }), after(10), 'http_5xx names every 5xx')
  t.same(byClass({ ...BASE, failed: answered(403, 'auth') }), after(10), 'auth, when a route asks for it')
  const once = retryDecision(retrySchema.parse({ attempts: 1 }))
  t.same(once(BASE), giveUp('attempts_used'), 'attempts: 1 never retries')
})

t.test('failedClass: the class a retry is counted under', async (t) => {
  t.equal(failedClass(answered(429, 'rate_limited')), 'rate_limited')
  t.equal(failedClass(thrown('reset')), 'reset')
})

t.test('Retry-After: delay-seconds or one of the three HTTP-date forms, nothing else', async (t) => {
  const now = Date.parse('Sun, 06 Nov 1994 08:49:00 GMT')
  const rows: Array<[string | string[] | undefined, number | undefined, string]> = [
    ['7', 7000, 'delay-seconds'],
    ['0', 0, 'zero: go now'],
    [' 12 ', 12_000, 'spaces around it'],
    [['3', '9'], 3000, 'the first of repeated headers'],
    ['Sun, 06 Nov 1994 08:49:37 GMT', 37_000, 'IMF-fixdate'],
    ['Sunday, 06-Nov-94 08:49:37 GMT', 37_000, 'RFC 850 date'],
    ['Sun Nov  6 08:49:37 1994', 37_000, 'asctime, one-digit day, read as GMT'],
    ['Sun Nov 16 08:49:37 1994', 10 * 86_400_000 + 37_000, 'asctime, two-digit day'],
    ['Sun, 06 Nov 1994 08:48:00 GMT', 0, 'a date in the past: go now, never a negative wait'],
    [undefined, undefined, 'no header'],
    ['', undefined, 'empty'],
    ['1.5', undefined, 'a fraction'],
    ['-1', undefined, 'negative'],
    ['7s', undefined, 'a unit'],
    ['x7', undefined, 'a prefix'],
    ['soon', undefined, 'words'],
    ['2099-01-01', undefined, 'ISO 8601, which Date.parse would guess at'],
    ['Sun, 06 Nov 1994 08:49:37', undefined, 'IMF-fixdate without GMT'],
    ['Sun, 06 Nov 1994 08:49:37 GMT junk', undefined, 'trailing text'],
    ['junk Sun, 06 Nov 1994 08:49:37 GMT', undefined, 'leading text'],
    ['Sun, 6 Nov 1994 08:49:37 GMT', undefined, 'IMF-fixdate with a one-digit day'],
    ['Xyz, 06 Nov 1994 08:49:37 GMT', undefined, 'no such day'],
    ['Sun, 06 Foo 1994 08:49:37 GMT', undefined, 'no such month'],
    ['Sun, 06 Nov 1994 8:49:37 GMT', undefined, 'a one-digit hour'],
    ['Funday, 06-Nov-94 08:49:37 GMT', undefined, 'RFC 850 with no such day'],
    ['Sunday, 06-Nov-1994 08:49:37 GMT', undefined, 'RFC 850 with a four-digit year'],
    ['Sunday, 06-Nov-94 08:49:37 GMT x', undefined, 'RFC 850 with trailing text'],
    ['x Sunday, 06-Nov-94 08:49:37 GMT', undefined, 'RFC 850 with leading text'],
    ['Sun Nov 6 08:49:37 1994', undefined, 'asctime with a single space before a one-digit day'],
    ['Sun Nov  6 08:49:37 94', undefined, 'asctime with a two-digit year'],
    ['Sun Nov  6 08:49:37 1994 GMT', undefined, 'asctime with a zone'],
    ['x Sun Nov  6 08:49:37 1994', undefined, 'asctime with leading text'],
    ['Sun, 06 Nov 1994 99:49:37 GMT', undefined, 'IMF-fixdate at an hour that does not exist'],
    ['Sun Nov  6 25:49:37 1994', undefined, 'asctime at an hour that does not exist']
  ]
  for (const [value, want, name] of rows) t.equal(retryAfterMs(value, now), want, `${JSON.stringify(value)}: ${name}`)
  t.ok(Math.abs((retryAfterMs(new Date(Date.now() + 5000).toUTCString()) ?? 0) - 5000) <= 1000, 'now defaults to the clock')
  // An asctime date names no zone and means GMT: the same wait wherever the proxy runs.
  const tz = process.env.TZ
  process.env.TZ = 'America/New_York'
  t.teardown(() => { if (tz === undefined) delete process.env.TZ; else process.env.TZ = tz })
  t.equal(retryAfterMs('Sun Nov  6 08:49:37 1994', now), 37_000, 'asctime is GMT in any local time zone')
  t.equal(retryAfterMs('Sun, 06 Nov 1994 08:49:37 GMT', now), 37_000, 'and so is an IMF-fixdate')
})

t.test('backoffMs: base x 2^(retry-1), capped; full jitter scales it', async (t) => {
  const b = { baseMs: 100, maxMs: 350, jitter: 'none' as const }
  t.same([1, 2, 3, 4].map((n) => backoffMs(b, n)), [100, 200, 350, 350])
  t.equal(backoffMs({ ...b, jitter: 'full' }, 2, () => 0.5), 100)
  const draw = backoffMs({ ...b, jitter: 'full' }, 3)
  t.ok(draw >= 0 && draw < 350 && Number.isInteger(draw), `the default draw is Math.random's (${draw})`)
})
