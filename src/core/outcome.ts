/**
 * The words a request ends in, shared by the context that records them, the
 * metrics that count them and the report that shows them. A kernel leaf: the
 * metrics module imports it, never the other way round.
 */
export const OUTCOMES = [
  'ok',
  'retried_ok',
  'fallback_cache',
  'fallback_alternate',
  'fallback_static',
  'deferred',
  'failed',
  'rejected_bulkhead',
  'short_circuited',
  // The client went away before the response was complete (Envoy's "DC" flag).
  'cancelled'
] as const
export type Outcome = (typeof OUTCOMES)[number]

/** Which fallback answered a request. */
export type FallbackKind = 'cache' | 'alternate' | 'static' | 'defer'
