/**
 * The failure-pattern report: the recorder's slots summed over recent
 * windows, per route and upstream, and suggestions drawn from them. Built
 * on demand (GET /report, the status page, alert context), never on the
 * request path.
 */
import { ERROR_CLASSES, type ErrorClass } from '../core/errors.js'
import type { FallbackKind } from '../core/context.js'
import type { FailureRecorder, RouteRecord, Slot, UpstreamRecord } from './recorder.js'
import type { WorstEndpoint } from './endpoints.js'

export const WINDOWS = { '5m': 5 * 60_000, '1h': 60 * 60_000 } as const
export type WindowName = keyof typeof WINDOWS

export interface RetryStats { made: number, succeeded: number, successRate: number | null }

export interface WindowSummary {
  requests: number
  failed: number
  errorRate: number | null
  errorClasses: Partial<Record<ErrorClass, number>>
  fallbacks: Partial<Record<FallbackKind, number>>
  fallbackRate: number | null
  shortCircuited: number
  rejectedBulkhead: number
  retries: RetryStats & { byClass: Partial<Record<ErrorClass, RetryStats>> }
  sampleError: { status: number, errorClass: ErrorClass | undefined, path: string } | undefined
  /** Requests an injected fault shaped: not in any figure above (those are real traffic only). */
  injected: { requests: number, failed: number, shortCircuited: number, fallbacks: number }
}

export interface RouteReport {
  route: string
  upstreams: Array<{ upstream: string, windows: Record<WindowName, WindowSummary> }>
  worstEndpoints: WorstEndpoint[]
  suggestions: string[]
}

export interface Report { generatedAt: string, windows: WindowName[], routes: RouteReport[] }

const ratio = (a: number, b: number): number | null => b === 0 ? null : a / b
const pct = (x: number): string => `${Math.round(x * 100)}%`

function nonZero<K extends string> (counts: Record<K, number>): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {}
  for (const [k, v] of Object.entries(counts) as Array<[K, number]>) if (v > 0) out[k] = v
  return out
}

export function summarise (slots: Slot[]): WindowSummary {
  const classes = Object.fromEntries(ERROR_CLASSES.map((c) => [c, 0])) as Record<ErrorClass, number>
  const retries = { ...classes }
  const succeeded = { ...classes }
  const fallbacks: Record<FallbackKind, number> = { cache: 0, alternate: 0, static: 0, defer: 0 }
  let requests = 0; let failed = 0; let shortCircuited = 0; let rejectedBulkhead = 0
  let sample: WindowSummary['sampleError']
  let sampleMinute = -1
  const injected = { requests: 0, failed: 0, shortCircuited: 0, fallbacks: 0 }
  for (const s of slots) {
    injected.requests += s.injected.requests
    injected.failed += s.injected.failed
    injected.shortCircuited += s.injected.shortCircuited
    injected.fallbacks += s.injected.fallbacks
    requests += s.requests
    failed += s.failed
    shortCircuited += s.shortCircuited
    rejectedBulkhead += s.rejectedBulkhead
    for (const c of ERROR_CLASSES) {
      classes[c] += s.errorClasses[c]
      retries[c] += s.retries[c]
      succeeded[c] += s.retriesSucceeded[c]
    }
    for (const k of Object.keys(fallbacks) as FallbackKind[]) fallbacks[k] += s.fallbacks[k]
    if (s.sample !== undefined && s.minute > sampleMinute) { sample = s.sample; sampleMinute = s.minute }
  }
  const byClass: Partial<Record<ErrorClass, RetryStats>> = {}
  let made = 0; let ok = 0
  for (const c of ERROR_CLASSES) {
    made += retries[c]; ok += succeeded[c]
    if (retries[c] > 0) byClass[c] = { made: retries[c], succeeded: succeeded[c], successRate: ratio(succeeded[c], retries[c]) }
  }
  const fallbackTotal = fallbacks.cache + fallbacks.alternate + fallbacks.static + fallbacks.defer
  return {
    requests,
    failed,
    errorRate: ratio(failed, requests),
    errorClasses: nonZero(classes),
    fallbacks: nonZero(fallbacks),
    fallbackRate: ratio(fallbackTotal, requests),
    shortCircuited,
    rejectedBulkhead,
    retries: { made, succeeded: ok, successRate: ratio(ok, made), byClass },
    sampleError: sample,
    injected
  }
}

