/**
 * Shared breaker transitions (`resilience.breaker.fleet: true`): the
 * upstream's breaker opens and closes on every replica together, while each
 * replica still counts its own outcomes.
 *
 * - A transition this replica's counts decided (open on failures, closed
 *   after a good trial, an operator's reset) is written to
 *   `<prefix>breaker:<id>` (the last transition), with
 *   `<prefix>breaker:<id>:open` set for the open period (PX: Redis's clock
 *   ends it), and published on `<prefix>breakers`. The others apply the
 *   message at once and read the keys every `fleet.pollMs`, so a missed
 *   message costs one poll. No Redis call per request: only transitions,
 *   polls and trial claims.
 * - One trial for the fleet: when the open period ends, a replica asks for
 *   `<prefix>breaker:<id>:probe` (SET NX PX); only the holder's breaker goes
 *   half-open, the others stay open until it tells the outcome. The request
 *   that asks is short-circuited, never held: the claim is answered in the
 *   background and the holder's next request is the trial. A holder that
 *   sends no trial lets the claim expire (PX openMs) and another takes it.
 * - Redis down: each replica's breaker works alone (opens on its own
 *   counts, sends its own trial); `faultline_fleet_shared{feature="breaker"}`
 *   is 0. A transition made meanwhile is written when Redis is back, before
 *   the keys are read, so an older state in Redis cannot undo it.
 *
 * Containment: only the upstream's breaker is linked, and it learns from
 * real outcomes only (src/policies/breaker.ts); the route's own breaker for
 * injected failures never is, so an experiment never opens a breaker on
 * another replica.
 */
import { createHash } from 'node:crypto'
import { z } from 'zod'
import type { Logger } from '../log.js'
import type { BreakerChange, BreakerPeer, BreakerPeerSnapshot, CircuitBreaker } from '../policies/breaker.js'
import type { BreakerConfig } from '../policies/schema.js'
import type { BreakerStateName } from '../policies/events.js'
import type { FleetRedis } from './redis.js'

/** The key value and the message: peers' input, so validated. */
const breakerMessage = z.strictObject({
  /** Which breaker (see breakerId): one channel carries every breaker's messages. */
  id: z.string().max(300),
  state: z.enum(['open', 'closed']),
  by: z.string().max(200),
  trips: z.number().int().min(0).max(10_000),
  /** On open: how long it stays open (the open key's PX holds the same). */
  openMs: z.number().int().min(0).optional(),
  reason: z.string().max(500)
})
type BreakerMessage = z.infer<typeof breakerMessage>

/** The last transition outlives every replica restarting: a new replica finds an open breaker. */
const STATE_TTL_MS = 24 * 3600_000
/** After Redis failed to answer a trial claim, ask again no sooner than this. */
const CLAIM_RETRY_MS = 100

/**
 * The breaker's name in Redis: its upstream (host:port, readable in the
 * keys) and a hash of its origin and options, so replicas with the same
 * config share it and a breaker with other options (or another scheme) does not.
 */
export function breakerId (label: string, origin: string, config: BreakerConfig): string {
  return `${label}:${createHash('sha256').update(origin + '\n' + JSON.stringify(config)).digest('hex').slice(0, 12)}`
}

export class FleetBreakerLink implements BreakerPeer {
  private readonly breaker: CircuitBreaker
  private readonly redis: FleetRedis
  private readonly logger: Logger
  private readonly id: string
  private readonly keys: { state: string, open: string, probe: string }
  private readonly channel: string
  private readonly probeTtlMs: number
  private readonly poller: NodeJS.Timeout
  private readonly unsubscribe: () => void
  private readonly unlisten: () => void
  /** A transition decided here that Redis has not taken yet (bumped on each one). */
  private pending = 0
  private warned = 0
  /** Counts this breaker's transitions: a trial claim answered after one is stale. */
  private period = 0
  /** This replica won the fleet's trial for this open period, until then (performance.now()). */
  private probeUntil = 0
  private claiming = false
  private claimRetryAt = 0
  private probeHolder: string | undefined
  private polling = false
  private lastReason = ''
  private stopped = false

