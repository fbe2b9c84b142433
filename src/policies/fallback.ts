/**
 * Fallback chain, outermost: when the request failed (a thrown failure, a
 * policy rejection, or a 5xx/429 answer), try the configured steps in
 * order and serve the first that works, marked with
 * x-faultline-fallback. If none does, the original failure goes out
 * unchanged (the upstream's own error answer when there was one).
 *
 *   cache      the last-known-good answer for the same key (see cache.ts)
 *   alternate  the next origin in upstream.alternates, one try each
 *   static     a configured status, headers and body
 *   defer      store the write durably, answer 202, deliver it later (src/deferral)
 *
 * Auth failures fail closed: a 401/403 or an auth-guard block is never
 * answered from a cache, an alternate or a canned body.
 */
import { Readable } from 'node:stream'
import type { Policy, UpstreamCall, UpstreamResponse } from '../core/pipeline.js'
import type { FallbackKind, RequestContext } from '../core/context.js'
import { PolicyRejectionError, UpstreamError, neverSent, safeToResend } from '../core/errors.js'
import type { FallbackConfig, StaticConfig } from './schema.js'
import type { LastKnownGood } from './cache.js'
import { discardBody, makeReplayable, replayable } from './body.js'
import type { DeferStep } from '../deferral/defer-step.js'

export interface Alternate {
  /** host:port, the upstream label when it answers. */
  label: string
  /** One attempt against this origin, attempt timeout included. */
  call: UpstreamCall
}

export interface FallbackOptions {
  steps: readonly FallbackConfig[]
  cache: LastKnownGood | undefined
  alternates: readonly Alternate[]
  maxReplayBytes: number
  /** The route's retry.nonIdempotent: POST/PATCH may be sent to an alternate too. */
  nonIdempotent: boolean
  /** The primary upstream's origin: invalidation reaches Location and Content-Location on it only. */
  origin: URL
  /** The defer step, when the chain has one. */
  defer?: DeferStep
  /** Returned on dispose (the cache lease). */
  release: () => void
}

/** Answers a fallback may replace. */
function failedStatus (status: number): boolean {
  return status >= 500 || status === 429
}

function absorbable (err: unknown): boolean {
  if (err instanceof UpstreamError) return err.errorClass !== 'auth'
  if (err instanceof PolicyRejectionError) return err.reason !== 'auth_blocked'
  return false
}

function staticAnswer (config: StaticConfig): () => UpstreamResponse {
  const body = Buffer.from(config.body)
  const headers: Record<string, string> = { ...config.headers, 'content-length': String(body.length) }
  return () => ({ statusCode: config.status, headers: { ...headers }, body: Readable.from(body.length > 0 ? [body] : []) })
}

export function fallbackPolicy (options: FallbackOptions): Policy {
  const { steps, cache, alternates, maxReplayBytes, nonIdempotent, origin, defer } = options
  const usesAlternate = steps.some((s) => s.kind === 'alternate')
  const staticStep = steps.find((s): s is StaticConfig => s.kind === 'static')
  const canned = staticStep !== undefined ? staticAnswer(staticStep) : undefined

  async function viaAlternate (ctx: RequestContext, mayResend: boolean): Promise<UpstreamResponse | undefined> {
    if (!mayResend || !replayable(ctx)) return undefined
    for (const alternate of alternates) {
      // Under 1 ms left is past the deadline: its timer may fire that much early (libuv's clock is cached per
      // loop turn), and an attempt that short only sends the alternate a request it aborts and counts as failed.
      if (ctx.deadline - performance.now() < 1) return undefined
      try {
        const response = await alternate.call(ctx)
        if (!failedStatus(response.statusCode)) {
          ctx.upstream = alternate.label
          return response
        }
        discardBody(response.body)
      } catch {
        // This origin failed too: on to the next.
      }
    }
    return undefined
  }

  async function serve (kind: FallbackKind, ctx: RequestContext, error: unknown, response: UpstreamResponse | undefined): Promise<UpstreamResponse | undefined> {
    switch (kind) {
      case 'defer': {
        const reason = response !== undefined ? `HTTP ${response.statusCode}` : error instanceof UpstreamError ? error.errorClass : error instanceof PolicyRejectionError ? error.reason : 'failed'
        // Not stored (the disk refused it): not accepted, so the original failure goes out.
        return await defer?.defer(ctx, reason).catch(() => undefined)
      }
      case 'cache': return await cache?.lookup(ctx)
      case 'static': return canned?.()
      case 'alternate': {
        const mayResend = safeToResend(ctx.method, ctx.req.headers['idempotency-key'], nonIdempotent) ||
          (error instanceof UpstreamError && neverSent(error)) || error instanceof PolicyRejectionError
        return await viaAlternate(ctx, mayResend)
      }
    }
  }

  return {
    name: 'fallback',
    async execute (ctx, next) {
      // Any method: an unsafe one may still go to an alternate when the primary never saw it (connect failed).
      if (usesAlternate) await makeReplayable(ctx, maxReplayBytes)
      // A key already deferred (or delivered) is answered from the deferral, never sent a second time.
      const settled = await defer?.before(ctx)
      if (settled !== undefined) return settled
      let response: UpstreamResponse | undefined
      let error: unknown
      try {
        response = await next(ctx)
        if (!failedStatus(response.statusCode)) {
          if (cache === undefined) return response
          cache.invalidate(ctx, response, origin)
          return cache.tee(ctx, response)
        }
      } catch (err) {
        if (!absorbable(err)) throw err
        error = err
      }
      for (const step of steps) {
        const served = await serve(step.kind, ctx, error, response)
        if (served === undefined) continue
        if (response !== undefined) discardBody(response.body)
        // The defer step sets its own outcome (a 422 for a reused key is not a deferral).
        if (step.kind === 'defer') return served
        ctx.fallback = step.kind
        ctx.outcome = step.kind === 'cache' ? 'fallback_cache' : step.kind === 'alternate' ? 'fallback_alternate' : 'fallback_static'
        return served
      }
      if (response !== undefined) return response
      throw error
    },
    snapshot: () => ({ steps: steps.map((s) => s.kind), ...(cache !== undefined ? { cache: cache.snapshot() } : {}) }),
    dispose: options.release
  }
}
