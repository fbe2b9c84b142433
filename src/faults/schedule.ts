/**
 * Fault schedules: "fail the first N, then succeed", every Nth, only after
 * N, inside a time window, until a time. A schedule is a gate in the
 * envelope, beside the matchers and the probability: the matchers say
 * which exchanges count, the schedule counts them and says which may get
 * the fault, and the probability rolls for those. Nothing here knows a
 * fault kind.
 *
 * Counting is synchronous inside the route's one choice per exchange, so
 * counts are exact under any concurrency (one event loop, no await between
 * the count and the verdict).
 */
import { createHash } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { z } from 'zod'
import { duration } from '../config/units.js'
import type { RequestContext } from '../core/context.js'

import { systemClock, type Clock } from '../core/clock.js'

export { systemClock, type Clock }

/** Milliseconds, as every time in the fault config. */
const ms = z.number().int().min(0)

export const SCHEDULE_PER = ['attempt', 'request'] as const

/** What a count is kept per: the route, each request, the client's path, or a request header's value. */
export const scheduleKeySchema = z.union([
  z.enum(['route', 'request', 'path']),
  z.strictObject({ header: z.string().min(1).max(128) })
])
export type ScheduleKey = z.infer<typeof scheduleKeySchema>

export const scheduleWindowSchema = z.strictObject({
  /** The window opens this long after the fault was armed (added, loaded, replaced or reset). */
  startAfter: duration(ms.optional()),
  /** ... and stays open this long; open-ended when absent. */
  duration: duration(ms.min(1).optional())
})

export const DEFAULT_MAX_KEYS = 10_000

/** The envelope keys a schedule reads (spread into the shared fault envelope in fault.ts). */
export const scheduleEnvelope = {
  /** Only the first N counted exchanges (after `after`) may get the fault, until reset or reload. */
  first: z.number().int().min(1).optional(),
  /** Only every Nth counted exchange (the Nth, 2Nth, ... after `after`). */
  every: z.number().int().min(1).optional(),
  /** Only after N counted exchanges. */
  after: z.number().int().min(0).optional(),
  /** What one count is: each upstream attempt (default), or each request (its retries share its verdict). */
  per: z.enum(SCHEDULE_PER).optional(),
  /** What counts are kept per (default `route`). */
  key: scheduleKeySchema.optional(),
  /** Keys remembered for `key: path` or `key: {header}`; the least recently seen is forgotten beyond this. */
  maxKeys: z.number().int().min(1).max(1_000_000).optional(),
  window: scheduleWindowSchema.optional(),
  /** An absolute end (ISO 8601 with a zone); the fault is removed then. */
  until: z.iso.datetime({ offset: true }).optional(),
  /** Milliseconds after the fault was armed at which it is removed. */
  ttl: duration(ms.min(1).optional())
}

export interface ScheduleConfig {
  first?: number | undefined
  every?: number | undefined
  after?: number | undefined
  per?: (typeof SCHEDULE_PER)[number] | undefined
  key?: ScheduleKey | undefined
  maxKeys?: number | undefined
  window?: z.infer<typeof scheduleWindowSchema> | undefined
  until?: string | undefined
  ttl?: number | undefined
}

/** True when the config asks for any schedule at all (else the fault has none and costs nothing). */
export function isScheduled (config: ScheduleConfig): boolean {
  return config.first !== undefined || config.every !== undefined || config.after !== undefined ||
    config.window !== undefined || config.until !== undefined || config.ttl !== undefined
}

/** Longer keys are hashed, so `maxKeys` bounds memory whatever a client sends. */
const MAX_KEY_LENGTH = 128

/** What GET /chaos shows of a schedule: what has been counted and what remains. */
export interface ScheduleState {
  per: 'attempt' | 'request'
  key: ScheduleKey
  /** Counted exchanges (key `route`). */
  counted?: number
  /** Exchanges the schedule let through to the probability roll so far (all keys). */
  admitted: number
  /** Of `first`: how many may still get the fault (key `route`). */
  remaining?: number
  /** The count at which `every` (or `after`) next lets one through (key `route`). */
  nextAt?: number
  /** Keys remembered and forgotten (least recently seen first), for keyed counts. */
  keys?: { kept: number, max: number, forgotten: number }
  window?: { open: boolean, opensInMs: number, closesInMs: number | null }
  /** When the fault will be removed (`until` or `ttl`), ISO, and how long that is from now. */
  expiresAt?: string
  expiresInMs?: number
}

export class Schedule {
  private readonly config: ScheduleConfig
  private readonly clock: Clock
  private readonly per: 'attempt' | 'request'
  private readonly key: ScheduleKey
  private readonly maxKeys: number
  private readonly counted: boolean
  private readonly timed: boolean
  private readonly until: number | undefined
  private armedAt = 0
  private count = 0
  private admitted = 0
  private forgotten = 0
  private keyed: LRUCache<string, { n: number }> | undefined
  /** Counts per request (`key: request`); a request that ends takes its count with it. */
  private perRequest = new WeakMap<RequestContext, number>()
  /** A request's verdict (`per: request`): its retries get what its first attempt got. */
  private verdicts = new WeakMap<RequestContext, boolean>()

