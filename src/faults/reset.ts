/**
 * Reset: the connection dies (Toxiproxy's reset_peer).
 *   phase: headers  before any answer. Upstream side, the attempt fails as
 *                   a `reset` (the upstream is not called); client side,
 *                   the client's connection gets a TCP RST.
 *   phase: body     after the upstream's headers and `afterBytes` of its
 *                   body. The policies have already accepted the answer, as
 *                   with a real mid-body reset: the client sees its
 *                   response cut off.
 */
import { z } from 'zod'
import { defineFault, faultObject } from './fault.js'
import { CutAfter, throughBody } from './body.js'

export const reset = defineFault({
  summary: 'resets the connection, before the response or mid-body',
  example: 'reset',
  schema: faultObject('reset', {
    phase: z.enum(['headers', 'body']).default('headers'),
    /** Body bytes that get through before the reset (phase: body). */
    afterBytes: z.number().int().min(0).default(0)
  }),
  header: { value: 'phase' },
  create: (config) => {
    const message = config.phase === 'headers'
      ? 'injected reset: the connection was reset before the response'
      : `injected reset: the connection was reset after ${config.afterBytes} body byte(s)`
    return {
      async apply (ctx, next, io) {
        if (config.phase === 'headers') throw io.fail(ctx, 'reset', message, 'reset')
        const response = await next(ctx)
        return throughBody(response, new CutAfter(config.afterBytes, (stream) => { io.cut(ctx, stream, 'reset', message, 'reset') }))
      }
    }
  }
})