  constructor (breaker: CircuitBreaker, options: { redis: FleetRedis, id: string, config: BreakerConfig, pollMs: number, logger: Logger }) {
    this.breaker = breaker
    this.redis = options.redis
    this.logger = options.logger.child({ upstream: breaker.upstream, breaker: 'fleet', injected: false })
    this.id = options.id
    const base = options.redis.key('breaker', options.id)
    this.keys = { state: base, open: base + ':open', probe: base + ':probe' }
    this.channel = options.redis.key('breakers')
    // A trial slower than the first open period lets another replica try too: better two trials than none.
    this.probeTtlMs = options.config.openMs
    breaker.peer = this
    this.unlisten = breaker.onTransition((from, to, change) => { this.onLocal(from, to, change) })
    this.unsubscribe = options.redis.subscribe(this.channel, (text) => { this.onMessage(text) })
    this.poller = setInterval(() => { void this.poll() }, options.pollMs)
    this.poller.unref()
    void this.poll()
  }

  /** Whether transitions are shared now (Redis answers), or this replica's breaker works alone. */
  get shared (): boolean {
    return this.redis.isUp()
  }

  mayProbe (): boolean {
    // Redis down: the local breaker decides alone, as without fleet control.
    if (!this.redis.isUp()) return true
    const now = performance.now()
    if (now < this.probeUntil) {
      this.probeUntil = 0
      return true
    }
    if (!this.claiming && now >= this.claimRetryAt) void this.claim()
    return false
  }

  snapshot (): BreakerPeerSnapshot {
    return { scope: this.shared ? 'fleet' : 'local', ...(this.probeHolder !== undefined ? { trialBy: this.probeHolder } : {}) }
  }

  /** Asks for the fleet's trial; the holder's next request is the trial. */
  private async claim (): Promise<void> {
    this.claiming = true
    const period = this.period
    const me = this.redis.instanceId
    const got = await this.redis.attempt(async (r) => await r.multi()
      .set(this.keys.probe, me, 'PX', this.probeTtlMs, 'NX')
      .pttl(this.keys.probe)
      .get(this.keys.probe)
      .exec())
    this.claiming = false
    const now = performance.now()
    if (got === undefined || got === null) {
      this.claimRetryAt = now + CLAIM_RETRY_MS
      return
    }
    const holder = got[2]?.[1]
    this.probeHolder = typeof holder === 'string' ? holder : undefined
    const ttl = Math.max(CLAIM_RETRY_MS, Number(got[1]?.[1] ?? 0))
    if (got[0]?.[1] === 'OK' && period === this.period) {
      this.probeUntil = now + ttl
      this.logger.info('circuit breaker: this replica sends the fleet\'s trial request')
    } else {
      // Another replica holds it: ask again only if its claim runs out without a verdict.
      this.claimRetryAt = now + ttl
    }
  }

  private onLocal (_from: BreakerStateName, to: BreakerStateName, change: BreakerChange | undefined): void {
    this.period++
    this.probeUntil = 0
    this.claimRetryAt = 0
    // The fleet's own transition, applied here: not told back.
    if (change?.by !== undefined) return
    // Opened on this replica's counts (or a failed trial); closed after a good trial, or reset by an operator.
    if ((to === 'open' && change !== undefined) || to === 'closed') {
      this.lastReason = change?.reason ?? 'reset by an operator'
      this.pending++
      void this.write()
    }
  }

  /** The state to tell the fleet, from the breaker's state now; undefined while half-open or held by an operator. */
  private current (): BreakerMessage | undefined {
    const state = this.breaker.state
    const base = { id: this.id, by: this.redis.instanceId, reason: this.lastReason }
    if (state.name === 'closed') return { ...base, state: 'closed', trips: 0 }
    if (state.name === 'open') {
      const left = this.breaker.snapshot().reopensInMs
      return { ...base, state: 'open', trips: state.trips, openMs: typeof left === 'number' ? Math.max(0, left) : 0 }
    }
    return undefined
  }

