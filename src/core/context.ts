/**
 * One RequestContext per client request. Policies and faults read it and
 * annotate it on the way in; the responder writes metrics and the log line
 * from it once, at the end. A class (not an object literal) so every
 * request has the same shape and V8 keeps one hidden class.
 */
import { EventEmitter } from 'node:events'
import type { IncomingMessage } from 'node:http'
import type { Readable } from 'node:stream'
import { ClientCancelledError, type ClientFaultError, type ErrorClass } from './errors.js'
import type { FallbackKind, Outcome } from './outcome.js'

export type { FallbackKind } from './outcome.js'

const TE_TRAILERS = /(?:^|,)\s*trailers\s*(?:[,;]|$)/i

/** A TE header that lists "trailers" (RFC 9110 §10.1.4). */
export function asksForTrailers (te: string | string[] | undefined): boolean {
  return te !== undefined && TE_TRAILERS.test(Array.isArray(te) ? te.join(',') : te)
}

/**
 * Aborts one upstream attempt: the seam behind ctx.attemptSignal. An
 * AbortController per attempt is costly (an EventTarget, plus undici's
 * listener on it; 12-16% of the proxy's CPU per request, measured in
 * bench/), and most attempts never time out. So this is an EventEmitter,
 * which undici accepts as a request signal, and the AbortSignal an
 * injected delay wants is made only when someone asks for it.
 */
export class AttemptAbort extends EventEmitter {
  #aborted = false
  #reason: unknown = undefined
  #controller: AbortController | undefined = undefined

  get aborted (): boolean { return this.#aborted }
  get reason (): unknown { return this.#reason }

  /** A standard AbortSignal for this attempt, made on first use and aborted with it. */
  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.#aborted) this.#controller.abort(this.#reason)
    }
    return this.#controller.signal
  }

  abort (reason: unknown): void {
    if (this.#aborted) return
    this.#aborted = true
    this.#reason = reason
    this.#controller?.abort(reason)
    this.emit('abort')
  }
}

/**
 * What a request, a policy or a fault may know about its route: a few
 * settings and the hooks that close its books. The assembly's RouteRuntime
 * implements it; the kernel never sees the runtime itself (its pools,
 * faults, intent engine), so nothing below the assembly can reach through
 * a request into another feature.
 */
/** What an upstream attempt counts (faultline_upstream_errors_total); RouteMetrics implements it. */
export interface AttemptCounters {
  /** One failed attempt, injected (a fault made it) or real. */
  upstreamError (errorClass: ErrorClass, injected: boolean): void
}

export interface RouteView {
  readonly name: string
  /** Bounded label for the primary upstream: its host:port. */
  readonly upstreamLabel: string
  /** The route's deadline for response headers (resilience.timeoutMs). */
  readonly timeoutMs: number
  /** Longest pause between body chunks, either way (resilience.bodyIdleTimeoutMs). */
  readonly bodyIdleTimeoutMs: number
  /** Largest request body kept for a replay (resilience.maxReplayBytes). */
  readonly maxReplayBytes: number
  /** The route answers with x-faultline-fault when a fault acted (chaos.exposeHeaders). */
  readonly exposeFaultHeaders: boolean
  /** An attempt failed: sets ctx.errorClass and counts it, once per attempt (countAttemptError). */
  attemptFailed (ctx: RequestContext, errorClass: ErrorClass, injected?: boolean): void
  /** The client stopped reading past bodyIdleTimeoutMs (faultline_slow_readers_total). */
  slowReader (): void
  /** A request body over the route's limit was refused (413). */
  bodyTooLarge (): void
  /** A request body sent in a flood of tiny pieces was refused (400). */
  bodyFragmented (): void
  /** A request of this route started: the route stays whole until leave(). */
  enter (): void
  /** A request of this route settled. */
  leave (): void
  /**
   * The request settled (its response closed): metrics, the failure report
   * and the intent engine, fanned out by the runtime. `callerSawFailure`:
   * what the SLO judges (a 5xx, no answer, or an answer cut short).
   */
  finished (ctx: RequestContext, status: number, ms: number, callerSawFailure: boolean): void
}

export class RequestContext {
  readonly route: RouteView
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
  /** Aborts the current attempt (set by the attemptTimeout policy); the upstream call listens to it. */
  attemptAbort: AttemptAbort | undefined = undefined
  /** Upstream attempts made so far (0 before the first). */
  attempts = 0
  /** The current attempt's failure is counted already: one attempt is one upstream error at most. */
  attemptErrorCounted = false
  /** Set by retry when it decides to try again: fired when that attempt really starts (past the breaker, client still there). */
  onNextAttempt: (() => void) | undefined = undefined
  outcome: Outcome = 'ok'
  /** The class of the last failure seen, if any. */
  errorClass: ErrorClass | undefined = undefined
  /** Name of the fault injected into this request, if any. */
  fault: string | undefined = undefined
  /**
   * A fault acted on the current (or last) upstream attempt: its answer is
   * never cached, and unless the upstream itself failed (attemptRealFailure)
   * its outcome is the route's alone, ignored by the shared breaker and auth
   * guard (docs/POLICIES.md, containment). Reset as each attempt starts.
   */
  attemptInjected = false
  /**
   * The current attempt failed for real: the upstream (not a fault) made
   * the failure, say a 503 behind an injected delay. Such an outcome is
   * real for the shared policies and the report, though a fault acted.
   */
  attemptRealFailure = false
  /** Counted once by its route's chaos share cap (chaos.maxShare), however many attempts it makes. */
  chaosCounted = false
  /** A fault touched this request: later attempts may be faulted again without counting again. */
  chaosTouched = false
  /** The answer was shaped by chaos elsewhere: a client-side fault, or a route-scoped breaker or auth guard tripped by injected failures. */
  injectedElsewhere = false
  fallback: FallbackKind | undefined = undefined
  /** The client left before its answer: no new attempt starts, and the one in flight was aborted. */
  clientGone = false
  /** A request-side problem (client gone, body over the limit): ends the request, never counted against the upstream. */
  clientFault: ClientFaultError | undefined = undefined
  /** Waits outside an attempt (a bulkhead queue) that end on a client fault; made on first use. */
  #faultListeners: Array<(err: ClientFaultError) => void> | undefined = undefined
  /** The body being streamed to the client, once the status line is out (the responder's, so it can abandon it). */
  responseBody: Readable | undefined = undefined
  /** Label of the upstream that answered (origin host:port). */
  upstream: string

