/**
 * Retry: tries again after a retryable failure, with exponential backoff
 * and full jitter, honouring Retry-After, within the request's deadline
 * and the route's retry budget. A thrown UpstreamError or a failed
 * response (5xx/429/401/403, returned with ctx.errorClass) can trigger a
 * retry; a PolicyRejection (open breaker, auth guard) never does, so an
 * open breaker stops the retries at once. A discarded response body is
 * drained so its pooled connection is not leaked.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import type { Policy, UpstreamResponse } from '../proxy/pipeline.js'
import type { RequestContext } from '../proxy/context.js'
import { FailureRule, UpstreamError, neverSent, safeToResend, type ErrorClass } from '../proxy/errors.js'
import { responseErrorClass } from '../proxy/attempt.js'
import type { RetryConfig } from './schema.js'
import type { PolicyEvents } from './events.js'
import type { RetryBudget } from './retry-budget.js'
import { discardBody, makeReplayable, replayable } from './body.js'

/** Retry-After in ms (delta-seconds or an HTTP date), or undefined when absent or unreadable. */
export function retryAfterMs (value: string | string[] | undefined, now = Date.now()): number | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined || text === '') return undefined
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000
  const date = Date.parse(text)
  return Number.isNaN(date) ? undefined : Math.max(0, date - now)
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
      if (resendable) await makeReplayable(ctx, maxReplayBytes)
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
        if (delay > 0) await sleep(delay)
      }
    },
    state: () => ({ budget: budget.snapshot() })
  }
}
