/**
 * One RequestContext per client request. Policies and faults read it and
 * annotate it on the way in; the responder writes metrics and the log line
 * from it once, at the end. A class (not an object literal) so every
 * request has the same shape and V8 keeps one hidden class.
 */
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import type { ErrorClass } from './errors.js'
import type { Outcome } from '../metrics/metrics.js'
import type { RouteRuntime } from './route.js'

export type FallbackKind = 'cache' | 'alternate' | 'static'

export class RequestContext {
  readonly route: RouteRuntime
  readonly req: IncomingMessage
  readonly requestId: string
  readonly method: string
  /** Path and query sent upstream, after prefix rewrite. */
  readonly upstreamPath: string
  /** Headers sent upstream, as a flat [name, value, ...] list. */
  readonly upstreamHeaders: string[]
  /** The body to send upstream: the client stream, or a replayable buffer set by a policy. */
  body: Readable | Buffer | null
  /** performance.now() when the request arrived. */
  readonly startedAt: number
  /** performance.now() by which response headers must be in hand (the route's timeoutMs). */
  readonly deadline: number
  /** Aborts the current attempt (set by the attemptTimeout policy; injected delays listen to it too). */
  attemptSignal: AbortSignal | undefined = undefined
  /** Upstream attempts made so far (0 before the first). */
  attempts = 0
  outcome: Outcome = 'ok'
  /** The class of the last failure seen, if any. */
  errorClass: ErrorClass | undefined = undefined
  /** Name of the fault injected into this request, if any. */
  fault: string | undefined = undefined
  fallback: FallbackKind | undefined = undefined
  /** Label of the upstream that answered (origin host:port). */
  upstream: string

  constructor (route: RouteRuntime, req: IncomingMessage, requestId: string, upstreamPath: string, upstreamHeaders: string[], body: Readable | null, startedAt: number) {
    this.route = route
    this.req = req
    this.requestId = requestId
    this.method = req.method ?? 'GET'
    this.upstreamPath = upstreamPath
    this.upstreamHeaders = upstreamHeaders
    this.body = body
    this.startedAt = startedAt
    this.deadline = startedAt + route.config.resilience.timeoutMs
    this.upstream = route.upstreamLabel
  }
}
