/**
 * Options of the `defer` fallback step (per route) and of the deferral
 * store (top-level `deferral`). Every option and its default is described
 * in docs/POLICIES.md ("defer") and docs/CONFIG.md.
 */
import { z } from 'zod'
import { duration } from '../config/units.js'
import { HTTP_METHODS } from '../config/http-methods.js'
import { headerName } from '../config/headers.js'
import { MAX_TIMER_MS } from '../util/timer.js'

export const deferSchema = z.strictObject({
  /** Methods that may be deferred: writes. A read has nothing to deliver later. */
  methods: z.array(z.enum(HTTP_METHODS)).min(1).default(['POST', 'PUT', 'PATCH', 'DELETE']),
  /**
   * A request without Idempotency-Key gets one made up (a UUID, sent on the
   * live attempt too). Risk: the client's own retry carries no key, so it is
   * a new write; see docs/POLICIES.md.
   */
  generateKey: z.boolean().default(false),
  /** Larger request bodies are not deferred (the failure goes out as it is). */
  maxBodyBytes: z.number().int().min(0).max(16 * 1024 * 1024).default(1024 * 1024),
  /** Only these request headers are stored and replayed (Idempotency-Key always is); all end-to-end headers when absent. */
  allowHeaders: z.array(headerName).optional(),
  /** Not delivered within this long after the 202: dead letter. */
  maxAgeMs: duration(z.number().int().positive().max(30 * 24 * 3_600_000).default(24 * 3_600_000)),
  /** Delivery attempts before the entry becomes a dead letter with its last error. */
  maxAttempts: z.number().int().min(1).max(1_000).default(20),
  /** Wait after a failed delivery: exponential from baseMs, capped at maxMs, with full jitter. */
  backoff: z.strictObject({
    baseMs: duration(z.number().int().min(1).max(MAX_TIMER_MS).default(500)),
    maxMs: duration(z.number().int().min(1).max(MAX_TIMER_MS).default(60_000)),
    jitter: z.enum(['full', 'none']).default('full')
  }).prefault({}),
  /** Deliveries per second at most, per route and instance: a recovering upstream is not stampeded. */
  ratePerSecond: z.number().positive().max(1_000).default(5),
  /** One delivery attempt, response headers and the kept part of the body. */
  attemptTimeoutMs: duration(z.number().int().positive().max(MAX_TIMER_MS).default(10_000)),
  /** How much of the upstream's answer to a delivery is kept (GET /deferrals/<id>, answers to the same key). */
  resultMaxBytes: z.number().int().min(0).max(1024 * 1024).default(64 * 1024)
}).refine((d) => d.backoff.maxMs >= d.backoff.baseMs, { path: ['backoff', 'maxMs'], error: 'expected backoff.maxMs >= backoff.baseMs' })

export type DeferConfig = z.infer<typeof deferSchema>

export const deferralStoreSchema = z.strictObject({
  /** `journal`: a file on local disk (one process per directory); `redis`: Redis Streams on the fleet's Redis (`fleet.redis`), shared by the replicas. */
  store: z.enum(['journal', 'redis']).default('journal'),
  /** The journal's directory (a volume that outlives the container). Required for the journal when a route defers. */
  dir: z.string().min(1).optional(),
  /** Delivered, dead and cancelled entries are kept this long (inspection, answers to the same key). */
  retainMs: duration(z.number().int().min(0).default(24 * 3_600_000)),
  /** The journal is compacted past this size (and twice what the last compaction left). */
  compactBytes: z.number().int().min(4_096).default(16 * 1024 * 1024),
  /** Redis store: an entry held this long by a replica that stopped answering is taken over by another (XAUTOCLAIM). */
  claimIdleMs: duration(z.number().int().positive().max(MAX_TIMER_MS).default(30_000))
})

export type DeferralStoreConfig = z.infer<typeof deferralStoreSchema>
