/**
 * Retry: tries again after a retryable failure, with exponential backoff
 * and full jitter, honouring Retry-After, within the request's deadline
 * and the route's retry budget. A thrown UpstreamError or a failed
 * response (5xx/429/401/403, returned with ctx.errorClass) can trigger a
 * retry; a PolicyRejectionError (open breaker, auth guard) never does, so an
 * open breaker stops the retries at once. A discarded response body is
 * drained so its pooled connection is not leaked.
 *
 * Whether to retry, and after how long, is decided by the pure function in
 * retry-decision.ts; this file is the executor around it: it runs an
 * attempt, reads the clock and the budget, pauses and tries again.
 */
import type { Policy, UpstreamCall, UpstreamResponse } from '../core/pipeline.js'
import type { RequestContext } from '../core/context.js'
import { UpstreamError, safeToResend, type ErrorClass } from '../core/errors.js'
import { responseErrorClass } from '../core/attempt.js'
import type { RetryConfig } from './schema.js'
import type { PolicyEvents } from './events.js'
import type { RetryBudget } from './retry-budget.js'
import { discardBody, makeReplayable, replayable } from './body.js'
import { failedClass, retryDecision, type FailedAttempt } from './retry-decision.js'

export { backoffMs, retryAfterMs } from './retry-decision.js'

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

/** One attempt's end: a good answer, or how it failed (with the failed answer, to pass on or drain). */
type Ended =
  | { ok: true, response: UpstreamResponse }
  | { ok: false, failed: FailedAttempt, response: UpstreamResponse | undefined }

/** Runs one attempt. Anything but an upstream failure (a policy rejection, the client gone) goes straight out. */
async function attempt (ctx: RequestContext, next: UpstreamCall): Promise<Ended> {
  try {
    const response = await next(ctx)
    const errorClass = responseErrorClass(response.statusCode)
    if (errorClass === undefined) return { ok: true, response }
    return { ok: false, response, failed: { kind: 'answered', status: response.statusCode, errorClass, retryAfter: response.headers['retry-after'] } }
  } catch (err) {
    if (!(err instanceof UpstreamError)) throw err
    return { ok: false, response: undefined, failed: { kind: 'thrown', error: err } }
  } finally {
    // A retry the breaker refused or the client left before was never sent: never counted.
    ctx.onNextAttempt = undefined
  }
}

/**
 * Counts one retry of `cls` when called. Made by a call, not written as a
 * function literal on ctx.onNextAttempt: V8 allocates such a literal in the
 * old generation, where it kept its request alive through scavenges
 * (docs/DECISIONS.md).
 */
function counter (events: PolicyEvents, cls: ErrorClass): () => void {
  return () => { events.retry(cls) }
}

export interface RetryOptions {
  config: RetryConfig
  budget: RetryBudget
  maxReplayBytes: number
  events: PolicyEvents
}

export function retryPolicy (options: RetryOptions): Policy {
  const { config, budget, maxReplayBytes, events } = options
  const decide = retryDecision(config)
  return {
    name: 'retry',
    async execute (ctx: RequestContext, next) {
      budget.request()
      const resendable = safeToResend(ctx.method, ctx.req.headers['idempotency-key'], config.nonIdempotent)
      // Any method: a connect failure is retried for every method (the upstream never saw it), so the body must replay.
      await makeReplayable(ctx, maxReplayBytes)
      for (let tries = 1; ; tries++) {
        const ended = await attempt(ctx, next)
        if (ended.ok) {
          if (tries > 1) ctx.outcome = 'retried_ok'
          return ended.response
        }
        const { failed, response } = ended
        const decision = decide({
          attempt: tries,
          failed,
          replayable: replayable(ctx),
          resendable,
          msLeft: ctx.deadline - performance.now(),
          budgetAllows: budget.allows(),
          now: Date.now(),
          random: Math.random()
        })
        if (!decision.retry) {
          if (decision.reason === 'budget_exhausted') events.retryBudgetExhausted()
          if (failed.kind === 'thrown') throw failed.error
          return response!
        }
        budget.spend()
        // Counted when the retry is sent: when its attempt starts (ctx.startAttempt), past the breaker.
        ctx.onNextAttempt = counter(events, failedClass(failed))
        if (response !== undefined) discardBody(response.body)
        if (decision.delayMs > 0) await pause(ctx, decision.delayMs)
      }
    },
    snapshot: () => ({ budget: budget.snapshot() })
  }
}
