/**
 * Writing the answer to the client and closing the books on a request:
 * metrics and the log line are written exactly once, from the context,
 * when the client connection is done with the response.
 */
import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import type { RequestContext } from '../core/context.js'
import type { UpstreamResponse } from '../core/pipeline.js'
import type { RouteView } from '../core/context.js'
import { clientResponseHeaders } from './headers.js'
import { ClientCancelledError, PolicyRejectionError, RequestBodyFragmentedError, RequestBodyTooLargeError, UpstreamError, classifyBodyError, classifyError, statusForError } from '../core/errors.js'

const LOG_PATH_MAX = 256

function pathForLog (url: string | undefined): string {
  if (!url) return '/'
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  return path.length > LOG_PATH_MAX ? path.slice(0, LOG_PATH_MAX) + '...' : path
}

/**
 * Records metrics and logs one line when the response is finished or
 * aborted. Registered when the request arrives: a response's 'close' that
 * happened before a listener was added is never seen again.
 */
export function settleOnClose (ctx: RequestContext, res: ServerResponse, log: Logger): void {
  // The route (and its pools and policies) stays whole until this request settles, even if a reload retires it.
  ctx.route.enter()
  // The one 'close' listener of a request: it also abandons an upstream body
  // the client left before the end of (and with it the upstream connection).
  res.once('close', () => {
    const body = ctx.responseBody
    if (body !== undefined) {
      if (!body.readableEnded) body.destroy()
    } else if (!res.writableFinished) {
      // Gone before any answer: stop working for nobody (queued and in-flight attempts, retries).
      ctx.abandon()
    }
    if (!res.writableFinished && ctx.outcome !== 'failed') ctx.outcome = 'cancelled'
    const ms = performance.now() - ctx.startedAt
    // No status line went out (the client left, or a fault cut the connection): status 0.
    const status = res.headersSent ? res.statusCode : 0
    // A response cut after its status line (a reset or truncated body) is a failure the caller saw, whatever its status.
    ctx.route.finished(ctx, status, ms, status >= 500 || status === 0 || !res.writableFinished)
    log.info({
      route: ctx.route.name,
      method: ctx.method,
      path: pathForLog(ctx.req.url),
      status,
      outcome: ctx.outcome,
      durationMs: Math.round(ms * 1000) / 1000,
      requestId: ctx.requestId,
      attempts: ctx.attempts,
      errorClass: ctx.errorClass,
      fault: ctx.fault,
      injected: ctx.injected,
      fallback: ctx.fallback
    }, 'request')
    ctx.route.leave()
  })
}

/** The x-faultline-fault value for this response, when the route exposes it and a fault acted. */
function exposedFault (ctx: RequestContext): string | undefined {
  return ctx.route.exposeFaultHeaders ? ctx.fault : undefined
}

export function sendUpstreamResponse (ctx: RequestContext, res: ServerResponse, upstream: UpstreamResponse): void {
  const body = upstream.body
  // The client left while the upstream was answering: nothing to write to,
  // and the upstream connection is freed now.
  if (res.destroyed) {
    body.once('error', noop) // undici reports its own abort; nobody is left to tell
    body.destroy()
    return
  }
  ctx.responseBody = body
  if (upstream.statusCode >= 500 && ctx.outcome === 'ok') ctx.outcome = 'failed'
  const headers = clientResponseHeaders(upstream.headers)
  headers['x-request-id'] = ctx.requestId
  headers['x-faultline-attempts'] = String(ctx.attempts)
  headers['x-faultline-outcome'] = ctx.outcome
  if (ctx.fallback !== undefined) headers['x-faultline-fallback'] = ctx.fallback
  const fault = exposedFault(ctx)
  if (fault !== undefined) headers['x-faultline-fault'] = fault
  // A client-side error ends in 'close' (settleOnClose); it must never throw.
  res.on('error', noop)
  if (bodiless(ctx.method, upstream.statusCode)) {
    sendBodiless(res, upstream.statusCode, headers, body)
    return
  }
  // An upstream failure mid-body: with the status line already sent,
  // aborting the client's response is the only honest signal left. A body
  // destroyed because the client left (settleOnClose) is not a failure.
  body.once('error', (err) => {
    if (res.destroyed) return
    // The client's body failed (left mid-upload, over the limit) after the upstream answered: not the upstream's failure.
    if (ctx.clientFault !== undefined) {
      res.destroy()
      return
    }
    const failure = classifyBodyError(err, upstream.headers['content-length'] !== undefined)
    ctx.outcome = 'failed'
    ctx.route.attemptFailed(ctx, failure.errorClass, ctx.attemptInjected)
    res.destroy()
  })
  const trailers = ctx.wantsTrailers && upstream.headers.trailer !== undefined
  if (trailers) headers.trailer = upstream.headers.trailer!
  res.writeHead(upstream.statusCode, headers)
  pump(ctx, body, res, trailers ? upstream : undefined)
}

