/**
 * What the failure-pattern report (GET /report) is built from: per route
 * and upstream, counts in one-minute slots of a fixed ring (the last hour),
 * written once per finished request by src/proxy/respond.ts. Recording is
 * a handful of integer increments into preallocated slots; the worst
 * endpoints are tracked only for failed requests, in bounded memory.
 */
import { ERROR_CLASSES, type ErrorClass } from '../core/errors.js'
import type { Outcome } from '../metrics/metrics.js'
import type { FallbackKind } from '../core/context.js'
import { TopFailures } from './endpoints.js'

export const SLOT_MS = 60_000
export const SLOTS = 60

type ClassCounts = Record<ErrorClass, number>
const zeroClasses = (): ClassCounts => Object.fromEntries(ERROR_CLASSES.map((c) => [c, 0])) as ClassCounts

/** One minute of one route's traffic to one upstream. */
export class Slot {
  minute = -1
  requests = 0
  /** The client got a 5xx or no answer. */
  failed = 0
  /** Requests that saw at least one failed attempt, by the class of the last one. */
  errorClasses = zeroClasses()
  fallbacks: Record<FallbackKind, number> = { cache: 0, alternate: 0, static: 0, defer: 0 }
  shortCircuited = 0
  rejectedBulkhead = 0
  /** Retries made, by the class of the failure before them. */
  retries = zeroClasses()
  /** Requests whose retries ended in a success, by that class. */
  retriesSucceeded = zeroClasses()
  /** One sample failure (the most recent), for context in alerts. */
  sample: { status: number, errorClass: ErrorClass | undefined, path: string } | undefined = undefined
  /**
   * Requests an injected fault shaped, kept apart: every field above counts
   * real traffic only, so the report, its suggestions and the error-rate
   * alert judge the upstream on real failures (docs/POLICIES.md, containment).
   */
  injected = { requests: 0, failed: 0, shortCircuited: 0, fallbacks: 0 }

  reset (minute: number): void {
    this.minute = minute
    this.requests = 0
    this.failed = 0
    this.errorClasses = zeroClasses()
    this.fallbacks = { cache: 0, alternate: 0, static: 0, defer: 0 }
    this.shortCircuited = 0
    this.rejectedBulkhead = 0
    this.retries = zeroClasses()
    this.retriesSucceeded = zeroClasses()
    this.sample = undefined
    this.injected = { requests: 0, failed: 0, shortCircuited: 0, fallbacks: 0 }
  }
}

/** What a finished request tells the report: the request's own context satisfies it, so nothing is copied. */
export interface FinishedRequest {
  upstream: string
  method: string
  /** The client's request URL (path and query); normalised before it is kept. */
  req: { url?: string | undefined }
  outcome: Outcome
  attempts: number
  errorClass: ErrorClass | undefined
  fallback: FallbackKind | undefined
  /** An injected fault shaped the answer. */
  injected?: boolean
}

export function isFailure (status: number, outcome: Outcome): boolean {
  return status >= 500 || status === 0 || outcome === 'failed'
}

export class UpstreamRecord {
  readonly slots: Slot[] = Array.from({ length: SLOTS }, () => new Slot())

  slot (now: number): Slot {
    const minute = Math.floor(now / SLOT_MS)
    const s = this.slots[minute % SLOTS]!
    if (s.minute !== minute) s.reset(minute)
    return s
  }

  /** Slots within the last `ms` (the current, partial minute included). */
  recent (now: number, ms: number): Slot[] {
    const minute = Math.floor(now / SLOT_MS)
    const oldest = minute - Math.ceil(ms / SLOT_MS) + 1
    return this.slots.filter((s) => s.minute >= oldest && s.minute <= minute)
  }
}

/** One route's record, across reloads while the route keeps its name. */
export class RouteRecord {
  readonly upstreams = new Map<string, UpstreamRecord>()
  readonly worst = new TopFailures(64)
  /** What the route's config allows, for the suggestions (updated on reload). */
  retryConfigured = false

  /** `status` is what the client got: 0 when no status line went out. */
  record (r: FinishedRequest, status: number, now = Date.now()): void {
    let up = this.upstreams.get(r.upstream)
    if (up === undefined) {
      // Upstream labels come from config (primary and alternates): bounded.
      up = new UpstreamRecord()
      this.upstreams.set(r.upstream, up)
    }
    const s = up.slot(now)
    if (r.injected === true) {
      const i = s.injected
      i.requests++
      if (isFailure(status, r.outcome)) i.failed++
      if (r.outcome === 'short_circuited') i.shortCircuited++
      if (r.fallback !== undefined) i.fallbacks++
      return
    }
    s.requests++
    if (r.errorClass !== undefined) s.errorClasses[r.errorClass]++
    if (r.fallback !== undefined) s.fallbacks[r.fallback]++
    if (r.outcome === 'short_circuited') s.shortCircuited++
    else if (r.outcome === 'rejected_bulkhead') s.rejectedBulkhead++
    if (r.attempts > 1 && r.errorClass !== undefined) {
      s.retries[r.errorClass] += r.attempts - 1
      if (r.outcome === 'retried_ok') s.retriesSucceeded[r.errorClass]++
    }
    if (isFailure(status, r.outcome)) {
      s.failed++
      const url = r.req.url ?? '/'
      const q = url.indexOf('?')
      s.sample = { status, errorClass: r.errorClass, path: (q === -1 ? url : url.slice(0, q)).slice(0, 256) }
      this.worst.record(r.method, url, r.errorClass)
    }
  }
}

/** All routes' records. Routes that leave the config are dropped on the next retain(). */
export class FailureRecorder {
  private readonly routes = new Map<string, RouteRecord>()

  forRoute (name: string): RouteRecord {
    let r = this.routes.get(name)
    if (r === undefined) { r = new RouteRecord(); this.routes.set(name, r) }
    return r
  }

  retain (names: Iterable<string>): void {
    const keep = new Set(names)
    for (const name of this.routes.keys()) if (!keep.has(name)) this.routes.delete(name)
  }

  entries (): IterableIterator<[string, RouteRecord]> { return this.routes.entries() }
}
