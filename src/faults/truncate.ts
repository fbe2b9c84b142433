/**
 * Truncate: only the first `bytes` of the body get through (Toxiproxy's
 * limit_data). By default the connection is then closed with the
 * upstream's Content-Length still promising more: the caller can tell the
 * body is short. Upstream side this counts as an `invalid_response`
 * attempt, like a real short body. With `clean: true` the length is
 * dropped and the body ends normally: a well-formed response with partial
 * data (half a JSON document), which only a client that validates what it
 * parses will catch.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { z } from 'zod'
import { defineFault, faultObject } from './fault.js'
import { CutAfter, throughBody, withoutLength } from './body.js'

/** Passes the first `limit` bytes, drops the rest, ends normally. */
class Take extends Transform {
  private left: number
  constructor (limit: number) {
    super()
    this.left = limit
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.left <= 0) { callback(); return }
    const piece = chunk.length <= this.left ? chunk : chunk.subarray(0, this.left)
    this.left -= piece.length
    callback(null, piece)
  }
}

export const truncate = defineFault({
  summary: 'lets only the first bytes of the body through',
  example: 'truncate=10',
  schema: faultObject('truncate', {
    bytes: z.number().int().min(0),
    clean: z.boolean().default(false)
  }),
  header: { value: 'bytes' },
  create: (config) => {
    const message = `injected truncation: the body was cut after ${config.bytes} byte(s)`
    return {
      async apply (ctx, next, io) {
        const response = await next(ctx)
        if (config.clean) return throughBody(response, new Take(config.bytes), withoutLength(response.headers, ctx.method))
        return throughBody(response, new CutAfter(config.bytes, (stream) => { io.cut(ctx, stream, 'invalid_response', message, 'close') }))
      }
    }
  }
})
