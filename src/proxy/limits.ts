/**
 * The per-route request body limit (413). A declared Content-Length is
 * checked up front (one comparison, nothing read); only a body without a
 * length (chunked) is counted as it streams through, by BodyLimit.
 */
import type { IncomingMessage } from 'node:http'
import { PassThrough, type Readable } from 'node:stream'
import { ClientCancelledError, RequestBodyTooLargeError, type ClientFaultError } from '../core/errors.js'

export { RequestBodyTooLargeError }

/** Requests whose streamed body passed its limit, with the limit: sendFailure answers them 413. */
const exceeded = new WeakMap<IncomingMessage, number>()

/** The limit a request's body passed, if it did. */
export function bodyLimitExceeded (req: IncomingMessage): number | undefined {
  return exceeded.get(req)
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
 *
 * The forwarded stream is ours, so its errors are ours to handle: it may
 * fail while nobody reads it yet (the request queued in the pool or a
 * bulkhead, held by a fault), and an 'error' without a listener would
 * crash the process. The fault goes to the request instead (`onFault`),
 * which ends it wherever it is waiting.
 */
export class BodyLimit {
  readonly body: Readable
  exceeded = false
  #fault: ClientFaultError | undefined = undefined
  #onFault: ((err: ClientFaultError) => void) | undefined = undefined
  private readonly stopCoalescing: () => void

  constructor (req: IncomingMessage, limit: number) {
    const body = new PassThrough()
    this.body = body
    // The owner's listener: whoever reads the body later adds its own.
    body.on('error', noop)
    let seen = 0
    // Tiny chunks are coalesced: a body sent one byte per chunk would
    // otherwise be forwarded (and re-framed upstream) one byte per write.
    let pending: Buffer[] = []
    let pendingBytes = 0
    let timer: NodeJS.Timeout | undefined
    const flush = (): void => {
      clearTimeout(timer)
      timer = undefined
      if (pendingBytes === 0 || body.destroyed) return
      const chunk = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes)
      pending = []
      pendingBytes = 0
      if (!body.write(chunk)) req.pause()
    }
    this.stopCoalescing = () => { clearTimeout(timer) }
    const onData = (chunk: Buffer): void => {
      seen += chunk.length
      if (seen > limit) {
        this.exceeded = true
        exceeded.set(req, limit)
        req.off('data', onData)
        req.pause()
        this.fail(new RequestBodyTooLargeError(limit))
        return
      }
      if (pendingBytes === 0 && chunk.length >= COALESCE_BYTES) {
        if (!body.write(chunk)) req.pause()
        return
      }
      pending.push(chunk)
      pendingBytes += chunk.length
      if (pendingBytes >= COALESCE_BYTES) flush()
      else timer ??= setTimeout(flush, COALESCE_MS)
    }
    req.on('data', onData)
    body.on('drain', () => { if (!this.exceeded) req.resume() })
    req.once('end', () => {
      flush()
      body.end()
    })
    req.once('error', () => { this.fail(new ClientCancelledError()) })
    req.once('close', () => { if (!req.complete) this.fail(new ClientCancelledError()) })
  }

  /** Where a fault goes: the request's context, once it exists (a fault before that is delivered on attach). */
  // eslint-disable-next-line accessor-pairs -- write-only: the context hands its listener over once
  set onFault (listener: (err: ClientFaultError) => void) {
    this.#onFault = listener
    if (this.#fault !== undefined) listener(this.#fault)
  }

  private fail (err: ClientFaultError): void {
    if (this.#fault !== undefined) return
    this.#fault = err
    this.stopCoalescing()
    // The request learns first, so whatever the destroyed stream fails reads the fault from it.
    this.#onFault?.(err)
    if (!this.body.destroyed) this.body.destroy(err)
  }
}

function noop (): void {}

/** Small chunks are gathered up to this many bytes... */
const COALESCE_BYTES = 16 * 1024
/** ...or for at most this long, so a slow trickle still flows. */
const COALESCE_MS = 5
