/**
 * A route's view of the shared metrics. Requests are counted as plain
 * numbers in the Metrics' pending slots (folded into prom-client on
 * collect); this route keeps its own index of those slots so the hot path
 * is one Map lookup and an increment. The histogram has no bulk API and
 * is observed directly, through cached children.
 */
import type { Metrics, Outcome, PendingRequests } from './metrics.js'
import { methodLabel, statusClass } from './metrics.js'
import type { ErrorClass } from '../core/errors.js'

interface Inc { inc: (value?: number) => void }
interface Observe { observe: (value: number) => void }

export class RouteMetrics {
  readonly metrics: Metrics
  readonly route: string
  private readonly requestSlots = new Map<string, PendingRequests>()
  private readonly durationChildren = new Map<Outcome, Observe>()
  private readonly errorChildren = new Map<string, Inc>()
  private readonly faultChildren = new Map<string, Inc>()

  constructor (metrics: Metrics, route: string) {
    this.metrics = metrics
    this.route = route
  }

  /** One finished client request; `injected` when an injected fault shaped its answer. */
  request (upstream: string, method: string, status: number, outcome: Outcome, seconds: number, injected = false): void {
    const cls = statusClass(status)
    const m = methodLabel(method)
    const key = upstream + '\n' + m + '\n' + cls + '\n' + outcome + (injected ? '\ntrue' : '\nfalse')
    let slot = this.requestSlots.get(key)
    if (slot === undefined) {
      const shared = this.route + '\n' + key
      slot = this.metrics.pendingRequests.get(shared)
      if (slot === undefined) {
        slot = { labels: { route: this.route, upstream, method: m, status_class: cls, outcome, injected: injected ? 'true' : 'false' }, count: 0 }
        this.metrics.pendingRequests.set(shared, slot)
      }
      this.requestSlots.set(key, slot)
    }
    slot.count++
    let histogram = this.durationChildren.get(outcome)
    if (histogram === undefined) {
      histogram = this.metrics.requestDuration.labels(this.route, outcome)
      this.durationChildren.set(outcome, histogram)
    }
    histogram.observe(seconds)
  }

  /** A request body over the route's limit, refused with 413 (docs/SECURITY.md). */
  bodyTooLarge (): void {
    this.metrics.edgeRejections.labels('body_too_large').inc()
  }

  /** A request body sent in a flood of tiny pieces, refused with 400 (docs/SECURITY.md). */
  bodyFragmented (): void {
    this.metrics.edgeRejections.labels('body_fragmented').inc()
  }

  /** A response cut because its client did not read it for bodyIdleTimeoutMs. */
  slowReader (): void {
    this.metrics.edgeRejections.labels('slow_reader').inc()
  }

  /**
   * A fault acted on a request (faultline_faults_injected_total); `by` 0
   * binds the series so dashboards show it at 0 before the first injection
   * (prom-client creates a series on its first inc).
   */
  faultInjected (label: string, by = 1): void {
    let counter = this.faultChildren.get(label)
    if (counter === undefined) {
      counter = this.metrics.faultsInjected.labels(this.route, label)
      this.faultChildren.set(label, counter)
    }
    counter.inc(by)
  }

  /** A fault with `until` or `ttl` reached its end and was removed. */
  faultExpired (label: string): void {
    this.metrics.faultsExpired.labels(this.route, label).inc()
  }

  /** One failed upstream attempt; `injected` when a fault made the failure, not the upstream. */
  upstreamError (errorClass: ErrorClass, injected = false): void {
    const key = injected ? errorClass + '|true' : errorClass
    let counter = this.errorChildren.get(key)
    if (counter === undefined) {
      counter = this.metrics.upstreamErrors.labels(this.route, errorClass, injected ? 'true' : 'false')
      this.errorChildren.set(key, counter)
    }
    counter.inc()
  }
}
