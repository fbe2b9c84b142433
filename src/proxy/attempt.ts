/**
 * The innermost step: one attempt against the upstream through its undici
 * Pool. Bodies are streamed both ways; nothing is buffered here. A thrown
 * error is always a classified UpstreamError, and every failed attempt
 * (thrown, or a 401/403/429/5xx answer) is counted once, here.
 */
import type { Pool } from 'undici'
import type { ErrorClass } from './errors.js'
import { ClientCancelled, classifyError } from './errors.js'
import type { RequestContext } from './context.js'
import type { UpstreamCall, UpstreamResponse } from './pipeline.js'
import type { RouteMetrics } from '../metrics/route-metrics.js'

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

export function upstreamAttempt (pool: Pool, options: AttemptOptions, metrics: RouteMetrics): UpstreamCall {
  const { backstopMs, bodyIdleTimeoutMs } = options
  return async (ctx: RequestContext): Promise<UpstreamResponse> => {
    // A retry, an alternate or a queued request whose client has left: no new attempt.
    if (ctx.clientGone) throw new ClientCancelled()
    ctx.attempts++
    // An EventEmitter undici takes as its signal: no AbortSignal is made for a plain attempt.
    const abort = ctx.attemptAbort
    let response
    try {
      response = await pool.request({
        path: ctx.upstreamPath,
        method: ctx.method as 'GET',
        headers: ctx.upstreamHeaders,
        body: ctx.body,
        signal: abort,
        // The attempt timeout (a policy) owns the deadline; this is only a backstop.
        headersTimeout: backstopMs,
        bodyTimeout: bodyIdleTimeoutMs
      })
    } catch (err) {
      if (ctx.clientGone) throw new ClientCancelled()
      const failure = classifyError(abort?.aborted === true ? abort.reason : err)
      ctx.errorClass = failure.errorClass
      metrics.upstreamError(failure.errorClass)
      throw failure
    }
    const failed = responseErrorClass(response.statusCode)
    if (failed !== undefined) {
      ctx.errorClass = failed
      metrics.upstreamError(failed)
    }
    return response
  }
}

