/**
 * Writing the answer to the client and closing the books on a request:
 * metrics and the log line are written exactly once, from the context,
 * when the client connection is done with the response.
 */
import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { Logger } from 'pino'
import { logRequest } from '../log.js'
import type { RequestContext } from './context.js'
import type { UpstreamResponse } from './pipeline.js'
import { clientResponseHeaders } from './headers.js'
import { UpstreamError, classifyError, statusForError } from './errors.js'

const LOG_PATH_MAX = 256

function pathForLog (url: string | undefined): string {
  if (!url) return '/'
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  return path.length > LOG_PATH_MAX ? path.slice(0, LOG_PATH_MAX) + '...' : path
}

/** Records metrics and logs one line; called once, when the response is finished or aborted. */
function settle (ctx: RequestContext, res: ServerResponse, log: Logger): void {
  if (!res.writableFinished && ctx.outcome !== 'failed') ctx.outcome = 'cancelled'
  const ms = performance.now() - ctx.startedAt
  const status = res.statusCode
  ctx.route.metrics.request(ctx.upstream, ctx.method, status, ctx.outcome, ms / 1000)
  logRequest(log, {
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
    fallback: ctx.fallback
  })
}

export function sendUpstreamResponse (ctx: RequestContext, res: ServerResponse, upstream: UpstreamResponse, log: Logger): void {
  const body = upstream.body
  // One listener closes the books and, if the client left before the end,
  // abandons the upstream response (and its connection).
  res.once('close', () => {
    settle(ctx, res, log)
    if (!body.readableEnded) body.destroy()
  })
  if (upstream.statusCode >= 500 && ctx.outcome === 'ok') ctx.outcome = 'failed'
  const headers = clientResponseHeaders(upstream.headers)
  headers['x-request-id'] = ctx.requestId
  // An upstream failure mid-body: with the status line already sent,
  // aborting the client's response is the only honest signal left.
  body.once('error', (err) => {
    if (res.destroyed) return
    const failure = classifyError(err)
    ctx.errorClass = failure.errorClass
    ctx.outcome = 'failed'
    ctx.route.metrics.upstreamError(failure.errorClass)
    res.destroy()
  })
  // An error on the client side ends in 'close', handled above; never let it throw.
  res.on('error', noop)
  res.writeHead(upstream.statusCode, headers)
  pump(body, res)
}

/**
 * Streams the upstream body to the client with backpressure: what
 * `body.pipe(res)` does, minus the listeners we do not need (errors and an
 * early close are handled above), three instead of seven, and the drain
 * listener only once the client actually pushes back. Not
 * stream.pipeline(): it builds an AbortController per call and aborts it
 * (a DOMException with a stack trace) on every completion; replacing it
 * cut the proxy's CPU per request by a third.
 */
function pump (body: Readable, res: ServerResponse): void {
  const resume = (): void => { body.resume() }
  body.on('data', (chunk: Buffer) => {
    if (!res.write(chunk)) {
      body.pause()
      res.once('drain', resume)
    }
  })
  body.once('end', () => { res.end() })
}

function noop (): void {}

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

/** The client-facing answer for a failure no policy absorbed. */
export function sendFailure (ctx: RequestContext, res: ServerResponse, err: unknown, log: Logger): void {
  res.once('close', () => { settle(ctx, res, log) })
  const failure = err instanceof UpstreamError ? err : classifyError(err)
  if (ctx.outcome === 'ok') ctx.outcome = 'failed'
  ctx.errorClass ??= failure.errorClass
  if (res.headersSent) {
    res.destroy()
    return
  }
  const status = statusForError(failure.errorClass)
  sendJson(res, status, {
    error: status === 504 ? 'upstream_timeout' : 'upstream_unavailable',
    class: failure.errorClass,
    message: failure.message,
    route: ctx.route.name,
    requestId: ctx.requestId
  }, { 'x-request-id': ctx.requestId })
}
