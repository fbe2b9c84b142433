/**
 * A route's view of the shared metrics with label children cached. prom-client
 * hashes the label set on every `inc({...})`; a child from `labels()` hashes
 * once, so the hot path only does a Map lookup.
 */
import type { Metrics, Outcome } from './metrics.js'
import { methodLabel, statusClass } from './metrics.js'
import type { ErrorClass } from '../proxy/errors.js'

interface Inc { inc: (value?: number) => void }
interface Observe { observe: (value: number) => void }

export class RouteMetrics {
  readonly metrics: Metrics
  readonly route: string
  private readonly requestChildren = new Map<string, Inc>()
  private readonly durationChildren = new Map<Outcome, Observe>()
  private readonly errorChildren = new Map<ErrorClass, Inc>()

  constructor (metrics: Metrics, route: string) {
    this.metrics = metrics
    this.route = route
  }

  /** One finished client request. */
  request (upstream: string, method: string, status: number, outcome: Outcome, seconds: number): void {
    const cls = statusClass(status)
    const m = methodLabel(method)
    const key = upstream + '\n' + m + '\n' + cls + '\n' + outcome
    let counter = this.requestChildren.get(key)
    if (counter === undefined) {
      counter = this.metrics.requests.labels(this.route, upstream, m, cls, outcome)
      this.requestChildren.set(key, counter)
    }
    counter.inc()
    let histogram = this.durationChildren.get(outcome)
    if (histogram === undefined) {
      histogram = this.metrics.requestDuration.labels(this.route, outcome)
      this.durationChildren.set(outcome, histogram)
    }
    histogram.observe(seconds)
  }

  /** One failed upstream attempt. */
  upstreamError (errorClass: ErrorClass): void {
    let counter = this.errorChildren.get(errorClass)
    if (counter === undefined) {
      counter = this.metrics.upstreamErrors.labels(this.route, errorClass)
      this.errorChildren.set(errorClass, counter)
    }
    counter.inc()
  }
}
