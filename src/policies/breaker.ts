/**
 * Circuit breaker per upstream. The state is a tagged union and every
 * transition goes through one function that notifies listeners (the
 * metrics seam). No timers: an open breaker becomes half-open lazily, when
 * the first request after `until` asks to pass.
 *
 *   closed --decision says open--> open --openMs elapsed--> half_open
 *   half_open --halfOpenProbes successes--> closed
 *   half_open --any probe fails--> open (for twice as long, up to maxOpenMs)
 *   forced_open / forced_closed: held by an operator until reset
 *
 * The breaker sits inside retry, so it sees every attempt, and an open
 * breaker throws a PolicyRejectionError that retry does not retry.
 *
 * With `fleet: true` a BreakerPeer (src/fleet/breaker.ts) shares its
 * transitions with the other replicas: it tells them when this breaker
 * opens or closes, moves it when they do (openFromFleet, closeFromFleet),
 * and lets only one replica send the half-open trial (mayProbe). Counting
 * stays local.
 */
import { ClientFaultError, FailureRule, PolicyRejectionError, UpstreamError } from '../core/errors.js'
import { responseErrorClass } from '../core/attempt.js'
import type { Policy } from '../core/pipeline.js'
import type { RequestContext } from '../core/context.js'
import type { BreakerConfig } from './schema.js'
import type { BreakerStateName, PolicyEvents } from './events.js'
import { decisionFor, type BreakerDecision, type BreakerDecisionSnapshot } from './breaker-decision.js'
import type { Logger } from '../log.js'

export type BreakerState =
  | { readonly name: 'closed' }
  | { readonly name: 'open', readonly since: number, readonly until: number, readonly trips: number }
  | { readonly name: 'half_open', readonly trips: number, admitted: number, succeeded: number }
  | { readonly name: 'forced_open' }
  | { readonly name: 'forced_closed' }

/**
 * Why a breaker opened or closed on its own (not set for an operator's
 * force or reset), and for how long it opened. `by`: the replica whose
 * breaker decided it, when it came from the fleet (not this replica's own counts).
 */
export interface BreakerChange { reason: string, openMs?: number, by?: string }

/** A shared breaker's part of GET /routes: `fleet` while transitions are shared through Redis, and which replica holds the trial. */
export interface BreakerPeerSnapshot { scope: 'fleet' | 'local', trialBy?: string }

/** GET /routes for a breaker: its state, the decision's figures, and the open or half-open period's. */
export type BreakerSnapshot = BreakerDecisionSnapshot & {
  upstream: string
  state: BreakerState['name']
  fleet?: BreakerPeerSnapshot
  trips?: number
  reopensInMs?: number
  probesAdmitted?: number
  probesSucceeded?: number
}

/** The fleet's side of a breaker (src/fleet/breaker.ts); answers synchronously, never waits on Redis. */
export interface BreakerPeer {
  /**
   * The open period ended here: may this request be the half-open trial?
   * False while another replica holds the fleet's trial (or the answer to
   * who does is not in yet): the request is short-circuited.
   */
  mayProbe: () => boolean
  /** For GET /routes: whether transitions are shared now, and who probes. */
  snapshot: () => BreakerPeerSnapshot
  /** Whether transitions are shared now (false: Redis unreachable, this breaker works alone). */
  readonly shared: boolean
  /** Ends its timer and subscription (the breaker's last lease is released). */
  stop: () => void
}

export type BreakerListener = (from: BreakerStateName, to: BreakerStateName, change?: BreakerChange) => void

/**
 * The state period a request was admitted in: a number that grows with
 * every transition. A result carries the ticket it was admitted with and
 * moves the state only while that period lasts, so a slow failure admitted
 * before a trip cannot re-open a breaker that has since recovered (closed
 * is always the same name, never the same period).
 */
export type BreakerTicket = number

const CLOSED: BreakerState = { name: 'closed' }

export class CircuitBreaker {
  readonly upstream: string
  private readonly config: BreakerConfig
  private readonly decision: BreakerDecision
  private readonly now: () => number
  private readonly listeners = new Set<BreakerListener>()
  private current: BreakerState = CLOSED
  private generation: BreakerTicket = 0
  /** The fleet's side, with `fleet: true` and a fleet configured. */
  peer: BreakerPeer | undefined

  constructor (upstream: string, config: BreakerConfig, now: () => number = () => performance.now()) {
    this.upstream = upstream
    this.config = config
    this.decision = decisionFor(config)
    this.now = now
  }

  get state (): BreakerState { return this.current }

