/**
 * The durable queue behind the `defer` fallback: one interface, two
 * stores (the local journal, journal-store.ts, and Redis Streams,
 * redis-store.ts), one contract suite (test/deferral/store-contract.ts).
 * Entries are plain data so either store can keep them as JSON.
 */

export const DEFERRAL_STATES = ['pending', 'delivered', 'dead', 'cancelled'] as const
export type DeferralState = (typeof DEFERRAL_STATES)[number]

/** What the upstream answered to the delivery that settled an entry (body bounded by the route's resultMaxBytes). */
export interface DeliveryResult {
  status: number
  headers: Record<string, string>
  /** base64 of the first resultMaxBytes of the body. */
  body: string
  /** The body was longer than what is kept. */
  truncated: boolean
  at: number
}

/** What the defer step hands the store: the request as it would have gone upstream. */
export interface NewDeferral {
  route: string
  /** The Idempotency-Key (sent or generated): one entry per route and key. */
  key: string
  /** sha256 of method, path and body: the same key with another request is refused (422). */
  fingerprint: string
  method: string
  path: string
  /** Flat [name, value, ...], hop-by-hop and Content-Length removed, filtered by the route's allow-list. */
  headers: string[]
  /** base64; '' when there is none. */
  body: string
  /** The failure that made the chain defer was injected (chaos), not the upstream's. */
  injected: boolean
  /** Why the live attempt failed (error class or status), for the record. */
  reason: string
  createdAt: number
  expiresAt: number
}

/** One delivery attempt, as recorded (the last HISTORY_MAX are kept). */
export interface AttemptRecord {
  at: number
  result: 'retry' | 'delivered' | 'dead'
  /** The upstream's status when it answered. */
  status?: number
  error?: string
}

export const HISTORY_MAX = 20

/** The entry's attempt history with one more attempt, bounded to the last HISTORY_MAX. */
export function withAttempt (history: readonly AttemptRecord[] | undefined, outcome: AttemptOutcome, at: number): AttemptRecord[] {
  const record: AttemptRecord = outcome.kind === 'delivered'
    ? { at, result: 'delivered', status: outcome.result.status }
    : { at, result: outcome.kind, error: outcome.error }
  return [...(history ?? []), record].slice(-HISTORY_MAX)
}

export interface DeferralEntry extends NewDeferral {
  id: string
  /** Position in acceptance order within the store (journal sequence, or the stream id). */
  seq: string
  state: DeferralState
  attempts: number
  /** Epoch ms before which the entry is not tried again (backoff). */
  nextAttemptAt: number
  lastError?: string
  result?: DeliveryResult
  /** When the entry reached delivered, dead or cancelled. */
  settledAt?: number
  /** Every attempt's time and result (the last HISTORY_MAX). */
  history?: AttemptRecord[]
}

/** How one delivery attempt ended. */
export type AttemptOutcome =
  | { kind: 'retry', error: string, nextAttemptAt: number }
  | { kind: 'delivered', result: DeliveryResult }
  | { kind: 'dead', error: string }

export interface DeferralStats {
  pending: number
  dead: number
  delivered: number
  /** createdAt of the oldest pending entry, if any. */
  oldestPendingAt: number | undefined
}

export interface ListFilter {
  route?: string
  state?: DeferralState
  limit?: number
}

export interface DeferralStore {
  /** Stores the entry durably, unless the route already holds one for this key (then that one is returned). */
  accept: (input: NewDeferral) => Promise<{ entry: DeferralEntry, created: boolean }>
  get: (id: string) => Promise<DeferralEntry | undefined>
  /** The entry holding this key on this route (any state), if any. */
  byKey: (route: string, key: string) => Promise<DeferralEntry | undefined>
  /** Newest first, at most `limit` (default 100). */
  list: (filter?: ListFilter) => Promise<DeferralEntry[]>
  /**
   * The oldest pending entry of the route that this consumer may deliver
   * now (due, not held by another live consumer), or undefined. Entries
   * past expiresAt on the way are moved to dead first.
   */
  next: (route: string, now: number) => Promise<{ entry: DeferralEntry | undefined, expired: DeferralEntry[] }>
  /** Records one attempt; a settled entry is left alone (false). */
  record: (id: string, attempts: number, outcome: AttemptOutcome) => Promise<boolean>
  /** Operator: a pending entry is due now, a dead one is pending again. False when neither. */
  retryNow: (id: string, now: number) => Promise<boolean>
  /** Operator: a pending or dead entry will never be delivered. */
  cancel: (id: string, now: number) => Promise<boolean>
  /** Operator: removes dead entries (of one route, or all); returns how many. */
  purgeDead: (route?: string) => Promise<number>
  stats: (route: string, now: number) => Promise<DeferralStats>
  /** Routes with entries in the store (a route removed from the config may still have some). */
  routes: () => Promise<string[]>
  close: () => Promise<void>
}