/** HEAD, 204 and 304 have no body whatever their Content-Length says (RFC 9110 §6.4.1, §8.6). */
function bodiless (method: string, status: number): boolean {
  return status === 204 || status === 304 || method === 'HEAD'
}

/**
 * The upstream's status and headers, no body. Its Content-Length stays (on
 * a 304 or a HEAD it is the representation's length), except on a 204,
 * which must not carry one. undici fails a 204/304 body that disagrees
 * with its Content-Length, or one sent anyway: that is the upstream
 * connection's problem, never the client's, so the body is drained and
 * its error ignored.
 */
function sendBodiless (res: ServerResponse, status: number, headers: Record<string, string | string[]>, body: Readable): void {
  if (status === 204) delete headers['content-length']
  body.on('error', noop)
  res.writeHead(status, headers)
  res.end()
  body.resume()
}

/**
 * Streams the upstream body to the client with backpressure: what
 * `body.pipe(res)` does, without the listeners the two handlers above
 * make redundant, and the drain listener only once the client pushes back.
 * Not stream.pipeline(): it makes an AbortController per call and aborts it
 * on completion (a DOMException with a stack trace, every response); that
 * was the largest single share of the proxy's CPU per request (bench/).
 */
function pump (ctx: RequestContext, body: Readable, res: ServerResponse, withTrailers?: UpstreamResponse): void {
  const idle = new BodyIdleTimer(ctx, body, res)
  const resume = (): void => {
    idle.waitingForClient = false
    idle.progress = performance.now()
    body.resume()
  }
  body.on('data', (chunk: Buffer) => {
    idle.progress = performance.now()
    if (!res.write(chunk)) {
      idle.waitingForClient = true
      body.pause()
      res.once('drain', resume)
    }
  })
  body.once('end', () => {
    // undici fills `trailers` by the body's end; only a client that sent TE: trailers gets them.
    const trailers = withTrailers?.trailers
    if (trailers !== undefined) res.addTrailers(clientResponseHeaders(trailers))
    res.end()
  })
  // A body that closes without 'end' or 'error' (a stream some stage destroyed
  // quietly) must not leave the client waiting: abort its response, as
  // pipeline() would have with a premature-close error.
  body.once('close', () => {
    idle.stop()
    if (!body.readableEnded && !res.destroyed) res.destroy()
  })
}

/**
 * bodyIdleTimeoutMs, enforced by our own timer on both sides of the pump.
 * undici's bodyTimeout stops counting while the body is paused, so a
 * client that never reads would hold the upstream connection forever; and
 * undici's timer is coarse (about a second). One timer per response, not
 * one per chunk: a chunk only stamps the time, and the timer, when it
 * fires, re-arms for what is left.
 *
 *   waiting for the client (it does not read): a slow reader; its response
 *     is cut and the upstream body destroyed, which frees the connection.
 *     Not an upstream failure.
 *   waiting for the upstream: the upstream stalled mid-body; a body timeout,
 *     counted like undici's own.
 */
class BodyIdleTimer {
  progress = performance.now()
  waitingForClient = false
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly ctx: RequestContext, private readonly body: Readable, private readonly res: ServerResponse) {
    const ms = ctx.route.bodyIdleTimeoutMs
    this.timer = setTimeout(this.check, ms)
  }

  stop (): void {
    clearTimeout(this.timer)
    this.timer = undefined
  }

  private readonly check = (): void => {
    if (this.timer === undefined) return
    const ms = this.ctx.route.bodyIdleTimeoutMs
    const left = this.progress + ms - performance.now()
    if (left > 0) {
      this.timer = setTimeout(this.check, left)
      return
    }
    this.timer = undefined
    const { ctx, body, res } = this
    if (this.waitingForClient) {
      ctx.route.slowReader()
    } else {
      ctx.outcome = 'failed'
      ctx.route.attemptFailed(ctx, 'timeout')
    }
    res.destroy()
    body.destroy()
  }
}