  /** Subscribes to transitions; returns the unsubscribe function. */
  onTransition (listener: BreakerListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private moveTo (next: BreakerState, change?: BreakerChange): void {
    const from = this.current.name
    this.current = next
    this.generation++
    for (const listener of this.listeners) listener(from, next.name, change)
  }

  private openDurationMs (trips: number): number {
    return Math.min(this.config.maxOpenMs, this.config.openMs * 2 ** (trips - 1))
  }

  private trip (trips: number, reason: string): void {
    const now = this.now()
    const openMs = this.openDurationMs(trips)
    this.moveTo({ name: 'open', since: now, until: now + openMs, trips }, { reason, openMs })
  }

  /**
   * Asks to send one request. Returns a ticket to hand back to record(), or
   * throws a PolicyRejectionError (short_circuited) when the breaker is open.
   */
  admit (): BreakerTicket {
    const state = this.current
    switch (state.name) {
      case 'closed':
      case 'forced_closed':
        return this.generation
      case 'open': {
        const now = this.now()
        if (now < state.until) throw this.rejection(Math.ceil((state.until - now) / 1000))
        if (this.peer !== undefined && !this.peer.mayProbe()) {
          throw new PolicyRejectionError('short_circuited', `the circuit breaker for ${this.upstream} is open; one replica of the fleet sends the trial request`, 1)
        }
        this.moveTo({ name: 'half_open', trips: state.trips, admitted: 1, succeeded: 0 })
        return this.generation
      }
      case 'half_open':
        if (state.admitted >= this.config.halfOpenProbes) throw this.rejection(1)
        state.admitted++
        return this.generation
      case 'forced_open':
        throw new PolicyRejectionError('short_circuited', `the circuit breaker for ${this.upstream} is held open by an operator`, 5)
    }
  }

  private rejection (retryAfterS: number): PolicyRejectionError {
    const probing = this.current.name === 'half_open'
    return new PolicyRejectionError('short_circuited', probing
      ? `the circuit breaker for ${this.upstream} is half-open and its trial requests are in flight`
      : `the circuit breaker for ${this.upstream} is open after repeated failures; the next trial request goes through in about ${retryAfterS} s`,
    Math.max(1, retryAfterS))
  }

  /** The result of a request admitted with `ticket`; results from an older state period are ignored. */
  record (ticket: BreakerTicket, ok: boolean): void {
    if (ticket !== this.generation) return
    const state = this.current
    const now = this.now()
    if (state.name === 'closed') {
      if (ok) this.decision.success(now)
      else if (this.decision.failure(now)) this.trip(1, this.decision.why(now))
    } else if (state.name === 'half_open') {
      if (!ok) {
        this.trip(state.trips + 1, `a trial request failed while half-open (trip ${state.trips + 1} in a row)`)
      } else if (++state.succeeded >= this.config.halfOpenProbes) {
        this.decision.reset()
        this.moveTo(CLOSED, { reason: `${state.succeeded} trial request(s) succeeded while half-open` })
      }
    }
  }

  /** A request admitted with `ticket` ended with no result (its client left): a half-open probe slot is freed. */
  abandon (ticket: BreakerTicket): void {
    const state = this.current
    if (ticket === this.generation && state.name === 'half_open' && state.admitted > 0) state.admitted--
  }

  /**
   * The fleet opened it (another replica's breaker tripped): open here for
   * `ms` more (0: the fleet's open period is over and its trial is due).
   * Already open: the fleet's time and trip count are taken without a
   * transition. An operator's force holds.
   */
  openFromFleet (ms: number, trips: number, change: BreakerChange): void {
    const state = this.current
    if (state.name === 'forced_open' || state.name === 'forced_closed') return
    const now = this.now()
    if (state.name === 'open') {
      this.current = { ...state, until: now + ms, trips: Math.max(state.trips, trips) }
      return
    }
    this.moveTo({ name: 'open', since: now, until: now + ms, trips }, change)
  }

  /** The fleet closed it (the trial succeeded on another replica, or an operator reset it there). */
  closeFromFleet (change: BreakerChange): void {
    const state = this.current
    if (state.name !== 'open' && state.name !== 'half_open') return
    this.decision.reset()
    this.moveTo(CLOSED, change)
  }

  /** Operator: short-circuit every request until reset(). */
  forceOpen (): void { this.moveTo({ name: 'forced_open' }) }
  /** Operator: let every request through and record nothing until reset(). */
  forceClose (): void { this.moveTo({ name: 'forced_closed' }) }
  /** Operator: closed, with no history and no trip count. */
  reset (): void {
    this.decision.reset()
    this.moveTo(CLOSED)
  }

  snapshot (): BreakerSnapshot {
    const state = this.current
    const now = this.now()
    const out: BreakerSnapshot = { upstream: this.upstream, state: state.name, ...this.decision.snapshot(now) }
    if (this.peer !== undefined) out.fleet = this.peer.snapshot()
    if (state.name === 'open') {
      out.trips = state.trips
      out.reopensInMs = Math.max(0, Math.round(state.until - now))
    } else if (state.name === 'half_open') {
      out.trips = state.trips
      out.probesAdmitted = state.admitted
      out.probesSucceeded = state.succeeded
    }
    return out
  }
}

export interface BreakerPolicy extends Policy {
  readonly breaker: CircuitBreaker
  /** This route's own breaker for its injected failures (containment, docs/POLICIES.md). */
  readonly shadow: CircuitBreaker | undefined
}

export function isBreakerPolicy (policy: Policy): policy is BreakerPolicy {
  return policy.name === 'breaker' && 'breaker' in policy
}

/**
 * The policy around one shared CircuitBreaker; `release` is called on dispose.
 *
 * Containment: the shared breaker (per upstream) learns only from real
 * outcomes. `shadow`, this route's own breaker, learns from the route's
 * injected outcomes and its successes; a request passes only when both
 * admit it. So an experiment trips this route's breaker and no other,
 * while a real outage still short-circuits every route to the upstream.
 */
/** Where a breaker policy writes its open and close lines: the route and upstream they name. */
export interface BreakerLog { logger: Logger, route: string, upstream: string }

/**
 * One line per opening (warn) and per closing (info) of either breaker:
 * which one (the upstream's shared breaker, real failures; or this
 * route's own, injected ones), why, and for how long. Only a transition
 * this policy's own call caused is logged, so a breaker shared by several
 * routes (or by a retired route and its successor) writes it once.
 */
function breakerLogger (log: BreakerLog | undefined, acting: () => boolean, injected: boolean): BreakerListener {
  return (_from, to, change) => {
    if (log === undefined || change === undefined || !acting()) return
    const which = injected ? `route ${log.route}'s own breaker (injected failures)` : 'the shared breaker (real failures)'
    const fields = { route: log.route, upstream: log.upstream, breaker: injected ? 'route' : 'shared', injected, reason: change.reason }
    if (to === 'open') {
      log.logger.warn({ ...fields, openMs: change.openMs }, `circuit breaker opened for ${log.upstream}, ${which}, for ${(change.openMs ?? 0) / 1000} s: ${change.reason}`)
    } else if (to === 'closed') {
      log.logger.info(fields, `circuit breaker closed for ${log.upstream}, ${which}: ${change.reason}`)
    }
  }
}

export function breakerPolicy (breaker: CircuitBreaker, config: BreakerConfig, events: PolicyEvents, release: () => void, shadow?: CircuitBreaker, log?: BreakerLog): BreakerPolicy {
  const rule = new FailureRule(config.on)
  const unsubscribe = breaker.onTransition((from, to, change) => { events.breakerTransition(from, to, change?.by) })
  events.breakerTransition(breaker.state.name, breaker.state.name)
  /** True while this policy calls into a breaker (synchronously): a transition then is this route's to log. */
  let acting = false
  const unlog = [breaker.onTransition(breakerLogger(log, () => acting, false)), shadow?.onTransition(breakerLogger(log, () => acting, true))]
  const record = (b: CircuitBreaker, ticket: BreakerTicket, ok: boolean): void => {
    acting = true
    try { b.record(ticket, ok) } finally { acting = false }
  }
  /** Hands one attempt's result to the breaker it belongs to; the other forgets the attempt. */
  const settle = (ctx: RequestContext, ticket: BreakerTicket, shadowTicket: BreakerTicket | undefined, ok: boolean): void => {
    const injected = ctx.attemptOutcomeInjected
    if (injected) breaker.abandon(ticket)
    else record(breaker, ticket, ok)
    if (shadowTicket === undefined) return
    if (injected || ok) record(shadow!, shadowTicket, ok)
    else shadow!.abandon(shadowTicket)
  }
  return {
    name: 'breaker',
    breaker,
    shadow,
    async execute (ctx, next) {
      const ticket = breaker.admit()
      let shadowTicket: BreakerTicket | undefined
      try {
        shadowTicket = shadow?.admit()
      } catch (err) {
        breaker.abandon(ticket)
        // Short-circuited by this route's experiment: chaos shaped this answer.
        ctx.injectedElsewhere = true
        throw err
      }
      let response
      try {
        response = await next(ctx)
      } catch (err) {
        // The client left or broke a limit: the upstream's answer was never judged, so it is not a failure (nor a success).
        if (err instanceof ClientFaultError) {
          breaker.abandon(ticket)
          if (shadowTicket !== undefined) shadow!.abandon(shadowTicket)
        } else {
          settle(ctx, ticket, shadowTicket, err instanceof UpstreamError && !rule.matchesClass(err.errorClass))
        }
        throw err
      }
      const cls = responseErrorClass(response.statusCode)
      settle(ctx, ticket, shadowTicket, cls === undefined || !rule.matchesResponse(response.statusCode, cls))
      return response
    },
    snapshot: () => shadow === undefined ? breaker.snapshot() : { ...breaker.snapshot(), injected: shadow.snapshot() },
    dispose () {
      unsubscribe()
      for (const off of unlog) off?.()
      release()
    }
  }
}
