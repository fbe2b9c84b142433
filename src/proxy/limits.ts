/**
 * The per-route request body limit (413). A declared Content-Length is
 * checked up front (one comparison, nothing read); only a body without a
 * length (chunked) is counted as it streams through, by BodyLimit.
 */
import type { IncomingMessage } from 'node:http'
import { PassThrough, type Readable } from 'node:stream'

/** Requests whose streamed body passed its limit, with the limit: sendFailure answers them 413. */
const exceeded = new WeakMap<IncomingMessage, number>()

/** The limit a request's body passed, if it did. */
export function bodyLimitExceeded (req: IncomingMessage): number | undefined {
  return exceeded.get(req)
}

export class RequestBodyTooLarge extends Error {
  constructor (limit: number) {
    super(`the request body is larger than ${limit} bytes`)
    this.name = 'RequestBodyTooLarge'
  }
}

export function declaredTooLarge (req: IncomingMessage, limit: number): boolean {
  const declared = req.headers['content-length']
  return declared !== undefined && Number(declared) > limit
}

/**
 * Counts a streamed request body. Past the limit the forwarded stream fails
 * (undici aborts the upstream request, so an incomplete body is never
 * delivered as complete) while the client's own stream is only paused, not
 * destroyed: the socket must stay open long enough to carry the 413.
 */
export class BodyLimit {
  readonly body: Readable
  exceeded = false

  constructor (req: IncomingMessage, limit: number) {
    const body = new PassThrough()
    this.body = body
    let seen = 0
    const onData = (chunk: Buffer): void => {
      seen += chunk.length
      if (seen > limit) {
        this.exceeded = true
        exceeded.set(req, limit)
        req.off('data', onData)
        req.pause()
        body.destroy(new RequestBodyTooLarge(limit))
        return
      }
      if (!body.write(chunk)) req.pause()
    }
    req.on('data', onData)
    body.on('drain', () => { if (!this.exceeded) req.resume() })
    req.once('end', () => { body.end() })
    req.once('error', (err) => { body.destroy(err) })
    req.once('close', () => { if (!req.complete && !body.destroyed) body.destroy(new Error('the client closed the connection while sending the request body')) })
  }
}
