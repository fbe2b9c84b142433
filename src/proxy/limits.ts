/**
 * What every request body passes on its way upstream: the per-route size
 * limit (413), tiny pieces gathered into reasonable writes, and a guard
 * against a flood of tiny pieces (400). A declared Content-Length over the
 * limit is refused up front (one comparison, nothing read); a body within
 * it, or without one (chunked), is counted as it streams through BodyLimit.
 */
import type { IncomingMessage } from 'node:http'
import { PassThrough, type Readable } from 'node:stream'
import { ClientCancelledError, RequestBodyFragmentedError, RequestBodyTooLargeError, type ClientFaultError } from '../core/errors.js'

export { RequestBodyFragmentedError, RequestBodyTooLargeError }

export function declaredTooLarge (req: IncomingMessage, limit: number): boolean {
  const declared = req.headers['content-length']
  return declared !== undefined && Number(declared) > limit
}

/**
 * The BodyLimit a request body goes through, if any: a chunked body always
 * (it has no length to trust, and one client write can hold a million
 * one-byte chunks); a declared length only above COALESCE_BYTES. Below
 * that a body is one or two socket reads, its pieces are bounded by its
 * length, and a stream on its way would cost every small JSON POST about
 * a tenth more CPU (docs/DECISIONS.md, "A body in tiny pieces").
 */
export function bodyLimitFor (req: IncomingMessage, limit: number): BodyLimit | undefined {
  const declared = req.headers['content-length']
  if (declared === undefined) return new BodyLimit(req, limit)
  const length = Number(declared)
  return length > COALESCE_BYTES ? new BodyLimit(req, limit, length) : undefined
}

/** What a body fault ends: the request (RequestContext.failClient). */
export interface FaultOwner {
  failClient: (err: ClientFaultError) => void
}

/**
 * Counts a request body and forwards it in reasonable writes. Past the
 * limit the forwarded stream fails (undici aborts the upstream request, so
 * an incomplete body is never delivered as complete) while the client's
 * own stream is only paused, not destroyed: the socket must stay open long
 * enough to carry the 413.
 *
 * Tiny pieces are gathered (up to 16 KB or 5 ms) for a chunked body and a
 * large Content-Length one alike, so the upstream gets reasonable writes
 * whatever the client's (hundreds instead of thousands for a body sent a
 * byte at a time), and a flood of tiny pieces is refused. A body whose
 * declared length is complete goes at once.
 *
 * The forwarded stream is ours, so its errors are ours to handle: it may
 * fail while nobody reads it yet (the request queued in the pool or a
 * bulkhead, held by a fault), and an 'error' without a listener would
 * crash the process. The fault goes to the request instead (`attach`),
 * which ends it wherever it is waiting.
 */
export class BodyLimit {
  readonly body: Readable
  #fault: ClientFaultError | undefined = undefined
  /** Where a fault goes: the request's context, once it exists. */
  #owner: FaultOwner | undefined = undefined
  #timer: NodeJS.Timeout | undefined = undefined

  /** `declared`: the request's Content-Length, if it has one (the body is complete when that many bytes came). */
  constructor (req: IncomingMessage, limit: number, declared?: number) {
    const body = new PassThrough()
    this.body = body
    // The owner's listener: whoever reads the body later adds its own.
    body.on('error', noop)
    let seen = 0
    let pending: Buffer[] = []
    let pendingBytes = 0
    // The tiny-pieces guard: every FLOOD_PIECES pieces, how long they took and how many bytes they carried.
    let pieces = 0
    let piecesBytes = 0
    let piecesSince = Date.now()
    const flush = (): void => {
      clearTimeout(this.#timer)
      this.#timer = undefined
      if (pendingBytes === 0 || body.destroyed) return
      const chunk = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes)
      pending = []
      pendingBytes = 0
      if (!body.write(chunk)) req.pause()
    }
    const stop = (err: ClientFaultError): void => {
      req.off('data', onData)
      req.pause()
      this.fail(err)
    }
    const onData = (chunk: Buffer): void => {
      seen += chunk.length
      if (seen > limit) {
        stop(new RequestBodyTooLargeError(limit))
        return
      }
      pieces++
      piecesBytes += chunk.length
      if (pieces === FLOOD_PIECES) {
        const now = Date.now()
        if (now - piecesSince < FLOOD_WITHIN_MS && piecesBytes < FLOOD_PIECES * FLOOD_PIECE_BYTES) {
          stop(new RequestBodyFragmentedError(FLOOD_PIECES, FLOOD_WITHIN_MS, FLOOD_PIECE_BYTES))
          return
        }
        pieces = 0
        piecesBytes = 0
        piecesSince = now
      }
      if (pendingBytes === 0 && (chunk.length >= COALESCE_BYTES || seen === declared)) {
        if (!body.write(chunk)) req.pause()
        return
      }
      pending.push(chunk)
      pendingBytes += chunk.length
      if (pendingBytes >= COALESCE_BYTES || seen === declared) flush()
      else this.#timer ??= setTimeout(flush, COALESCE_MS)
    }
    req.on('data', onData)
    body.on('drain', () => { if (this.#fault === undefined) req.resume() })
    req.once('end', () => {
      flush()
      body.end()
    })
    req.once('error', () => { this.fail(new ClientCancelledError()) })
    req.once('close', () => { if (!req.complete) this.fail(new ClientCancelledError()) })
  }

  /**
   * Faults go to `owner` (the request's context) from now on; one before
   * that is delivered now. The context itself, not a closure around it: a
   * function literal assigned to a property is allocated in V8's old
   * generation and kept its request alive through scavenges (docs/DECISIONS.md).
   */
  attach (owner: FaultOwner): void {
    this.#owner = owner
    if (this.#fault !== undefined) owner.failClient(this.#fault)
  }

  private fail (err: ClientFaultError): void {
    if (this.#fault !== undefined) return
    this.#fault = err
    clearTimeout(this.#timer)
    // The request learns first, so whatever the destroyed stream fails reads the fault from it.
    this.#owner?.failClient(err)
    if (!this.body.destroyed) this.body.destroy(err)
  }
}

function noop (): void {}

/** Small chunks are gathered up to this many bytes... */
const COALESCE_BYTES = 16 * 1024
/** ...or for at most this long, so a slow trickle still flows. */
const COALESCE_MS = 5
/**
 * A flood of tiny pieces: this many body events within FLOOD_WITHIN_MS,
 * averaging under FLOOD_PIECE_BYTES, is refused. No real client writes
 * like that (a slow mobile link still sends segments of a kilobyte or
 * more); one-byte chunks in one write are about 10,000 events per 64 KB
 * socket read, so the guard trips within one or two reads.
 */
const FLOOD_PIECES = 10_000
const FLOOD_WITHIN_MS = 1000
const FLOOD_PIECE_BYTES = 64
