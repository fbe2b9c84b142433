/**
 * Latency: the request waits before it goes on (Envoy's delay, Toxiproxy's
 * latency). Upstream side, the wait happens before the upstream is called
 * and counts against the attempt timeout, so a long enough delay becomes a
 * timeout the retry policy sees; the upstream never gets the request. Client
 * side, the pipeline runs first and the answer is held back: waiting before
 * the pipeline would eat the route's own deadline and blur the two.
 */
import { defineFault, faultObject } from './fault.js'
import { checkDelay, delayParams, delaySampler } from './delay.js'
import { holdResponse } from './slow-headers.js'

export const latency = defineFault({
  summary: 'delays the request (fixed, jittered, or drawn from a distribution)',
  example: 'latency=5ms',
  schema: faultObject('latency', delayParams).superRefine(checkDelay),
  header: { value: 'ms' },
  create: (config) => {
    const sample = delaySampler(config)
    return {
      async apply (ctx, next, io) {
        const ms = sample(io.random)
        if (io.at === 'client') return await holdResponse(ctx, await next(ctx), ms, io)
        await io.wait(ctx, ms)
        return await next(ctx)
      }
    }
  }
})
