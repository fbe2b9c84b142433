/**
 * The innermost step: one attempt against the upstream through its undici
 * Pool. Bodies are streamed both ways; nothing is buffered here. A thrown
 * error is always a classified UpstreamError, and every failed attempt
 * (thrown, or a 401/403/429/5xx answer) is counted once, here.
 */
import type { Pool } from 'undici'
import type { ErrorClass } from './errors.js'
import { UpstreamError, classifyError } from './errors.js'
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
  /** Deadline for response headers of one attempt (the request's own deadline may cut it shorter). */
  headersTimeoutMs: number
  /** Longest pause between body chunks. */
  bodyIdleTimeoutMs: number
}

export function upstreamAttempt (pool: Pool, options: AttemptOptions, metrics: RouteMetrics): UpstreamCall {
  const { headersTimeoutMs, bodyIdleTimeoutMs } = options
  return async (ctx: RequestContext): Promise<UpstreamResponse> => {
    ctx.attempts++
    const waitMs = Math.max(1, Math.min(headersTimeoutMs, ctx.deadline - performance.now()))
    const abort = new AbortController()
    // undici's own headersTimeout runs on a coarse (~1 s) timer wheel; a
    // resilience deadline of 250 ms must mean 250 ms, so the clock is ours.
    const timer = setTimeout(abortOnTimeout, waitMs, abort, waitMs)
    let response
    try {
      response = await pool.request({
        path: ctx.upstreamPath,
        method: ctx.method as 'GET',
        headers: ctx.upstreamHeaders,
        body: ctx.body,
        signal: abort.signal,
        headersTimeout: null,
        bodyTimeout: bodyIdleTimeoutMs
      })
    } catch (err) {
      const failure = classifyError(abort.signal.aborted ? abort.signal.reason : err)
      ctx.errorClass = failure.errorClass
      metrics.upstreamError(failure.errorClass)
      throw failure
    } finally {
      clearTimeout(timer)
    }
    const failed = responseErrorClass(response.statusCode)
    if (failed !== undefined) {
      ctx.errorClass = failed
      metrics.upstreamError(failed)
    }
    return response
  }
}

function abortOnTimeout (abort: AbortController, ms: number): void {
  abort.abort(new UpstreamError('timeout', `the upstream did not send response headers within ${Math.round(ms)} ms`, { timeoutPhase: 'headers' }))
}
