/**
 * A route's view of the shared metrics. prom-client builds a string key
 * from the label values and validates the labels on every inc() and
 * observe(), child or not: about 2 us each in the proxy under load. So the
 * per-request counter is kept here as plain numbers, one slot per label
 * set, and folded into prom-client when it collects the counter (a scrape
 * or any get()). The histogram has no bulk API and is observed directly.
 */
import type { Metrics, Outcome } from './metrics.js'
import { methodLabel, statusClass } from './metrics.js'
import type { ErrorClass } from '../proxy/errors.js'

interface Inc { inc: (value?: number) => void }
interface Observe { observe: (value: number) => void }

/** Requests of one label set counted since the last fold. */
interface Pending {
  readonly labels: Record<'route' | 'upstream' | 'method' | 'status_class' | 'outcome', string>
  count: number
}

/**
 * The pending slots of one Metrics instance, by label set. Shared by every
 * RouteMetrics on it, across config generations, so reloads neither lose
 * counts nor grow this past the label sets that exist.
 */
const pendingByMetrics = new WeakMap<Metrics, Map<string, Pending>>()

function pendingFor (metrics: Metrics): Map<string, Pending> {
  let pending = pendingByMetrics.get(metrics)
  if (pending === undefined) {
    const slots = new Map<string, Pending>()
    pending = slots
    pendingByMetrics.set(metrics, slots)
    // prom-client calls a metric's collect() right before reading it.
    const counter = metrics.requests as unknown as { collect?: () => unknown, inc: (labels: Pending['labels'], value: number) => void }
    const own = counter.collect
    counter.collect = function (this: unknown) {
      for (const slot of slots.values()) {
        if (slot.count > 0) {
          counter.inc(slot.labels, slot.count)
          slot.count = 0
        }
      }
      return own?.call(this)
    }
  }
  return pending
}

export class RouteMetrics {
  readonly metrics: Metrics
  readonly route: string
  private readonly pending: Map<string, Pending>
  private readonly requestSlots = new Map<string, Pending>()
  private readonly durationChildren = new Map<Outcome, Observe>()
  private readonly errorChildren = new Map<ErrorClass, Inc>()

  constructor (metrics: Metrics, route: string) {
    this.metrics = metrics
    this.route = route
    this.pending = pendingFor(metrics)
  }

  /** One finished client request. */
  request (upstream: string, method: string, status: number, outcome: Outcome, seconds: number): void {
    const cls = statusClass(status)
    const m = methodLabel(method)
    const key = upstream + '\n' + m + '\n' + cls + '\n' + outcome
    let slot = this.requestSlots.get(key)
    if (slot === undefined) {
      const shared = this.route + '\n' + key
      slot = this.pending.get(shared)
      if (slot === undefined) {
        slot = { labels: { route: this.route, upstream, method: m, status_class: cls, outcome }, count: 0 }
        this.pending.set(shared, slot)
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

  /** One failed upstream attempt (rare enough to count directly). */
  upstreamError (errorClass: ErrorClass): void {
    let counter = this.errorChildren.get(errorClass)
    if (counter === undefined) {
      counter = this.metrics.upstreamErrors.labels(this.route, errorClass)
      this.errorChildren.set(errorClass, counter)
    }
    counter.inc()
  }
}
