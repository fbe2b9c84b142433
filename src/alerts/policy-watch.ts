/**
 * Policy events that raise alerts: a PolicyEvents that passes every event
 * on (to the metrics) and also tells the notifier when a breaker opens or
 * the auth guard trips. emit() is synchronous and cheap (see notifier.ts).
 */
import type { PolicyEvents } from '../policies/events.js'
import type { AlertNotifier } from './notifier.js'

export function alertingEvents (inner: PolicyEvents, notifier: AlertNotifier, route: string, upstream: string): PolicyEvents {
  return {
    retry: (errorClass) => { inner.retry(errorClass) },
    retryBudgetExhausted: () => { inner.retryBudgetExhausted() },
    breakerTransition: (from, to, by) => {
      inner.breakerTransition(from, to, by)
      // Not forced_open: that is an operator's own action, already audited. Not an opening taken from the
      // fleet either: the replica whose counts opened it alerts, once for the fleet, not once per replica.
      if (to === 'open' && from !== 'open' && by === undefined) notifier.emit({ type: 'breaker_opened', route, upstream, details: { from, to } })
    },
    authGuardTripped: () => {
      inner.authGuardTripped()
      notifier.emit({ type: 'auth_guard_tripped', route, upstream })
    },
    bulkheadChanged: (inFlight, queued) => { inner.bulkheadChanged(inFlight, queued) },
    cacheLookup: (result) => { inner.cacheLookup(result) },
    cacheStored: () => { inner.cacheStored() }
  }
}
