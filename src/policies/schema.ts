/**
 * Per-route resilience options. Each policy's own options live in this file
 * so src/config/schema.ts only composes them. Every option and its default
 * is described in docs/POLICIES.md.
 */
import { z } from 'zod'
import { duration, share } from '../config/units.js'
import { MAX_TIMER_MS } from '../util/timer.js'
import { userHeaders } from '../config/headers.js'
import { ERROR_CLASSES } from '../core/errors.js'
import { deferSchema } from '../deferral/schema.js'

const errorClass = z.enum(ERROR_CLASSES)

/** What a retry may be triggered by: an error class, or one exact status (e.g. 503). */
const retryTrigger = z.union([errorClass, z.number().int().min(400).max(599)])

export const backoffSchema = z.strictObject({
  /** First delay before jitter; doubles on every further retry. */
  baseMs: duration(z.number().int().min(0).default(25)),
  /** Cap on one delay. */
  maxMs: duration(z.number().int().min(0).default(1_000)),
  /** `full`: a uniform draw in [0, delay] (AWS "full jitter"); `none`: exactly the delay. */
  jitter: z.enum(['full', 'none']).default('full')
})

export const retrySchema = z.strictObject({
  /** Tries in all, the first included. */
  attempts: z.number().int().min(1).max(10).default(3),
  backoff: backoffSchema.prefault({}),
  /** Failures worth another try. `auth` is not in the default: retrying bad credentials only risks a lockout. */
  on: z.array(retryTrigger).min(1).default(['connect', 'reset', 'timeout', 'invalid_response', 'rate_limited', 502, 503, 504]),
  /** Retry POST and PATCH even without an Idempotency-Key header (the upstream must de-duplicate). */
  nonIdempotent: z.boolean().default(false),
  /** Retries allowed as a share of requests over the budget window. */
  budgetRatio: share(z.number().min(0).max(10).default(0.2)),
  budgetWindowMs: duration(z.number().int().positive().default(10_000)),
  /** Retries always allowed per window on top of the ratio, so a quiet route can still retry. */
  budgetMinRetries: z.number().int().min(0).default(3),
  /** A Retry-After longer than this ends the retries (the upstream asked for more patience than we have). */
  maxRetryAfterMs: duration(z.number().int().min(0).default(5_000))
})

export const breakerSchema = z.strictObject({
  /** Consecutive mode: opens after this many failures in a row (the default mode, with 5). */
  consecutiveFailures: z.number().int().positive().optional(),
  /** Rate mode: opens when this share of the attempts in windowMs failed, with at least minRequests of them. */
  failureRate: share(z.number().gt(0).max(1).optional()),
  windowMs: duration(z.number().int().positive().default(10_000)),
  minRequests: z.number().int().positive().default(20),
  /** How long the first trip stays open; doubles on every trip in a row, up to maxOpenMs. */
  openMs: duration(z.number().int().positive().default(5_000)),
  maxOpenMs: duration(z.number().int().positive().default(60_000)),
  /** Trial requests let through when half-open; all must succeed to close. */
  halfOpenProbes: z.number().int().positive().max(100).default(1),
  /** What counts as a failure. auth and rate_limited are not: the upstream is up and answering. */
  on: z.array(errorClass).min(1).default(['timeout', 'connect', 'reset', 'invalid_response', 'http_5xx']),
  /**
   * Share opening and closing with every replica of the fleet (needs
   * `fleet`; docs/FLEET.md): counts stay local, a transition is told to
   * all, one replica sends the half-open trial.
   */
  fleet: z.boolean().default(false)
}).superRefine((b, ctx) => {
  if (b.consecutiveFailures !== undefined && b.failureRate !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['failureRate'], message: 'expected either consecutiveFailures or failureRate, not both' })
  }
  if (b.maxOpenMs < b.openMs) {
    ctx.addIssue({ code: 'custom', path: ['maxOpenMs'], message: `expected maxOpenMs >= openMs (${b.openMs})` })
  }
})

