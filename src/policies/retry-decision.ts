/**
 * The retry decision as a pure function (cockatiel's retry keeps the same
 * split): given how one attempt failed and what the request, the route's
 * budget and the deadline still allow, either retry after N ms or give up,
 * with the reason. No clock, timer, budget or body is touched here: the
 * executor in retry.ts reads them and hands in plain values, so each
 * branch is one row of a table in test/policies/retry-decision.test.ts.
 */
import { FailureRule, neverSent, type ErrorClass, type UpstreamError } from '../core/errors.js'
import type { RetryConfig } from './schema.js'

const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)'
const MONTH = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)'
const TIME = '\\d{2}:\\d{2}:\\d{2}'
/** IMF-fixdate and the two obsolete forms a recipient must still accept (RFC 9110 §5.6.7). */
const IMF_FIXDATE = new RegExp(`^${DAY}, \\d{2} ${MONTH} \\d{4} ${TIME} GMT$`)
const RFC850_DATE = new RegExp(`^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), \\d{2}-${MONTH}-\\d{2} ${TIME} GMT$`)
const ASCTIME_DATE = new RegExp(`^${DAY} ${MONTH} (?: \\d|\\d{2}) ${TIME} \\d{4}$`)

/**
 * Retry-After in ms, in one of the two forms RFC 9110 §10.2.3 allows:
 * delay-seconds or an HTTP-date. Anything else ("1.5", "-1", "soon", a
 * date in another format that Date.parse would guess at) is ignored
 * (undefined), never read as "now".
 */
export function retryAfterMs (value: string | string[] | undefined, now = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value
  if (raw === undefined) return undefined
  const text = raw.trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  let date: number
  if (IMF_FIXDATE.test(text) || RFC850_DATE.test(text)) date = Date.parse(text)
  else if (ASCTIME_DATE.test(text)) date = Date.parse(text + ' GMT') // asctime is GMT without saying so
  else return undefined
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
}

/** Delay before retry number `retry` (1-based): base × 2^(retry-1), capped, then jittered. */
export function backoffMs (config: RetryConfig['backoff'], retry: number, random: () => number = Math.random): number {
  const exp = Math.min(config.maxMs, config.baseMs * 2 ** (retry - 1))
  return config.jitter === 'full' ? Math.floor(random() * exp) : exp
}

/** How an attempt failed: it threw an upstream failure, or the upstream answered 5xx, 429, 401 or 403. */
export type FailedAttempt =
  | { kind: 'thrown', error: UpstreamError }
  | { kind: 'answered', status: number, errorClass: ErrorClass, retryAfter: string | string[] | undefined }

export function failedClass (failed: FailedAttempt): ErrorClass {
  return failed.kind === 'thrown' ? failed.error.errorClass : failed.errorClass
}

/** Everything the decision depends on, read by the executor when an attempt has failed. */
export interface RetryFacts {
  /** The attempt that failed, 1-based. */
  attempt: number
  failed: FailedAttempt
  /** The request body can be sent again: none, or buffered whole. */
  replayable: boolean
  /** The method may be sent twice: idempotent, or an Idempotency-Key, or the route's nonIdempotent. */
  resendable: boolean
  /** Time left before the request's deadline, in ms. */
  msLeft: number
  /** The route's retry budget has a retry left now. */
  budgetAllows: boolean
  /** Wall-clock time (ms since the epoch), for a Retry-After date. */
  now: number
  /** A uniform draw in [0, 1), for full jitter. */
  random: number
}

/** Why no retry: the executor passes the last answer on (or throws the last failure). */
export type GiveUpReason =
  /** `attempts` tries were made. */
  | 'attempts_used'
  /** `retry.on` does not name this failure, or the request's own deadline ran out (a `total` timeout). */
  | 'not_retryable'
  /** An unsafe method the upstream may have seen, or a body too large to send again. */
  | 'not_resendable'
  /** The upstream asked to wait longer than `maxRetryAfterMs`. */
  | 'retry_after_too_long'
  /** The pause would end at or past the deadline: the last answer is more useful than a 504. */
  | 'no_time_left'
  /** The route's retry budget is spent (counted in faultline_retry_budget_exhausted_total). */
  | 'budget_exhausted'

export type RetryDecision =
  | { retry: true, delayMs: number }
  | { retry: false, reason: GiveUpReason }

/** The decision for one route's retry options (its failure rule built once). */
export function retryDecision (config: RetryConfig): (facts: RetryFacts) => RetryDecision {
  const rule = new FailureRule(config.on)
  return (facts) => {
    const { failed } = facts
    if (facts.attempt >= config.attempts) return { retry: false, reason: 'attempts_used' }
    const wanted = failed.kind === 'thrown' ? rule.matchesError(failed.error) : rule.matchesResponse(failed.status, failed.errorClass)
    if (!wanted) return { retry: false, reason: 'not_retryable' }
    // A connect failure never reached the upstream: safe to send again whatever the method.
    if (!facts.replayable || !(facts.resendable || (failed.kind === 'thrown' && neverSent(failed.error)))) {
      return { retry: false, reason: 'not_resendable' }
    }
    let delayMs = backoffMs(config.backoff, facts.attempt, () => facts.random)
    if (failed.kind === 'answered') {
      const asked = retryAfterMs(failed.retryAfter, facts.now)
      // Never sooner than asked; asked for longer than we may wait: give up and pass the answer on.
      if (asked !== undefined) {
        if (asked > config.maxRetryAfterMs) return { retry: false, reason: 'retry_after_too_long' }
        delayMs = Math.max(delayMs, asked)
      }
    }
    if (delayMs >= facts.msLeft) return { retry: false, reason: 'no_time_left' }
    if (!facts.budgetAllows) return { retry: false, reason: 'budget_exhausted' }
    return { retry: true, delayMs }
  }
}
