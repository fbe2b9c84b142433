/**
 * PolicyEvents wired to prom-client, per route, with label children bound
 * once (as in route-metrics.ts). Only the metrics of the policies a route
 * has are created and zeroed, so dashboards show 0 rather than nothing.
 */
import type { Metrics } from './metrics.js'
import type { ErrorClass } from '../core/errors.js'
import { BREAKER_STATES, type BreakerStateName, type CacheLookup, type PolicyEvents } from '../policies/events.js'

interface Inc { inc: (value?: number) => void }
interface Set { set: (value: number) => void }

export interface PolicyMetricsFor { retry: boolean, breaker: boolean, authGuard: boolean, bulkhead: boolean, cache: boolean }

export class PolicyMetrics implements PolicyEvents {
  private readonly metrics: Metrics
  private readonly route: string
  private readonly upstream: string
  private readonly retryChildren = new Map<ErrorClass, Inc>()
  private readonly transitionChildren = new Map<string, Inc>()
  private readonly stateChildren = new Map<BreakerStateName, Set>()
  private readonly budget: Inc
  private readonly authTrips: Inc
  /** This route's entry in Metrics.bulkheadLevels (copied into the gauges on collect). */
  private readonly bulkhead = { inFlight: 0, queued: 0 }
  private readonly lookups: Record<CacheLookup, Inc>
  private readonly stores: Inc

  constructor (metrics: Metrics, route: string, upstream: string, used: PolicyMetricsFor) {
    this.metrics = metrics
    this.route = route
    this.upstream = upstream
    this.budget = metrics.retryBudgetExhausted.labels(route)
    this.authTrips = metrics.authGuardTrips.labels(route, upstream)
    this.lookups = {
      hit: metrics.cacheLookups.labels(route, 'hit'),
      stale: metrics.cacheLookups.labels(route, 'stale'),
      miss: metrics.cacheLookups.labels(route, 'miss')
    }
    this.stores = metrics.cacheStores.labels(route)
    if (used.retry) this.budget.inc(0)
    if (used.authGuard) this.authTrips.inc(0)
    if (used.bulkhead) metrics.bulkheadLevels.set(route, this.bulkhead)
    if (used.cache) { for (const c of Object.values(this.lookups)) c.inc(0); this.stores.inc(0) }
    if (used.breaker) for (const s of BREAKER_STATES) this.stateChildren.set(s, metrics.breakerState.labels(route, upstream, s))
  }

  retry (errorClass: ErrorClass): void {
    let c = this.retryChildren.get(errorClass)
    if (c === undefined) {
      c = this.metrics.retries.labels(this.route, errorClass)
      this.retryChildren.set(errorClass, c)
    }
    c.inc()
  }

  retryBudgetExhausted (): void { this.budget.inc() }

  /** Also called with from === to when a route first attaches to a breaker, to publish its state. */
  breakerTransition (from: BreakerStateName, to: BreakerStateName): void {
    for (const [state, gauge] of this.stateChildren) gauge.set(state === to ? 1 : 0)
    if (from === to) return
    const key = from + '>' + to
    let c = this.transitionChildren.get(key)
    if (c === undefined) {
      c = this.metrics.breakerTransitions.labels(this.route, this.upstream, from, to)
      this.transitionChildren.set(key, c)
    }
    c.inc()
  }

  authGuardTripped (): void { this.authTrips.inc() }

  bulkheadChanged (inFlight: number, queued: number): void {
    this.bulkhead.inFlight = inFlight
    this.bulkhead.queued = queued
  }

  cacheLookup (result: CacheLookup): void { this.lookups[result].inc() }

  cacheStored (): void { this.stores.inc() }
}
