/**
 * Slow headers: the upstream gets the request and answers, but the status
 * line reaches the caller late. Unlike latency, the upstream has done the
 * work (and any side effect) when an attempt timeout gives up on it, which
 * is what makes retries of non-idempotent calls dangerous.
 */
import type { RequestContext } from '../core/context.js'
import type { UpstreamResponse } from '../core/pipeline.js'
import { defineFault, faultObject } from './fault.js'
import { checkDelay, delayParams, delaySampler } from './delay.js'
import type { FaultIO } from './io.js'

/** Holds an answer back for `ms`; if the wait is abandoned, the unread body is destroyed so its connection is released. */
export async function holdResponse (ctx: RequestContext, response: UpstreamResponse, ms: number, io: FaultIO): Promise<UpstreamResponse> {
  try {
    await io.wait(ctx, ms)
  } catch (err) {
    response.body.destroy()
    throw err
  }
  return response
}

export const slowHeaders = defineFault({
  summary: 'the upstream answers, but its status line arrives late',
  example: 'slowHeaders=5ms',
  schema: faultObject('slowHeaders', delayParams).superRefine(checkDelay),
  header: { value: 'ms' },
  create: (config) => {
    const sample = delaySampler(config)
    return {
      async apply (ctx, next, io) {
        const ms = sample(io.random)
        return await holdResponse(ctx, await next(ctx), ms, io)
      }
    }
  }
})
