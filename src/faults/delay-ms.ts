/**
 * How long a fault config holds a request: latency's `ms` plus its jitter,
 * or a `delayMs`. Read by config warnings and the plan printout, which
 * compare it with the route's timeout.
 */

/** The longest delay a fault can add, when it adds one: latency, slowHeaders and timeout. */
export function faultDelayMs (fault: Record<string, unknown>): number | undefined {
  if (typeof fault.ms === 'number') return fault.ms + (typeof fault.jitterMs === 'number' ? fault.jitterMs : 0)
  if (typeof fault.delayMs === 'number') return fault.delayMs
  return undefined
}
