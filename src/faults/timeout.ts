/**
 * Timeout: nothing comes back (Toxiproxy's timeout). Upstream side, the
 * attempt hangs until the attempt timeout gives up on it (a `timeout` the
 * policies see) or, with `closeAfterMs`, until the connection is closed
 * without an answer (a `reset`). Client side, the client hangs until its
 * own timeout gives up, or until `closeAfterMs` (default: the route's
 * timeoutMs) when faultline closes the connection, so no socket is held
 * forever. The upstream is not called either way; when chaos is switched
 * off during the hang, the request goes on to it normally.
 */
import { z } from 'zod'
import { duration } from '../config/units.js'
import { defineFault, faultObject } from './fault.js'
import { MAX_TIMER_MS } from '../util/timer.js'

export const timeout = defineFault({
  summary: 'never answers: hangs until a timeout gives up, or closes the connection after closeAfterMs',
  example: 'timeout',
  schema: faultObject('timeout', {
    closeAfterMs: duration(z.number().int().positive().max(MAX_TIMER_MS).optional())
  }),
  header: { value: 'closeAfterMs' },
  create: (config) => ({
    async apply (ctx, next, io) {
      const limit = config.closeAfterMs ?? io.hangLimitMs(ctx)
      if (await io.wait(ctx, limit) === 'released') return await next(ctx)
      throw io.fail(ctx, 'reset', `injected timeout: the connection was closed after ${Math.round(limit)} ms without a response`, 'close')
    }
  })
})
