/**
 * Body plumbing shared by the body faults. A body fault never buffers
 * unless it must (schemaDrift): it puts a Transform behind the upstream
 * body, so errors still flow (an upstream failure mid-body reaches the
 * responder through the transform) and a client that leaves still
 * releases the upstream connection (pipeline() destroys both).
 */
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream'
import type { UpstreamResponse } from '../core/pipeline.js'

function noop (): void {}

type Headers = UpstreamResponse['headers']

/** The same response with its body run through `transform` (and other headers, if given). */
export function throughBody (response: UpstreamResponse, transform: Transform, headers: Headers = response.headers): UpstreamResponse {
  pipeline(response.body, transform, noop)
  return { statusCode: response.statusCode, headers, body: transform }
}

/** The body to send upstream, run through `transform`; a replayable Buffer body stays replayable for the next attempt. */
export function throughRequestBody (body: Readable | Buffer, transform: Transform): Readable {
  pipeline(Buffer.isBuffer(body) ? Readable.from([body]) : body, transform, noop)
  return transform
}

/**
 * Headers without content-length: for bodies whose length a fault changes
 * (sent chunked instead). A HEAD answer has no body to change: its
 * Content-Length is the length a GET would get, and stays.
 */
export function withoutLength (headers: Headers, method?: string): Headers {
  if (method === 'HEAD') return headers
  const { 'content-length': _dropped, ...rest } = headers
  return rest
}

/** True when the response says it is JSON (application/json, application/problem+json, ...). */
export function isJson (headers: Headers): boolean {
  const type = headers['content-type']
  const value = Array.isArray(type) ? type[0] : type
  return value !== undefined && /[/+]json\b/i.test(value)
}

/**
 * Passes the first `limit` bytes, then calls `cut` once and drops the rest.
 * A body shorter than `limit` is cut at its end instead of ending cleanly:
 * the fault was chosen, so it happens.
 */
export class CutAfter extends Transform {
  private seen = 0
  private done = false
  private readonly limit: number
  private readonly onCut: (stream: CutAfter) => void

  constructor (limit: number, onCut: (stream: CutAfter) => void) {
    super()
    this.limit = limit
    this.onCut = onCut
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.done) { callback(); return }
    const room = this.limit - this.seen
    if (chunk.length < room) {
      this.seen += chunk.length
      callback(null, chunk)
      return
    }
    this.seen = this.limit
    this.done = true
    callback(null, room > 0 ? chunk.subarray(0, room) : undefined)
    this.onCut(this)
  }

  // Never calls back: this body must not end cleanly, the cut (scheduled
  // already, or now) ends it.
  override _flush (): void {
    if (this.done) return
    this.done = true
    this.onCut(this)
  }
}