  /** Writes and publishes this replica's transition; kept pending (written at the next poll) when Redis does not take it. */
  private async write (): Promise<void> {
    const version = this.pending
    if (version === 0 || this.stopped) return
    const state = this.breaker.state.name
    if (state === 'forced_open' || state === 'forced_closed') {
      // An operator's hold is this replica's alone.
      this.pending = 0
      return
    }
    const message = this.current()
    // Half-open (a trial made while Redis was away): told when it ends.
    if (message === undefined) return
    const text = JSON.stringify(message)
    const ok = await this.redis.attempt(async (r) => {
      const tx = r.multi().set(this.keys.state, text, 'PX', STATE_TTL_MS)
      if (message.state === 'open' && (message.openMs ?? 0) > 0) tx.set(this.keys.open, message.by, 'PX', message.openMs ?? 1)
      else tx.del(this.keys.open)
      throwOnError(await tx.del(this.keys.probe).publish(this.channel, text).exec())
      return true
    })
    if (ok === true) {
      if (this.pending === version) this.pending = 0
      this.probeHolder = undefined
    } else if (this.warned !== version) {
      // Once per transition, not once per poll while Redis is away.
      this.warned = version
      this.logger.warn({ state: message.state }, 'circuit breaker changed here, but the fleet Redis is unreachable: the other replicas follow when it is back')
    }
  }

  /** Reads the fleet's state (first writing a transition Redis missed). Overlapping polls are skipped. */
  private async poll (): Promise<void> {
    if (this.polling || this.stopped) return
    this.polling = true
    try {
      if (this.pending !== 0) {
        await this.write()
        return
      }
      const read = await this.redis.attempt(async (r) => await r.multi().get(this.keys.state).pttl(this.keys.open).get(this.keys.probe).exec())
      if (read === undefined || read === null || this.pending !== 0) return
      const holder = read[2]?.[1]
      this.probeHolder = typeof holder === 'string' ? holder : undefined
      const message = parse(read[0]?.[1])
      if (message === undefined || message.id !== this.id) return
      this.apply(message, Math.max(0, Number(read[1]?.[1] ?? 0)), 'poll')
    } finally {
      this.polling = false
    }
  }

  private onMessage (text: string): void {
    const message = parse(text)
    if (message === undefined || message.id !== this.id || message.by === this.redis.instanceId) return
    // A transition made here that Redis has not taken yet wins over what the fleet said before it.
    if (this.pending !== 0) return
    this.apply(message, message.openMs ?? 0, 'message')
  }

  /** Moves the local breaker to the fleet's state; `openMs`: what is left of the fleet's open period. */
  private apply (message: BreakerMessage, openMs: number, via: 'message' | 'poll'): void {
    const local = this.breaker.state.name
    const fields = { by: message.by, via, reason: message.reason }
    if (message.state === 'closed') {
      if (local !== 'open' && local !== 'half_open') return
      this.breaker.closeFromFleet({ reason: `closed by the fleet (replica ${message.by}): ${message.reason}`, by: message.by })
      this.logger.info(fields, `circuit breaker closed for ${this.breaker.upstream} by the fleet (replica ${message.by}): ${message.reason}`)
      return
    }
    // Open. Half-open here means this replica holds the trial: a poll showing the period over changes nothing.
    if (local === 'half_open' && via === 'poll' && openMs === 0) return
    if (local === 'open') {
      if (openMs > 0) this.breaker.openFromFleet(openMs, message.trips, { reason: message.reason, openMs, by: message.by })
      return
    }
    if (local !== 'closed' && local !== 'half_open') return
    this.breaker.openFromFleet(openMs, message.trips, { reason: `opened by the fleet (replica ${message.by}): ${message.reason}`, openMs, by: message.by })
    this.logger.warn({ ...fields, openMs }, `circuit breaker opened for ${this.breaker.upstream} by the fleet (replica ${message.by}) for ${openMs / 1000} s: ${message.reason}`)
  }

  stop (): void {
    this.stopped = true
    clearInterval(this.poller)
    this.unsubscribe()
    this.unlisten()
    if (this.breaker.peer === this) this.breaker.peer = undefined
  }
}

function parse (value: unknown): BreakerMessage | undefined {
  if (typeof value !== 'string') return undefined
  try {
    return breakerMessage.parse(JSON.parse(value))
  } catch {
    return undefined
  }
}

/** MULTI/EXEC resolves per-command errors instead of rejecting. */
function throwOnError (results: Array<[Error | null, unknown]> | null): void {
  if (results === null) throw new Error('transaction aborted')
  for (const [err] of results) if (err !== null) throw err
}
