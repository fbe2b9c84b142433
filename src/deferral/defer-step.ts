/**
 * The `defer` step of the fallback chain: a write that meets a failing
 * upstream is stored durably and answered `202 Accepted` with a deferral
 * id; the route's deliverer (deliverer.ts) sends it later.
 *
 * Only requests that can be sent twice safely are deferred: a method the
 * step allows and an Idempotency-Key (sent by the client, or made up when
 * the route opts in), which is forwarded on every delivery so the upstream
 * can tell a redelivery from a new write. Exactly once from the caller's
 * view: while a key is deferred, the same key gets the same id without
 * reaching the upstream; once delivered, it gets the upstream's answer.
 */
import { createHash, randomUUID } from 'node:crypto'
import { Readable } from 'node:stream'
import type { RequestContext } from '../core/context.js'
import type { UpstreamResponse } from '../core/pipeline.js'
import { makeReplayable } from '../policies/body.js'
import type { DeferStepConfig } from '../policies/schema.js'
import type { DeferralEntry, DeferralStore } from './store.js'

/** The headers a stored request keeps besides its allow-list: what makes the replay the same request. */
const ALWAYS_KEPT = new Set(['idempotency-key', 'content-type', 'content-encoding'])
/** Framing and per-hop fields, recomputed or meaningless on a later delivery. */
const NEVER_STORED = new Set(['content-length', 'transfer-encoding', 'expect', 'connection', 'keep-alive', 'te', 'upgrade'])
/** Response headers kept with a delivery's result: what describes the body, never credentials (Set-Cookie). */
export const RESULT_HEADERS = ['content-type', 'content-language', 'location', 'etag', 'last-modified'] as const

export interface DeferContext {
  /** The store, once open (undefined: deferral is unavailable and the failure goes out as it is). */
  storeOf: () => DeferralStore | undefined
  /** A new entry for this route: its deliverer should look. */
  wake: (route: string) => void
  accepted: (route: string, injected: boolean) => void
}

export interface DeferStep {
  /** Before the first attempt: buffers the body, settles the key; an answer when the key is already deferred or delivered. */
  before: (ctx: RequestContext) => Promise<UpstreamResponse | undefined>
  /** The chain reached `defer`: stores the request and answers 202, or undefined when it cannot be deferred. */
  defer: (ctx: RequestContext, reason: string) => Promise<UpstreamResponse | undefined>
}

function headerValue (ctx: RequestContext, name: string): string | undefined {
  const h = ctx.upstreamHeaders
  for (let i = 0; i < h.length; i += 2) if (h[i]!.toLowerCase() === name) return h[i + 1]
  return undefined
}

export function fingerprint (method: string, path: string, body: Buffer): string {
  return createHash('sha256').update(method).update('\0').update(path).update('\0').update(body).digest('hex')
}

function json (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}): UpstreamResponse {
  const payload = Buffer.from(JSON.stringify(body))
  return {
    statusCode: status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'content-length': String(payload.length), 'cache-control': 'no-store', ...headers },
    body: Readable.from([payload])
  }
}

/** The answer for a key that is deferred already, or whose delivery is done. */
export function answerFor (entry: DeferralEntry, requestId: string): UpstreamResponse {
  const location = `/deferrals/${entry.id}`
  const result = entry.result
  if (entry.state === 'delivered' && result !== undefined && !result.truncated) {
    const body = Buffer.from(result.body, 'base64')
    return {
      statusCode: result.status,
      headers: { ...result.headers, 'content-length': String(body.length), 'x-faultline-deferral': entry.id, 'content-location': location },
      body: Readable.from(body.length > 0 ? [body] : [])
    }
  }
  return json(202, { deferred: true, id: entry.id, state: entry.state, location, route: entry.route, requestId, ...(result !== undefined ? { upstreamStatus: result.status } : {}) },
    { location, 'x-faultline-deferral': entry.id })
}

export function deferStep (route: string, config: DeferStepConfig, deps: DeferContext): DeferStep {
  const methods = new Set<string>(config.methods)
  const allowed = config.allowHeaders !== undefined ? new Set(config.allowHeaders.map((h) => h.toLowerCase())) : undefined

  /** The request's key, once before() has run: sent, or made up when the route allows. */
  function keyOf (ctx: RequestContext): string | undefined {
    return headerValue(ctx, 'idempotency-key')
  }

  function storedHeaders (ctx: RequestContext): string[] {
    const out: string[] = []
    const h = ctx.upstreamHeaders
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!.toLowerCase()
      if (NEVER_STORED.has(name)) continue
      if (allowed !== undefined && !allowed.has(name) && !ALWAYS_KEPT.has(name)) continue
      out.push(name, h[i + 1]!)
    }
    return out
  }

  return {
    async before (ctx) {
      const store = deps.storeOf()
      if (store === undefined || !methods.has(ctx.method)) return undefined
      if (keyOf(ctx) === undefined) {
        if (!config.generateKey) return undefined
        // Sent on the live attempt as well: the upstream sees one key for the write and any redelivery.
        ctx.upstreamHeaders.push('idempotency-key', randomUUID())
      }
      // A deferred request must be whole on disk: bodies up to maxBodyBytes are read before the first attempt.
      await makeReplayable(ctx, Math.max(config.maxBodyBytes, ctx.route.maxReplayBytes))
      if (ctx.body !== null && !Buffer.isBuffer(ctx.body)) return undefined
      const existing = await store.byKey(route, keyOf(ctx)!)
      if (existing === undefined || (existing.state !== 'pending' && existing.state !== 'delivered')) return undefined
      return keyConflict(existing, ctx) ?? answered(ctx, existing)
    },

    async defer (ctx, reason) {
      const store = deps.storeOf()
      const key = keyOf(ctx)
      if (store === undefined || key === undefined || !methods.has(ctx.method)) return undefined
      const body = ctx.body === null ? Buffer.alloc(0) : ctx.body
      // Not read whole (larger than maxBodyBytes): it cannot be stored, so it is not deferred.
      if (!Buffer.isBuffer(body) || body.length > config.maxBodyBytes) return undefined
      const now = Date.now()
      const { entry, created } = await store.accept({
        route,
        key,
        fingerprint: fingerprint(ctx.method, ctx.upstreamPath, body),
        method: ctx.method,
        path: ctx.upstreamPath,
        headers: storedHeaders(ctx),
        body: body.toString('base64'),
        injected: ctx.injected,
        reason,
        createdAt: now,
        expiresAt: now + config.maxAgeMs
      })
      if (!created) return keyConflict(entry, ctx) ?? answered(ctx, entry)
      deps.accepted(route, ctx.injected)
      deps.wake(route)
      return answered(ctx, entry)
    }
  }
}

/** An answer from the deferral: the outcome says so (x-faultline-outcome: deferred). */
function answered (ctx: RequestContext, entry: DeferralEntry): UpstreamResponse {
  ctx.outcome = 'deferred'
  ctx.fallback = 'defer'
  return answerFor(entry, ctx.requestId)
}

/** The same key with another request (method, path or body): refused, as the IETF Idempotency-Key draft asks (422). */
export function keyConflict (entry: DeferralEntry, ctx: RequestContext): UpstreamResponse | undefined {
  const body = Buffer.isBuffer(ctx.body) ? ctx.body : Buffer.alloc(0)
  if (entry.fingerprint === fingerprint(ctx.method, ctx.upstreamPath, body)) return undefined
  return json(422, { error: 'idempotency_key_reused', message: 'this Idempotency-Key was used for a different request (method, path or body) that is deferred or delivered', id: entry.id, requestId: ctx.requestId })
}
