/**
 * Total timeout: the request's deadline (ctx.deadline, from timeoutMs)
 * across all attempts, backoff and queueing. Enforced by propagation, not
 * by a per-request timer: each step that waits bounds itself by the
 * deadline (the attempt timeout by the time left, retry never sleeps past
 * it, the bulkhead queue and the replay buffering give up at it). This
 * policy is the one place where an expired deadline becomes the answer:
 * it refuses to start past the deadline and turns whatever failed after
 * it into a `timeout` (504) that says so.
 */
import { ClientFaultError, PolicyRejectionError, UpstreamError } from '../core/errors.js'
import type { RequestContext } from '../core/context.js'
import type { Policy } from '../core/pipeline.js'

function expired (ctx: RequestContext, cause?: unknown): UpstreamError {
  const ms = ctx.route.timeoutMs
  return new UpstreamError('timeout', `no response within the route's timeoutMs (${ms} ms) after ${ctx.attempts} attempt(s)`, { timeoutPhase: 'total', cause })
}

export function totalTimeoutPolicy (): Policy {
  return {
    name: 'totalTimeout',
    async execute (ctx, next) {
      if (performance.now() >= ctx.deadline) throw expired(ctx)
      try {
        return await next(ctx)
      } catch (err) {
        if (err instanceof PolicyRejectionError || err instanceof ClientFaultError) throw err
        if (performance.now() >= ctx.deadline || (err instanceof UpstreamError && err.timeoutPhase === 'total')) throw expired(ctx, err)
        throw err
      }
    }
  }
}
