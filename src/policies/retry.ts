/**
 * Retry: tries again after a retryable failure, with exponential backoff
 * and full jitter, honouring Retry-After, within the request's deadline
 * and the route's retry budget. A thrown UpstreamError or a failed
 * response (5xx/429/401/403, returned with ctx.errorClass) can trigger a
 * retry; a PolicyRejection (open breaker, auth guard) never does, so an
 * open breaker stops the retries at once. A discarded response body is
 * drained so its pooled connection is not leaked.
 */
import type { Policy, UpstreamResponse } from '../core/pipeline.js'
import type { RequestContext } from '../core/context.js'
import { FailureRule, UpstreamError, neverSent, safeToResend, type ErrorClass } from '../core/errors.js'
import { responseErrorClass } from '../core/attempt.js'
import type { RetryConfig } from './schema.js'
import type { PolicyEvents } from './events.js'
import type { RetryBudget } from './retry-budget.js'
import { discardBody, makeReplayable, replayable } from './body.js'

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

/**
 * Waits `ms` between attempts, or until the request's client leaves (or
 * breaks a limit): then it rejects with that fault at once, so a request
 * nobody waits for ends now and frees its bulkhead slot, not after its
 * backoff or Retry-After.
 */
export async function pause (ctx: RequestContext, ms: number): Promise<void> {
  if (ctx.clientFault !== undefined) throw ctx.clientFault
  await new Promise<void>((resolve, reject) => {
    const off = ctx.onClientFault((err) => {
      clearTimeout(timer)
      reject(err)
    })
    const timer = setTimeout(() => {
      off()
      resolve()
    }, ms)
  })
}

/** Delay before retry number `retry` (1-based): base × 2^(retry-1), capped, then jittered. */
export function backoffMs (config: RetryConfig['backoff'], retry: number, random: () => number = Math.random): number {
  const exp = Math.min(config.maxMs, config.baseMs * 2 ** (retry - 1))
  return config.jitter === 'full' ? Math.floor(random() * exp) : exp
}

export interface RetryOptions {
  config: RetryConfig
  budget: RetryBudget
  maxReplayBytes: number
  events: PolicyEvents
}

export function retry (options: RetryOptions): Policy {
  const { config, budget, maxReplayBytes, events } = options
  const rule = new FailureRule(config.on)
  return {
    name: 'retry',
    async execute (ctx: RequestContext, next) {
      budget.request()
      const resendable = safeToResend(ctx.method, ctx.req.headers['idempotency-key'], config.nonIdempotent)
      // Any method: a connect failure is retried for every method (the upstream never saw it), so the body must replay.
      await makeReplayable(ctx, maxReplayBytes)
      for (let tries = 1; ; tries++) {
        let response: UpstreamResponse | undefined
        let failure: UpstreamError | undefined
        let cls: ErrorClass | undefined
        try {
          response = await next(ctx)
          cls = responseErrorClass(response.statusCode)
          if (cls === undefined) {
            if (tries > 1) ctx.outcome = 'retried_ok'
            return response
          }
        } catch (err) {
          if (!(err instanceof UpstreamError)) throw err
          failure = err
          cls = err.errorClass
        } finally {
          // A retry the breaker refused or the client left before was never sent: never counted.
          ctx.onNextAttempt = undefined
        }
        const wanted = failure !== undefined ? rule.matchesError(failure) : rule.matchesResponse(response!.statusCode, cls)
        const allowed = replayable(ctx) && (resendable || (failure !== undefined && neverSent(failure)))
        let delay = tries < config.attempts && wanted && allowed ? backoffMs(config.backoff, tries) : -1
        if (delay >= 0 && response !== undefined) {
          const asked = retryAfterMs(response.headers['retry-after'])
          // Never sooner than asked; asked for longer than we may wait: give up and pass the answer on.
          if (asked !== undefined) delay = asked > config.maxRetryAfterMs ? -1 : Math.max(delay, asked)
        }
        // No time left for the pause and a meaningful try: the last answer is more useful than a 504.
        if (delay >= 0 && performance.now() + delay >= ctx.deadline) delay = -1
        if (delay >= 0 && !budget.tryRetry()) {
          events.retryBudgetExhausted()
          delay = -1
        }
        if (delay < 0) {
          if (failure !== undefined) throw failure
          return response!
        }
        // Counted when the retry is sent: when its attempt starts (ctx.startAttempt), past the breaker.
        const retried = cls
        ctx.onNextAttempt = () => { events.retry(retried) }
        if (response !== undefined) discardBody(response.body)
        if (delay > 0) await pause(ctx, delay)
      }
    },
    state: () => ({ budget: budget.snapshot() })
  }
}