/** Minimum evidence before a suggestion is made: a few requests prove nothing. */
const MIN_RETRIES = 20
const MIN_REQUESTS = 50

/** Rules of thumb drawn from the last hour of one route. Each names its numbers so it can be checked. */
export function suggest (route: string, record: RouteRecord, hour: WindowSummary, worst: WorstEndpoint[]): string[] {
  const out: string[] = []
  for (const [cls, r] of Object.entries(hour.retries.byClass) as Array<[ErrorClass, RetryStats]>) {
    if (r.made < MIN_RETRIES || r.successRate === null) continue
    if (r.successRate < 0.1) {
      out.push(`Route ${route}: retries after ${cls} failures succeed ${pct(r.successRate)} of the time (${r.succeeded} of ${r.made}) — fewer attempts would do, or drop ${cls} from retry.on.`)
    } else if (r.successRate > 0.5) {
      out.push(`Route ${route}: retries after ${cls} failures succeed ${pct(r.successRate)} of the time (${r.succeeded} of ${r.made}) — retry is earning its keep here.`)
    }
  }
  if (hour.requests >= MIN_REQUESTS) {
    const transient = (hour.errorClasses.connect ?? 0) + (hour.errorClasses.reset ?? 0) + (hour.errorClasses.http_5xx ?? 0) + (hour.errorClasses.timeout ?? 0)
    if (!record.retryConfigured && transient / hour.requests > 0.01) {
      out.push(`Route ${route}: ${pct(transient / hour.requests)} of requests met a transient failure (connect, reset, timeout, 5xx) and the route has no retry — resilience.retry with a budget would absorb some.`)
    }
    const failures = Object.values(hour.errorClasses).reduce((a, b) => a + b, 0)
    const timeouts = hour.errorClasses.timeout ?? 0
    if (failures >= 10 && timeouts / failures > 0.5) {
      out.push(`Route ${route}: ${pct(timeouts / failures)} of failures are timeouts — compare attemptTimeoutMs and timeoutMs with the upstream's p99 latency.`)
    }
    if ((hour.errorClasses.auth ?? 0) > 0) {
      out.push(`Route ${route}: ${hour.errorClasses.auth} requests were refused with 401/403 — check the credentials the service sends; retries cannot fix these.`)
    }
    if (hour.fallbackRate !== null && hour.fallbackRate > 0.2) {
      out.push(`Route ${route}: ${pct(hour.fallbackRate)} of requests were answered by a fallback — clients are getting degraded answers; the upstream needs attention.`)
    }
    if (hour.shortCircuited / hour.requests > 0.1) {
      out.push(`Route ${route}: ${pct(hour.shortCircuited / hour.requests)} of requests were short-circuited by an open breaker — the upstream was down for a good part of the hour.`)
    }
  }
  if (hour.injected.requests > 0) {
    out.push(`Route ${route}: ${hour.injected.requests} requests carried injected faults (${hour.injected.failed} failed) — a chaos experiment, left out of every figure and suggestion above, which judge the upstream on real traffic only.`)
  }
  const top = worst[0]
  if (top !== undefined && hour.failed >= 10 && top.failures / hour.failed > 0.5) {
    out.push(`Route ${route}: ${top.method} ${top.path} accounts for ${pct(top.failures / hour.failed)} of failures — start there.`)
  }
  return out
}

function windows (up: UpstreamRecord, now: number): Record<WindowName, WindowSummary> {
  const out = {} as Record<WindowName, WindowSummary>
  for (const [name, ms] of Object.entries(WINDOWS) as Array<[WindowName, number]>) out[name] = summarise(up.recent(now, ms))
  return out
}

export function buildReport (recorder: FailureRecorder, routes: string[], options: { now?: number, worst?: number } = {}): Report {
  const now = options.now ?? Date.now()
  const out: RouteReport[] = []
  for (const name of routes) {
    const record = recorder.forRoute(name)
    const upstreams = [...record.upstreams.entries()].map(([upstream, up]) => ({ upstream, windows: windows(up, now) }))
    const hour = summarise([...record.upstreams.values()].flatMap((up) => up.recent(now, WINDOWS['1h'])))
    const worst = record.worst.top(options.worst ?? 10)
    out.push({ route: name, upstreams, worstEndpoints: worst, suggestions: suggest(name, record, hour, worst) })
  }
  return { generatedAt: new Date(now).toISOString(), windows: Object.keys(WINDOWS) as WindowName[], routes: out }
}
