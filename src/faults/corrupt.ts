/**
 * Corrupt: the body arrives damaged, same length, same headers.
 *   mode: json   the first byte becomes "<": what a client parsing JSON
 *                sees when an HTML error page comes back with a JSON
 *                content type ("Unexpected token '<'"). Always invalid JSON.
 *   mode: bytes  single bits flip, each byte hit with probability `rate`
 *                (positions drawn from the route's seeded source): what a
 *                checksum or a strict parser must catch.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { z } from 'zod'
import { share } from '../config/units.js'
import { defineFault, faultObject } from './fault.js'
import { throughBody } from './body.js'

class FirstByte extends Transform {
  private done = false
  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.done || chunk.length === 0) { callback(null, chunk); return }
    this.done = true
    const copy = Buffer.from(chunk)
    copy[0] = 0x3c // "<"
    callback(null, copy)
  }
}

class FlipBits extends Transform {
  private readonly rate: number
  private readonly random: () => number
  /** Bytes to pass before the next flip: geometric gaps, so the cost is per flip, not per byte. */
  private gap: number

  constructor (rate: number, random: () => number) {
    super()
    this.rate = rate
    this.random = random
    this.gap = this.nextGap()
  }

  private nextGap (): number {
    if (this.rate >= 1) return 0
    return Math.floor(Math.log(1 - this.random()) / Math.log(1 - this.rate))
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.gap >= chunk.length) {
      this.gap -= chunk.length
      callback(null, chunk)
      return
    }
    const copy = Buffer.from(chunk)
    let i = this.gap
    while (i < copy.length) {
      copy[i] = copy[i]! ^ (1 << Math.floor(this.random() * 8))
      i += 1 + this.nextGap()
    }
    this.gap = i - copy.length
    callback(null, copy)
  }
}

export const corrupt = defineFault({
  summary: 'damages the body: invalid JSON, or flipped bits',
  example: 'corrupt',
  schema: faultObject('corrupt', {
    mode: z.enum(['json', 'bytes']).default('json'),
    /** mode: bytes: the probability that each byte gets a bit flipped. */
    rate: share(z.number().gt(0).max(1).default(0.01))
  }),
  header: { value: 'mode' },
  create: (config) => ({
    async apply (ctx, next, io) {
      const response = await next(ctx)
      return throughBody(response, config.mode === 'json' ? new FirstByte() : new FlipBits(config.rate, io.random))
    }
  })
})
