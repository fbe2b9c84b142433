/**
 * Retry budget (Finagle's RetryBudget, Envoy's retry_budget): over a
 * sliding window, retries may be at most `ratio` × requests plus a small
 * floor. When an upstream fails every request, it therefore sees at most
 * about (1 + ratio) × N attempts for N requests, however many attempts a
 * single request is allowed: no retry storm on top of an outage.
 */
import { SlidingWindow } from './window.js'

export interface RetryBudgetOptions {
  ratio: number
  windowMs: number
  minRetries: number
}

export class RetryBudget {
  private readonly options: RetryBudgetOptions
  private readonly window: SlidingWindow
  private readonly now: () => number

  constructor (options: RetryBudgetOptions, now: () => number = () => performance.now()) {
    this.options = options
    this.window = new SlidingWindow(options.windowMs)
    this.now = now
  }

  /** Counts one request (a deposit). */
  request (): void {
    this.window.add(this.now(), 1, 0)
  }

  /** Whether one more retry fits in the budget now; takes nothing (the retry decision reads it). */
  allows (): boolean {
    const [requests, retries] = this.window.sums(this.now())
    return retries + 1 <= this.options.ratio * requests + this.options.minRetries
  }

  /** Takes one retry from the budget (after allows() said yes). */
  spend (): void {
    this.window.add(this.now(), 0, 1)
  }

  /** Takes one retry from the budget; false when none is left. */
  tryRetry (): boolean {
    if (!this.allows()) return false
    this.spend()
    return true
  }

  snapshot (): { requests: number, retries: number, available: number } {
    const [requests, retries] = this.window.sums(this.now())
    return { requests, retries, available: Math.max(0, Math.floor(this.options.ratio * requests + this.options.minRetries - retries)) }
  }
}