export const authGuardSchema = z.strictObject({
  /** 401/403 answers in a row that stop further attempts. */
  failures: z.number().int().positive().default(3),
  /** How long requests are held back (fast 503) once tripped. */
  blockMs: duration(z.number().int().positive().default(30_000)),
  /** Distinct credentials blocked at once that trip the whole origin (a credential rotation gone wrong). */
  originAfter: z.number().int().min(2).default(5)
})

export const bulkheadSchema = z.strictObject({
  maxConcurrent: z.number().int().positive().default(64),
  /** Requests that may wait for a slot (bounded by the route's timeoutMs); 0 rejects at once. */
  maxQueue: z.number().int().min(0).default(0),
  /** Retry-After (seconds) on a rejection. */
  retryAfterS: z.number().int().min(0).default(1)
})

export const cacheSchema = z.strictObject({
  maxEntries: z.number().int().positive().default(1_000),
  maxBytes: z.number().int().positive().default(16 * 1024 * 1024),
  /** Larger responses are streamed to the client but not stored. */
  maxEntryBytes: z.number().int().positive().default(1024 * 1024),
  /** How long past its freshness an entry may still be served on failure (a response's stale-if-error wins). */
  maxStaleMs: duration(z.number().int().min(0).default(300_000)),
  /**
   * A variant stored less than this long ago is not stored again: under load
   * a hot URL is copied into the cache once per refreshMs, not on every
   * answer. 0 stores every cacheable answer.
   */
  refreshMs: duration(z.number().int().min(0).default(1_000)),
  /**
   * Answers to requests that carry Authorization or Cookie: `bypass` (the
   * default) neither stores nor serves them; `perCredential` keeps one
   * last-known-good per credential (a private cache per user); `shared`
   * treats the route's data as public and ignores credentials (risk: one
   * user's answer can reach another). See docs/POLICIES.md.
   */
  credentials: z.enum(['bypass', 'perCredential', 'shared']).default('bypass'),
  /**
   * Where entries are kept: `memory` (this replica's own) or `redis` (the
   * fleet's, needs `fleet`, with this replica's own copy for when Redis is
   * away; docs/FLEET.md). Limits apply to each.
   */
  store: z.enum(['memory', 'redis']).default('memory')
})

export const staticSchema = z.strictObject({
  status: z.number().int().min(200).max(599).default(503),
  /** Valid names and values; no framing or hop-by-hop headers (src/config/headers.ts). */
  headers: userHeaders.default({}),
  body: z.string().default('')
})

/**
 * The tagged shape GET /routes shows (`{ kind: static, status: 503 }`) is
 * accepted as written too, so a step copied from the admin API into a
 * config file works: it becomes the keyed form before validation.
 */
function untag (step: unknown): unknown {
  if (typeof step !== 'object' || step === null || Array.isArray(step) || !('kind' in step)) return step
  const { kind, ...rest } = step as Record<string, unknown>
  if (kind === 'alternate' && Object.keys(rest).length === 0) return 'alternate'
  return kind === 'cache' || kind === 'static' || kind === 'defer' ? { [kind]: rest } : step
}

/** `cache`, `alternate`, `defer`, `{ cache: {...} }`, `{ static: {...} }` or `{ defer: {...} }` (or the tagged `{ kind: static, ... }`), normalised to one tagged shape. */
const fallbackItem = z.preprocess(untag, z.union([
  z.literal('cache').transform(() => ({ kind: 'cache' as const, ...cacheSchema.parse({}) })),
  z.literal('alternate').transform(() => ({ kind: 'alternate' as const })),
  z.literal('defer').transform(() => ({ kind: 'defer' as const, ...deferSchema.parse({}) })),
  // One object branch for all, so a problem inside `static` (or `cache`, `defer`) is reported at its own path.
  z.strictObject({ cache: cacheSchema.optional(), static: staticSchema.optional(), defer: deferSchema.optional() })
    .superRefine((v, ctx) => {
      const given = (['cache', 'static', 'defer'] as const).filter((k) => v[k] !== undefined)
      if (given.length === 1) return
      ctx.addIssue({
        code: 'custom',
        message: given.length === 0
          ? 'expected one of cache, static or defer in a fallback step, got an empty object'
          : `expected one of cache, static or defer per fallback step, got ${given.join(' and ')}: make each its own step, in the order they are tried (fallback: [${given.map((k) => `{ ${k}: ... }`).join(', ')}])`
      })
    })
    .transform((v) => v.static !== undefined
      ? { kind: 'static' as const, ...v.static }
      : v.defer !== undefined ? { kind: 'defer' as const, ...v.defer } : { kind: 'cache' as const, ...v.cache! })
]))

