/**
 * Attempt timeout: bounds one try, fault included (it sits just outside
 * the fault stage), and never outlives the request's own deadline. The
 * abort reaches the upstream call through ctx.attemptAbort and any
 * injected delay through ctx.attemptSignal (made from it on demand).
 *
 * Our own timer, not undici's headersTimeout: undici runs that on a coarse
 * (~1 s) timer wheel, and a 250 ms deadline must mean 250 ms.
 */
import { UpstreamError } from '../core/errors.js'
import { AttemptAbort } from '../core/context.js'
import type { Policy } from '../core/pipeline.js'
import { clientFaultOf } from '../core/attempt.js'

function abortOnTimeout (abort: AttemptAbort, ms: number, total: boolean): void {
  // When the request's deadline is what ran out, say so: a retry must not try again.
  abort.abort(total
    ? new UpstreamError('timeout', `no response within the route's timeoutMs (the last attempt waited ${Math.round(ms)} ms)`, { timeoutPhase: 'total' })
    : new UpstreamError('timeout', `the upstream did not send response headers within ${Math.round(ms)} ms`, { timeoutPhase: 'headers' }))
}

export function attemptTimeoutPolicy (attemptTimeoutMs: number): Policy {
  return {
    name: 'attemptTimeout',
    async execute (ctx, next) {
      // A retry, an alternate or a queued request whose client has left: no new attempt.
      const early = clientFaultOf(ctx)
      if (early !== undefined) throw early
      // Every attempt passes here once, whether a fault or the upstream answers it.
      ctx.startAttempt()
      const left = ctx.deadline - performance.now()
      const total = left <= attemptTimeoutMs
      const waitMs = Math.max(1, total ? left : attemptTimeoutMs)
      const abort = new AttemptAbort()
      const timer = setTimeout(abortOnTimeout, waitMs, abort, waitMs, total)
      const outer = ctx.attemptAbort
      ctx.attemptAbort = abort
      try {
        return await next(ctx)
      } catch (err) {
        // Whatever the inner call threw after the deadline fired, the cause is the timeout.
        throw abort.aborted ? abort.reason : err
      } finally {
        clearTimeout(timer)
        ctx.attemptAbort = outer
      }
    }
  }
}
