/**
 * Just enough of WebSocket framing (RFC 6455 §5.2) to count messages in a
 * relayed byte stream and to end a connection cleanly: frame boundaries are
 * found from the headers alone, payloads are skipped, never copied or
 * unmasked, so the relay stays byte for byte. Not the `ws` package's
 * Receiver: it unmasks, validates UTF-8 and inflates permessage-deflate,
 * which a relay must not do and need not pay for.
 */
import { randomBytes } from 'node:crypto'

/** Follows frame boundaries in one direction of a WebSocket connection. */
export class FrameTracker {
  private readonly head = Buffer.alloc(14)
  private headLength = 0
  private remaining = 0
  private inPayload = false
  private endsMessage = false

  /** True between frames: a close frame may be written now without corrupting the stream. */
  get atBoundary (): boolean {
    return !this.inPayload && this.headLength === 0
  }

  /**
   * Walks `chunk`. For each data message that ends in it, calls
   * `onMessage(offset)` with the offset just past it; when that returns
   * true, stops there and returns the offset. Otherwise returns the
   * chunk's length.
   */
  feed (chunk: Buffer, onMessage: (end: number) => boolean): number {
    let i = 0
    while (i < chunk.length) {
      if (this.inPayload) {
        const take = Math.min(this.remaining, chunk.length - i)
        i += take
        this.remaining -= take
        if (this.remaining > 0) continue
        this.inPayload = false
        if (this.endsMessage && onMessage(i)) return i
        continue
      }
      this.head[this.headLength++] = chunk[i++]!
      const need = headerLength(this.head, this.headLength)
      if (need === undefined || this.headLength < need) continue
      const opcode = this.head[0]! & 0x0f
      const fin = (this.head[0]! & 0x80) !== 0
      const len7 = this.head[1]! & 0x7f
      this.remaining = len7 === 126 ? this.head.readUInt16BE(2) : len7 === 127 ? Number(this.head.readBigUInt64BE(2)) : len7
      this.headLength = 0
      // The last frame of a text or binary message (continuation frames carry opcode 0); control frames are not messages.
      this.endsMessage = fin && opcode <= 2
      this.inPayload = this.remaining > 0
      if (!this.inPayload && this.endsMessage && onMessage(i)) return i
    }
    return chunk.length
  }
}

/** The length of a frame header once its first two bytes are known. */
function headerLength (head: Buffer, have: number): number | undefined {
  if (have < 2) return undefined
  const len7 = head[1]! & 0x7f
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((head[1]! & 0x80) !== 0 ? 4 : 0)
}

/**
 * A close frame (RFC 6455 §5.5.1) with `code` and a short reason. Frames
 * a client sends must be masked (§5.3): `masked` for the one sent
 * upstream in the client's place.
 */
export function closeFrame (code: number, reason: string, masked: boolean): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, 123)
  const payload = Buffer.alloc(2 + text.length)
  payload.writeUInt16BE(code, 0)
  text.copy(payload, 2)
  if (!masked) return Buffer.concat([Buffer.from([0x88, payload.length]), payload])
  const key = randomBytes(4)
  for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i % 4]!
  return Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), key, payload])
}
