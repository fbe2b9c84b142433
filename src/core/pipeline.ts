/**
 * The request pipeline: policies wrap the upstream call, outermost first,
 * cockatiel-style. Each policy gets the context and the next call inward;
 * it may call next zero, one or many times (retry) and annotate the
 * context. The chain is built once per route and config generation, so a
 * request allocates nothing here but its own promises.
 */
import type { Readable } from 'node:stream'
import type { RequestContext } from './context.js'

export interface UpstreamResponse {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  body: Readable
  /** The upstream's trailer fields, filled by the end of the body (undici's ResponseData). */
  trailers?: Record<string, string | string[] | undefined>
}

export type UpstreamCall = (ctx: RequestContext) => Promise<UpstreamResponse>

export interface Policy {
  /** Stable name, used in docs, logs and GET /routes. */
  readonly name: string
  execute: (ctx: RequestContext, next: UpstreamCall) => Promise<UpstreamResponse>
  /** Live state for GET /routes: a plain JSON object of the policy's own type (BreakerSnapshot, BulkheadSnapshot, ...). */
  snapshot?: () => object
  /** Releases timers or handles when the route is replaced by a reload. */
  dispose?: () => void
}

/**
 * Nests policies around `call`; the first policy is the outermost. Each
 * layer hands back the policy's own promise instead of wrapping it in one
 * more async function: a promise and three microtask hops fewer per policy
 * per request. A policy that throws synchronously still rejects.
 */
export function composePipeline (policies: readonly Policy[], call: UpstreamCall): UpstreamCall {
  let next = call
  for (let i = policies.length - 1; i >= 0; i--) {
    const policy = policies[i]!
    const inner = next
    next = (ctx) => {
      try {
        return policy.execute(ctx, inner)
      } catch (err) {
        return Promise.reject(err)
      }
    }
  }
  return next
}