  constructor (config: ScheduleConfig, clock: Clock) {
    this.config = config
    this.clock = clock
    this.per = config.per ?? 'attempt'
    this.key = config.key ?? 'route'
    this.maxKeys = config.maxKeys ?? DEFAULT_MAX_KEYS
    this.counted = config.first !== undefined || config.every !== undefined || config.after !== undefined
    this.until = config.until === undefined ? undefined : Date.parse(config.until)
    this.timed = config.window !== undefined || this.until !== undefined || config.ttl !== undefined
    this.reset()
  }

  /** Restarts the counts and the window (and the ttl) from now. */
  reset (): void {
    this.armedAt = this.clock()
    this.count = 0
    this.admitted = 0
    this.forgotten = 0
    this.perRequest = new WeakMap()
    this.verdicts = new WeakMap()
    this.keyed = typeof this.key === 'object' || this.key === 'path'
      ? new LRUCache({ max: this.maxKeys, disposeAfter: (_v, _k, reason) => { if (reason === 'evict') this.forgotten++ } })
      : undefined
  }

  /** When the fault is to be removed (epoch ms), or undefined if never. */
  get expiresAt (): number | undefined {
    const ttl = this.config.ttl === undefined ? undefined : this.armedAt + this.config.ttl
    if (ttl === undefined) return this.until
    return this.until === undefined ? ttl : Math.min(ttl, this.until)
  }

  /**
   * Counts this exchange and says whether it may get the fault. Called
   * only for exchanges the matchers accepted, while chaos is on. Outside
   * its window (or after expiry) an exchange is neither let through nor
   * counted.
   */
  admits (ctx: RequestContext): boolean {
    if (this.timed && !this.open(this.clock())) return false
    if (!this.counted) {
      this.admitted++
      return true
    }
    if (this.per === 'request') {
      const verdict = this.verdicts.get(ctx)
      if (verdict !== undefined) return verdict
    }
    const n = this.tick(ctx)
    const ok = n !== undefined && this.eligible(n)
    if (this.per === 'request') this.verdicts.set(ctx, ok)
    if (ok) this.admitted++
    return ok
  }

  private open (now: number): boolean {
    const expires = this.expiresAt
    if (expires !== undefined && now >= expires) return false
    const w = this.config.window
    if (w === undefined) return true
    const opens = this.armedAt + (w.startAfter ?? 0)
    return now >= opens && (w.duration === undefined || now < opens + w.duration)
  }

  /** Advances the count for this exchange's key; undefined when the exchange has no key (a missing header). */
  private tick (ctx: RequestContext): number | undefined {
    const key = this.key
    if (key === 'route') return ++this.count
    if (key === 'request') {
      const n = (this.perRequest.get(ctx) ?? 0) + 1
      this.perRequest.set(ctx, n)
      return n
    }
    let value: string | undefined
    if (key === 'path') {
      const url = ctx.req.url ?? '/'
      const q = url.indexOf('?')
      value = q === -1 ? url : url.slice(0, q)
    } else {
      const raw = ctx.req.headers[key.header.toLowerCase()]
      value = Array.isArray(raw) ? raw.join(', ') : raw
      if (value === undefined) return undefined
    }
    if (value.length > MAX_KEY_LENGTH) value = createHash('sha256').update(value).digest('base64')
    const entry = this.keyed!.get(value)
    if (entry !== undefined) return ++entry.n
    this.keyed!.set(value, { n: 1 })
    return 1
  }

  private eligible (n: number): boolean {
    const m = n - (this.config.after ?? 0)
    if (m < 1) return false
    const { first, every } = this.config
    return (first === undefined || m <= first) && (every === undefined || m % every === 0)
  }

  state (): ScheduleState {
    const { first, after = 0, window } = this.config
    const state: ScheduleState = { per: this.per, key: this.key, admitted: this.admitted }
    if (this.counted && this.key === 'route') {
      state.counted = this.count
      // Counts before `after` use none of `first`.
      if (first !== undefined) state.remaining = Math.max(0, Math.min(first, after + first - this.count))
      const next = this.nextEligible(this.count + 1)
      if (next !== undefined) state.nextAt = next
    }
    if (this.keyed !== undefined) state.keys = { kept: this.keyed.size, max: this.maxKeys, forgotten: this.forgotten }
    const now = this.clock()
    if (window !== undefined) {
      const opens = this.armedAt + (window.startAfter ?? 0)
      const closes = window.duration === undefined ? undefined : opens + window.duration
      state.window = {
        open: this.open(now),
        opensInMs: Math.max(0, opens - now),
        closesInMs: closes === undefined ? null : Math.max(0, closes - now)
      }
    }
    const expires = this.expiresAt
    if (expires !== undefined) {
      state.expiresAt = new Date(expires).toISOString()
      state.expiresInMs = Math.max(0, expires - now)
    }
    return state
  }

  /** The first count from `n` on that is eligible, or undefined when none will be. */
  private nextEligible (n: number): number | undefined {
    const { first, every, after = 0 } = this.config
    let m = Math.max(1, n - after)
    if (every !== undefined) m = Math.ceil(m / every) * every
    if (first !== undefined && m > first) return undefined
    return m + after
  }
}
