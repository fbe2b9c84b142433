/**
 * When a closed breaker should open, behind one small interface
 * (cockatiel's IBreaker): the breaker's state machine does not care how
 * the decision is made, and each mode is a few lines.
 */
import { SlidingWindow } from './window.js'
import type { BreakerConfig } from './schema.js'

/** What GET /routes shows of the decision: consecutive failures, or the failure rate over the window. */
export type BreakerDecisionSnapshot =
  | { mode: 'consecutive', failuresInARow: number, threshold: number }
  | { mode: 'rate', calls: number, failures: number, failureRate: number, minRequests: number }

export interface BreakerDecision {
  /** A call succeeded while closed. */
  success: (now: number) => void
  /** A call failed while closed; true when the breaker should open. */
  failure: (now: number) => boolean
  /** Forget the history (on closing). */
  reset: () => void
  snapshot: (now: number) => BreakerDecisionSnapshot
  /** Why failure() said open, in words, for the log line (read at once, before reset). */
  why: (now: number) => string
}

/** Opens after `threshold` failures in a row. */
export class ConsecutiveFailures implements BreakerDecision {
  private count = 0
  constructor (private readonly threshold: number) {}
  success (): void { this.count = 0 }
  failure (): boolean { return ++this.count >= this.threshold }
  reset (): void { this.count = 0 }
  snapshot (): BreakerDecisionSnapshot { return { mode: 'consecutive', failuresInARow: this.count, threshold: this.threshold } }
  why (): string { return `${this.count} failures in a row (consecutiveFailures ${this.threshold})` }
}

/** Opens when at least `rate` of the calls over the window failed, once there were `minRequests` calls. */
export class FailureRate implements BreakerDecision {
  private readonly window: SlidingWindow
  constructor (private readonly rate: number, private readonly windowMs: number, private readonly minRequests: number) {
    this.window = new SlidingWindow(windowMs)
  }

  why (now: number): string {
    const [calls, failures] = this.window.sums(now)
    return `${failures} of ${calls} calls failed in ${this.windowMs} ms (failureRate ${this.rate}, minRequests ${this.minRequests})`
  }

  success (now: number): void { this.window.add(now, 1, 0) }

  failure (now: number): boolean {
    this.window.add(now, 1, 1)
    const [calls, failures] = this.window.sums(now)
    return calls >= this.minRequests && failures / calls >= this.rate
  }

  reset (): void { this.window.clear() }

  snapshot (now: number): BreakerDecisionSnapshot {
    const [calls, failures] = this.window.sums(now)
    return { mode: 'rate', calls, failures, failureRate: this.rate, minRequests: this.minRequests }
  }
}

export function decisionFor (config: BreakerConfig): BreakerDecision {
  return config.failureRate !== undefined
    ? new FailureRate(config.failureRate, config.windowMs, config.minRequests)
    : new ConsecutiveFailures(config.consecutiveFailures ?? 5)
}