function noop (): void {}

/**
 * An interim answer from the upstream, passed on before the final one:
 * 103 Early Hints with its headers, 102 Processing. 100 Continue is this
 * hop's own business (the listener answers Expect itself) and 101 is an
 * upgrade (src/proxy/upgrade.ts).
 */
export function sendInformational (res: ServerResponse, status: number, headers: Record<string, string | string[] | undefined>): void {
  if (res.headersSent || res.destroyed) return
  try {
    if (status === 103) res.writeEarlyHints(clientResponseHeaders(headers))
    else if (status === 102) res.writeProcessing()
  } catch {
    // A Link value Node will not write (it validates them): the hint is dropped, the answer is not.
  }
}

export interface ErrorBody {
  error: string
  message: string
  [key: string]: unknown
}

export function sendJson (res: ServerResponse, status: number, body: ErrorBody, extraHeaders?: Record<string, string>): void {
  const payload = JSON.stringify(body)
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
    ...extraHeaders
  })
  res.end(payload)
}

/** 413 and close: the rest of the body is never read, so the connection cannot be reused. Counted as an edge refusal. */
export function sendTooLarge (res: ServerResponse, limit: number, requestId: string, route: Pick<RouteView, 'bodyTooLarge'>): void {
  route.bodyTooLarge()
  refuseBody(res, 413, new RequestBodyTooLargeError(limit), requestId)
}

/**
 * A request body refused on its way (too large, or a flood of tiny pieces): its error as the answer, and the
 * connection closes, since the rest of the body is never read. With the status line already out, only a cut is left.
 */
function refuseBody (
  res: ServerResponse, status: number, err: RequestBodyTooLargeError | RequestBodyFragmentedError, requestId: string
): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  sendJson(res, status, { error: err.code, message: err.message, requestId }, { connection: 'close', 'x-request-id': requestId })
}

/** The client-facing answer for a failure no policy absorbed. */
export function sendFailure (ctx: RequestContext, res: ServerResponse, err: unknown): void {
  // Abandoned because the client left (settleOnClose): nobody to answer, nothing to classify.
  if (err instanceof ClientCancelledError) return
  // The client's body failed on its way (src/proxy/limits.ts), wherever the request was; the attempt it
  // aborted may have failed with undici's own error, so the request's fault decides, not `err`.
  const bodyFault = ctx.clientFault ?? err
  if (bodyFault instanceof RequestBodyTooLargeError) {
    ctx.outcome = 'failed'
    sendTooLarge(res, bodyFault.limit, ctx.requestId, ctx.route)
    return
  }
  if (bodyFault instanceof RequestBodyFragmentedError) {
    ctx.outcome = 'failed'
    ctx.route.bodyFragmented()
    refuseBody(res, 400, bodyFault, ctx.requestId)
    return
  }
  if (err instanceof PolicyRejectionError) {
    // Refused by a policy (open breaker, full bulkhead, auth guard): a fast 503 that says why.
    ctx.outcome = err.reason === 'rejected_bulkhead' ? 'rejected_bulkhead' : err.reason === 'short_circuited' ? 'short_circuited' : 'failed'
    if (err.reason === 'auth_blocked') ctx.errorClass ??= 'auth'
    sendJson(res, 503, { error: err.reason, message: err.message, route: ctx.route.name, requestId: ctx.requestId }, {
      'x-request-id': ctx.requestId,
      'retry-after': String(err.retryAfterS),
      'x-faultline-attempts': String(ctx.attempts),
      'x-faultline-outcome': ctx.outcome
    })
    return
  }
  const failure = err instanceof UpstreamError ? err : classifyError(err)
  if (ctx.outcome === 'ok') ctx.outcome = 'failed'
  ctx.errorClass ??= failure.errorClass
  if (res.headersSent) {
    res.destroy()
    return
  }
  const status = statusForError(failure.errorClass)
  const headers: Record<string, string> = { 'x-request-id': ctx.requestId, 'x-faultline-attempts': String(ctx.attempts), 'x-faultline-outcome': ctx.outcome }
  const fault = exposedFault(ctx)
  if (fault !== undefined) headers['x-faultline-fault'] = fault
  sendJson(res, status, {
    error: status === 504 ? 'upstream_timeout' : 'upstream_unavailable',
    class: failure.errorClass,
    message: failure.message,
    route: ctx.route.name,
    requestId: ctx.requestId,
    attempts: ctx.attempts
  }, headers)
}
