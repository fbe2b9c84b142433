/**
 * The seam between policies and whoever watches them (metrics today,
 * alerts or logs later). Policies call these; they never touch prom-client.
 * src/metrics/policy-metrics.ts is the metrics implementation.
 */
import type { ErrorClass } from '../core/errors.js'

export const BREAKER_STATES = ['closed', 'open', 'half_open', 'forced_open', 'forced_closed'] as const
export type BreakerStateName = (typeof BREAKER_STATES)[number]

export type CacheLookup = 'hit' | 'stale' | 'miss'

export interface PolicyEvents {
  /** A retry is about to be made after a failure of this class. */
  retry: (errorClass: ErrorClass) => void
  /** A retry was wanted but the route's retry budget had none left. */
  retryBudgetExhausted: () => void
  /** `by`: the replica whose breaker decided it, for a transition taken from the fleet (breaker.fleet). */
  breakerTransition: (from: BreakerStateName, to: BreakerStateName, by?: string) => void
  /** The auth guard started holding requests back. */
  authGuardTripped: () => void
  bulkheadChanged: (inFlight: number, queued: number) => void
  cacheLookup: (result: CacheLookup) => void
  cacheStored: () => void
}

/** For code paths that want no events (unit tests, the admin API). */
export const NO_EVENTS: PolicyEvents = {
  retry () {},
  retryBudgetExhausted () {},
  breakerTransition () {},
  authGuardTripped () {},
  bulkheadChanged () {},
  cacheLookup () {},
  cacheStored () {}
}
