/**
 * The innermost step: one attempt against the upstream through its undici
 * Pool. Bodies are streamed both ways; nothing is buffered here. A thrown
 * error is always a classified UpstreamError, and every failed attempt
 * (thrown, or a 401/403/429/5xx answer) is counted once (countAttemptError).
 */
import type { Dispatcher, Pool } from 'undici'
import type { ClientFaultError, ErrorClass } from './errors.js'
import { ClientCancelledError, classifyError } from './errors.js'
import type { AttemptAbort, RequestContext } from './context.js'
import type { UpstreamCall, UpstreamResponse } from './pipeline.js'
import type { AttemptCounters } from './context.js'

/** The error class a response status stands for, if it is a failure. */
export function responseErrorClass (status: number): ErrorClass | undefined {
  if (status >= 500) return 'http_5xx'
  if (status === 429) return 'rate_limited'
  if (status === 401 || status === 403) return 'auth'
  return undefined
}

export interface AttemptOptions {
  /** Longest pause between body chunks. */
  bodyIdleTimeoutMs: number
  /** undici's own (coarse) headers timeout, a backstop behind the attemptTimeout policy. */
  backstopMs: number
}

/**
 * Counts the current attempt's failure in faultline_upstream_errors_total,
 * once: a failure seen again later in the same attempt (a slowHeaders hold
 * cut by the timeout after a 5xx, a 5xx body that then breaks) is not a
 * second error. The class the caller sees is still the latest.
 */
export function countAttemptError (ctx: RequestContext, metrics: AttemptCounters, errorClass: ErrorClass, injected = false): void {
  ctx.errorClass = errorClass
  if (ctx.attemptErrorCounted) return
  ctx.attemptErrorCounted = true
  // `injected`: a fault made this failure, not the upstream (faultline_upstream_errors_total{injected}).
  if (!injected) ctx.attemptRealFailure = true
  metrics.upstreamError(errorClass, injected)
}

/** The request-side problem that ended this request, if any: the client left, or its body broke a limit. */
export function clientFaultOf (ctx: RequestContext): ClientFaultError | undefined {
  if (ctx.clientFault !== undefined) return ctx.clientFault
  if (ctx.clientGone) return new ClientCancelledError()
  // The client's own body stream died mid-upload (seen here before the response's 'close').
  const req = ctx.req
  if (ctx.body === req && req.destroyed && !req.complete) return new ClientCancelledError()
  return undefined
}

/**
 * undici keeps an aborted request in its pool queue until a connection is
 * free (only then does it see the abort), so the caller would wait past
 * its deadline. The abort settles the attempt at once; undici drops the
 * queued request when it reaches a connection.
 */
async function untilAborted (pending: Promise<Dispatcher.ResponseData>, abort: AttemptAbort | undefined): Promise<Dispatcher.ResponseData> {
  if (abort === undefined) return await pending
  return await new Promise((resolve, reject) => {
    const onAbort = (): void => {
      reject(abort.reason)
      // Too late to be used: whatever comes back is thrown away.
      pending.then((response) => { response.body.on('error', noop).destroy() }, noop)
    }
    abort.once('abort', onAbort)
    pending.then(
      (response) => { abort.off('abort', onAbort); resolve(response) },
      (err: unknown) => { abort.off('abort', onAbort); reject(err) }
    )
  })
}

function noop (): void {}

export function upstreamAttempt (pool: Pool, options: AttemptOptions, metrics: AttemptCounters): UpstreamCall {
  const { backstopMs, bodyIdleTimeoutMs } = options
  return async (ctx: RequestContext): Promise<UpstreamResponse> => {
    // A retry, an alternate or a queued request whose client has left or failed its body: no new attempt.
    const early = clientFaultOf(ctx)
    if (early !== undefined) throw early
    // An EventEmitter undici takes as its signal: no AbortSignal is made for a plain attempt.
    const abort = ctx.attemptAbort
    let response
    try {
      response = await untilAborted(pool.request({
        path: ctx.upstreamPath,
        method: ctx.method as 'GET',
        headers: ctx.upstreamHeaders,
        body: ctx.body,
        signal: abort,
        // The attempt timeout (a policy) owns the deadline; this is only a backstop.
        headersTimeout: backstopMs,
        bodyTimeout: bodyIdleTimeoutMs,
        // 102 and 103 are passed on as they arrive (the listener's context); undici drops them otherwise.
        onInfo: (info) => { ctx.informational(info.statusCode, info.headers) }
      }), abort)
    } catch (err) {
      // A client fault is not an upstream failure: not counted, not classified.
      const fault = clientFaultOf(ctx)
      if (fault !== undefined) throw fault
      const failure = classifyError(abort?.aborted === true ? abort.reason : err)
      countAttemptError(ctx, metrics, failure.errorClass)
      throw failure
    }
    const failed = responseErrorClass(response.statusCode)
    if (failed !== undefined) countAttemptError(ctx, metrics, failed)
    return response
  }
}
