/**
 * The fleet fault budget (`chaos.fleetBudget`): at most `perMinute`
 * injected faults on a route across every replica. A token bucket in Redis
 * (`<prefix>route:<name>:budget`), refilled at perMinute per minute by
 * Redis's own clock and holding at most ten seconds' worth, so a burst
 * stays small. Replicas lease tokens in batches and spend them locally: a
 * fault costs a token, a request without a fault costs nothing, and Redis
 * sees one call per batch, never one per request.
 *
 * Fail safe: when Redis cannot be reached, a replica injects only what it
 * has already leased, then nothing on that route until Redis is back. A
 * single instance (no `fleet`) keeps the same bucket in memory.
 */
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics/metrics.js'
import type { FleetRedis } from './redis.js'

export interface FleetBudgetConfig {
  perMinute: number
  batch?: number | undefined
}

/** Takes up to ARGV[2] tokens from a bucket of capacity ARGV[3] refilled at ARGV[1] per minute; returns how many. */
const BUCKET_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1]) / 60000
local want = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil or at == nil then tokens = cap at = now end
tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], 120000)
return granted`

/** Leased tokens not spent within this are dropped: old tokens would let a replica burst past the rate. */
const LEASE_LIFE_MS = 10_000

/** Ten seconds' worth of the rate, at least one. */
export function bucketCapacity (perMinute: number): number {
  return Math.max(1, Math.ceil(perMinute / 6))
}

/** A batch small enough to leave tokens for the others, large enough to spare Redis: a tenth of the bucket, 1..20. */
export function defaultBatch (perMinute: number): number {
  return Math.min(20, Math.max(1, Math.floor(bucketCapacity(perMinute) / 10)))
}

/** How soon a lease is asked again after Redis did not answer. */
const UNREACHABLE_RETRY_MS = 100

/** GET /routes for a fleet budget: the rate, where the tokens come from, and how many this replica holds. */
export interface FleetBudgetSnapshot { perMinute: number, scope: 'fleet' | 'local', leased: number, batch: number }

export class FleetBudget {
  private readonly route: string
  private readonly perMinute: number
  private readonly capacity: number
  private readonly batch: number
  private readonly redis: FleetRedis | undefined
  private readonly metrics: Metrics
  private readonly logger: Logger | undefined
  private tokens = 0
  private leasedAt = 0
  private leasing = false
  /** No lease before this (performance.now()): an empty bucket or a down Redis is not asked again on every fault. */
  private retryAt = 0
  /** Without a fleet: the bucket itself, in memory. */
  private localTokens: number
  private localAt = performance.now()
  private disposed = false

  constructor (route: string, config: FleetBudgetConfig, deps: { redis: FleetRedis | undefined, metrics: Metrics, logger?: Logger }) {
    this.route = route
    this.perMinute = config.perMinute
    this.capacity = bucketCapacity(config.perMinute)
    this.batch = config.batch ?? defaultBatch(config.perMinute)
    this.redis = deps.redis
    this.metrics = deps.metrics
    this.logger = deps.logger
    this.localTokens = this.capacity
    this.metrics.fleetBudgetDenied.labels(route, 'exhausted').inc(0)
    if (this.redis !== undefined) {
      this.metrics.fleetBudgetDenied.labels(route, 'unreachable').inc(0)
      this.refill()
    }
  }

  /** One fault may be injected (a token is spent) or not. Synchronous: the hot path never waits on Redis. */
  take (): boolean {
    if (this.redis === undefined) return this.takeLocal()
    if (this.tokens > 0 && performance.now() - this.leasedAt > LEASE_LIFE_MS) this.tokens = 0
    if (this.tokens > 0) {
      this.tokens--
      if (this.tokens === 0) this.refill()
      return true
    }
    this.refill()
    this.metrics.fleetBudgetDenied.labels(this.route, this.redis.isUp() ? 'exhausted' : 'unreachable').inc()
    return false
  }

  private takeLocal (): boolean {
    const now = performance.now()
    this.localTokens = Math.min(this.capacity, this.localTokens + (now - this.localAt) * this.perMinute / 60_000)
    this.localAt = now
    if (this.localTokens >= 1) {
      this.localTokens--
      return true
    }
    this.metrics.fleetBudgetDenied.labels(this.route, 'exhausted').inc()
    return false
  }

  /** Leases a batch in the background; one lease at a time. */
  private refill (): void {
    const redis = this.redis
    if (redis === undefined || this.leasing || this.disposed || performance.now() < this.retryAt) return
    this.leasing = true
    void redis.attempt(async (r) => await r.eval(BUCKET_SCRIPT, 1, redis.key('route', this.route, 'budget'), String(this.perMinute), String(this.batch), String(this.capacity)))
      .then((granted) => {
        const n = Number(granted ?? 0)
        if (n > 0 && !this.disposed) {
          this.tokens += n
          this.leasedAt = performance.now()
        } else {
          // Empty: ask again when a batch has had time to refill. Unreachable (undefined): soon, so a
          // replica whose connection is still opening at start injects once it is up, not a batch
          // period later; while Redis is down attempt() makes no call, so this costs nothing.
          this.retryAt = performance.now() + (granted === undefined ? UNREACHABLE_RETRY_MS : Math.max(100, this.batch * 60_000 / this.perMinute))
        }
      })
      .finally(() => { this.leasing = false })
  }

  snapshot (): FleetBudgetSnapshot {
    return { perMinute: this.perMinute, scope: this.redis === undefined ? 'local' : 'fleet', leased: this.redis === undefined ? Math.floor(this.localTokens) : this.tokens, batch: this.batch }
  }

  dispose (): void {
    this.disposed = true
  }
}