/** Opt-in response validation: see src/policies/validate.ts. */
export const validateSchema = z.strictObject({
  /** Parse 2xx bodies as JSON (the only format for now, so it must be true). */
  json: z.literal(true).default(true),
  /** A JSON Schema the parsed body must match. */
  schema: z.record(z.string(), z.unknown()).optional(),
  /** Bodies are buffered to validate them: larger ones fail as invalid_response. */
  maxBytes: z.number().int().positive().max(64 * 1024 * 1024).default(1024 * 1024)
})

export type ValidateConfig = z.infer<typeof validateSchema>

export const resilienceSchema = z.strictObject({
  /** Deadline for the whole request, all attempts, backoff and queueing included: 504 when exceeded. */
  timeoutMs: duration(z.number().int().positive().max(MAX_TIMER_MS).default(15_000)),
  /** Deadline for one attempt to receive response headers; defaults to timeoutMs. */
  attemptTimeoutMs: duration(z.number().int().positive().max(MAX_TIMER_MS).optional()),
  /** Longest pause between two body chunks from the upstream before the response is cut. */
  bodyIdleTimeoutMs: duration(z.number().int().positive().max(MAX_TIMER_MS).default(30_000)),
  /** Request bodies up to this size are kept so a retry or an alternate can send them again. */
  maxReplayBytes: z.number().int().min(0).default(64 * 1024),
  retry: retrySchema.optional(),
  breaker: breakerSchema.optional(),
  authGuard: authGuardSchema.optional(),
  bulkhead: bulkheadSchema.optional(),
  fallback: z.array(fallbackItem).default([]),
  /** No fallback and no retry: a failure is answered at once with a clear error. */
  failFast: z.boolean().default(false)
}).superRefine((r, ctx) => {
  const kinds = new Set<string>()
  r.fallback.forEach((item, i) => {
    if (kinds.has(item.kind)) ctx.addIssue({ code: 'custom', path: ['fallback', i], message: `expected each fallback kind once, "${item.kind}" is repeated` })
    kinds.add(item.kind)
  })
  if (r.failFast && r.fallback.length > 0) ctx.addIssue({ code: 'custom', path: ['failFast'], message: 'expected failFast or fallback, not both: failFast means no fallback' })
  if (r.failFast && r.retry !== undefined) ctx.addIssue({ code: 'custom', path: ['failFast'], message: 'expected failFast or retry, not both: failFast means an immediate answer' })
})

export type ResilienceConfig = z.infer<typeof resilienceSchema>
export type RetryConfig = z.infer<typeof retrySchema>
export type BreakerConfig = z.infer<typeof breakerSchema>
export type AuthGuardConfig = z.infer<typeof authGuardSchema>
export type BulkheadConfig = z.infer<typeof bulkheadSchema>
export type FallbackConfig = z.infer<typeof fallbackItem>
export type CacheConfig = Extract<FallbackConfig, { kind: 'cache' }>
export type StaticConfig = Extract<FallbackConfig, { kind: 'static' }>
export type DeferStepConfig = Extract<FallbackConfig, { kind: 'defer' }>

/** Checks that need the whole route (the alternate fallback needs upstream.alternates). */
export function checkRouteResilience (route: { upstream: { alternates: string[] }, resilience: ResilienceConfig }, ctx: z.RefinementCtx): void {
  const i = route.resilience.fallback.findIndex((f) => f.kind === 'alternate')
  if (i !== -1 && route.upstream.alternates.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['resilience', 'fallback', i], message: 'expected upstream.alternates to list at least one URL for the alternate fallback' })
  }
}

/** A route's `defer` fallback step, if it has one (the one place that asks "does this route defer"). */
export function deferStepOf (resilience: { readonly fallback: readonly FallbackConfig[] }): DeferStepConfig | undefined {
  return resilience.fallback.find((f): f is DeferStepConfig => f.kind === 'defer')
}