  constructor (route: RouteView, req: IncomingMessage, requestId: string, upstreamPath: string, upstreamHeaders: string[], body: Readable | null, startedAt: number) {
    this.route = route
    this.req = req
    this.requestId = requestId
    this.method = req.method ?? 'GET'
    this.upstreamPath = upstreamPath
    this.upstreamHeaders = upstreamHeaders
    this.body = body
    this.startedAt = startedAt
    this.deadline = startedAt + route.timeoutMs
    this.upstream = route.upstreamLabel
  }

  /**
   * Passes a 1xx answer (102, 103) on to the client before the final one.
   * The listener's context overrides it (src/proxy/client-context.ts); a
   * context with no client drops it. A method, not a hook closure set per
   * request: see docs/DECISIONS.md, "no function literal on a property".
   */
  informational (_status: number, _headers: Record<string, string | string[] | undefined>): void {}

  /** The client sent `TE: trailers` (RFC 9110 §10.1.4): the upstream's trailer fields may be passed on. */
  get wantsTrailers (): boolean {
    return asksForTrailers(this.req.headers.te)
  }

  /** The current attempt's outcome is chaos's, not the upstream's: a fault acted and no real failure came of it. */
  get attemptOutcomeInjected (): boolean {
    return this.attemptInjected && !this.attemptRealFailure
  }

  /** The client's answer was shaped by an injected fault (metrics, logs and /report label it `injected`). */
  get injected (): boolean {
    return this.injectedElsewhere || this.attemptOutcomeInjected
  }

  /** The current attempt's AbortSignal, for injected delays and anything else that takes one; made on first read. */
  get attemptSignal (): AbortSignal | undefined {
    return this.attemptAbort?.signal
  }

  /** An attempt starts (the attempt timeout policy, around faults and the upstream call): counted once, injected or real. */
  startAttempt (): void {
    this.attempts++
    this.attemptErrorCounted = false
    // Whether chaos touches this attempt is decided afresh (the fault stage sits inside).
    this.attemptInjected = false
    this.attemptRealFailure = false
    const retry = this.onNextAttempt
    if (retry !== undefined) {
      this.onNextAttempt = undefined
      retry()
    }
  }

  /** The client left before its answer: abort the attempt in flight and start no other. */
  abandon (): void {
    if (this.clientGone) return
    this.clientGone = true
    this.failClient(new ClientCancelledError())
  }

  /**
   * A request-side problem ends the request wherever it is: the attempt in
   * flight (or still queued in the pool) is aborted with it, any wait
   * outside an attempt ends, and no new attempt starts.
   */
  failClient (err: ClientFaultError): void {
    if (this.clientFault !== undefined) return
    this.clientFault = err
    this.attemptAbort?.abort(err)
    const listeners = this.#faultListeners
    this.#faultListeners = undefined
    if (listeners !== undefined) for (const listener of listeners) listener(err)
  }

  /** Calls `listener` once if a client fault ends this request; returns the unsubscribe. */
  onClientFault (listener: (err: ClientFaultError) => void): () => void {
    const listeners = (this.#faultListeners ??= [])
    listeners.push(listener)
    return () => {
      const i = listeners.indexOf(listener)
      if (i !== -1) listeners.splice(i, 1)
    }
  }
}
