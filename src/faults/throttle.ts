/**
 * Throttle: a body trickles at `bytesPerSecond` (Toxiproxy's bandwidth).
 * `direction: response` slows the answer to the caller; `request` slows
 * the upload to the upstream. Bytes go out in slices of about 50 ms worth,
 * on schedule against the start, so timer drift does not add up. When
 * chaos is switched off the rest goes at full speed.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { z } from 'zod'
import { defineFault, faultObject } from './fault.js'
import { throughBody, throughRequestBody } from './body.js'
import type { FaultIO } from './io.js'
import type { RequestContext } from '../core/context.js'

class Throttle extends Transform {
  private readonly bytesPerMs: number
  private readonly slice: number
  private started = 0
  private sent = 0
  private timer: NodeJS.Timeout | undefined
  private released = false
  private readonly unsubscribe: () => void
  private chunk: Buffer | undefined
  private offset = 0
  private callback: TransformCallback | undefined

  constructor (bytesPerSecond: number, io: FaultIO) {
    super()
    this.bytesPerMs = bytesPerSecond / 1000
    this.slice = Math.max(1, Math.floor(bytesPerSecond / 20))
    this.unsubscribe = io.onRelease(() => {
      this.released = true
      if (this.timer !== undefined) { clearTimeout(this.timer); this.timer = undefined; this.pump() }
    })
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.started === 0) this.started = performance.now()
    this.chunk = chunk
    this.offset = 0
    this.callback = callback
    this.pump()
  }

  private readonly pump = (): void => {
    this.timer = undefined
    const chunk = this.chunk!
    while (this.offset < chunk.length) {
      const piece = chunk.subarray(this.offset, this.offset + this.slice)
      if (!this.released) {
        // Due when the bytes sent so far, this piece included, fit the rate.
        const wait = this.started + (this.sent + piece.length) / this.bytesPerMs - performance.now()
        if (wait > 1) { this.timer = setTimeout(this.pump, wait); return }
      }
      this.offset += piece.length
      this.sent += piece.length
      this.push(piece)
    }
    const callback = this.callback!
    this.chunk = undefined
    this.callback = undefined
    callback()
  }

  override _destroy (err: Error | null, callback: (error?: Error | null) => void): void {
    clearTimeout(this.timer)
    this.unsubscribe()
    callback(err)
  }

  override _flush (callback: TransformCallback): void {
    this.unsubscribe()
    callback()
  }
}

export const throttle = defineFault({
  summary: 'limits a body to bytesPerSecond (the response, or the request upload)',
  example: 'throttle=100000',
  schema: faultObject('throttle', {
    bytesPerSecond: z.number().int().positive(),
    direction: z.enum(['response', 'request']).default('response')
  }),
  header: { value: 'bytesPerSecond' },
  create: (config) => ({
    async apply (ctx: RequestContext, next, io) {
      if (config.direction === 'response') return throughBody(await next(ctx), new Throttle(config.bytesPerSecond, io))
      const original = ctx.body
      if (original === null) return await next(ctx)
      ctx.body = throughRequestBody(original, new Throttle(config.bytesPerSecond, io))
      try {
        return await next(ctx)
      } finally {
        // A replayable (Buffer) body must stay replayable for the next attempt.
        ctx.body = original
      }
    }
  })
})
