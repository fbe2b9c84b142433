/**
 * Auth guard: after `failures` 401/403 answers in a row for one credential,
 * hold further requests with that credential back for `blockMs` with a
 * fast 503 that says why. Retrying (or simply continuing to send) bad
 * credentials only risks an account lockout. After the block one request
 * with that credential goes first as a trial (the others still get the 503
 * until it answers): one more 401/403 blocks again at once, any other
 * answer clears the block and the count. Answers are tagged with the
 * credential's period they were admitted in (a ticket): a slow answer
 * admitted before a block or a trial never moves the guard afterwards.
 *
 * Keyed by credential, not by origin: a keyed HMAC of the Authorization
 * header (or, without one, the Cookie header), never the value itself.
 * Requests without credentials share one key of their own, so anyone
 * sending none (or a wrong one) can never lock out callers with a good
 * one. Only when `originAfter` distinct credentials that had worked before
 * are blocked at once (a credential rotation gone wrong) does the whole
 * origin trip, for `blockMs`, and then one trial request goes first
 * before all traffic resumes: made-up credentials never worked, so no
 * caller can trip the origin by sending many of them. The state is shared per upstream, like the breaker, and
 * bounded (the least recently seen credentials are forgotten).
 *
 * It sits just inside retry (every attempt's answer counts, a blocked
 * attempt ends the retries) and outside the breaker (a credentials problem
 * is not an upstream health problem).
 */
import { createHmac, randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { LRUCache } from 'lru-cache'
import { PolicyRejectionError } from '../core/errors.js'
import type { Policy } from '../core/pipeline.js'
import type { AuthGuardConfig } from './schema.js'
import type { PolicyEvents } from './events.js'

export type AuthGuardListener = () => void

/** A credential's period a request was admitted in; it grows when a block starts or ends. */
export type AuthGuardTicket = number

/** The key of requests that carry no credentials. */
export const NO_CREDENTIALS = 'none'

/** Credentials remembered per upstream; past this the least recently seen are forgotten. */
const MAX_CREDENTIALS = 10_000

/** Per process: a key cannot be turned back into a credential, nor compared across processes. */
const SECRET = randomBytes(32)

/** The guard's key for a request's credentials: a keyed hash, never the credential. */
export function credentialKey (req: IncomingMessage): string {
  const credential = req.headers.authorization ?? req.headers.cookie
  if (credential === undefined || credential === '') return NO_CREDENTIALS
  return createHmac('sha256', SECRET).update(credential).digest('base64url').slice(0, 22)
}

interface CredentialState {
  /** The upstream accepted this credential at least once. */
  worked: boolean
  inARow: number
  lastStatus: number
  blockedUntil: number
  /** A trial request is in flight after the block expired. */
  probing: boolean
  period: AuthGuardTicket
}

/** GET /routes for an auth guard: whether the whole origin is blocked, and how many credentials are. */
export interface AuthGuardSnapshot {
  upstream: string
  blocked: boolean
  blockedForMs: number
  originTrialInFlight: boolean
  blockedCredentials: number
  noCredentialsBlocked: boolean
}

export class AuthGuard {
  readonly upstream: string
  private readonly config: AuthGuardConfig
  private readonly now: () => number
  private readonly listeners = new Set<AuthGuardListener>()
  private readonly credentials = new LRUCache<string, CredentialState>({ max: MAX_CREDENTIALS })
  /** Credentials that had worked and are blocked now, with when their block ends: the origin-wide trip counts them. */
  private readonly blocked = new Map<string, number>()
  /** Set by an origin-wide trip; cleared only by a trial request's answer that is not a 401/403. */
  private originBlockedUntil = 0
  /**
   * The one trial request after an origin-wide block, like a half-open
   * breaker's probe: its ticket is negative (never a credential's period),
   * so only its own answer ends or renews the block.
   */
  private originTrial: { ticket: AuthGuardTicket, period: AuthGuardTicket } | undefined
  private originTrials = 0
  private lastStatus = 0

  constructor (upstream: string, config: AuthGuardConfig, now: () => number = () => performance.now()) {
    this.upstream = upstream
    this.config = config
    this.now = now
  }

  onTrip (listener: AuthGuardListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /**
   * Admits a request (its ticket for record()) or throws a PolicyRejectionError
   * (auth_blocked) while this credential, or the whole origin, is blocked,
   * and while the one trial request after a credential's block is in flight.
   */
  check (key: string = NO_CREDENTIALS): AuthGuardTicket {
    const now = this.now()
    const originLeft = this.originBlockedUntil - now
    if (originLeft > 0) {
      const seconds = Math.ceil(originLeft / 1000)
      throw new PolicyRejectionError('auth_blocked',
        `${this.upstream} answered ${this.lastStatus} for ${this.config.originAfter} different credentials that had worked before, so faultline is holding every request to it back for ${seconds} s ` +
        'instead of risking lockouts; check the credentials the services send (a rotation gone wrong?)', seconds)
    }
    if (this.originBlockedUntil !== 0) {
      if (this.originTrial !== undefined) {
        throw new PolicyRejectionError('auth_blocked',
          `${this.upstream} refused ${this.config.originAfter} different credentials that had worked before; one trial request is checking whether it accepts credentials again`, 1)
      }
      // The block is over: this request (if its own credential may pass) is the trial.
      const period = this.checkCredential(key, now)
      this.originTrial = { ticket: -++this.originTrials, period }
      return this.originTrial.ticket
    }
    return this.checkCredential(key, now)
  }

  private checkCredential (key: string, now: number): AuthGuardTicket {
    const state = this.credentials.get(key)
    if (state === undefined) return 0
    if (state.blockedUntil === 0) return state.period
    const left = state.blockedUntil - now
    if (left <= 0) {
      if (state.probing) {
        throw new PolicyRejectionError('auth_blocked',
          `${this.upstream} answered ${state.lastStatus} to ${state.inARow} requests in a row with these credentials; one trial request is checking whether they work again`, 1)
      }
      state.probing = true
      return state.period
    }
    const seconds = Math.ceil(left / 1000)
    throw new PolicyRejectionError('auth_blocked',
      `${this.upstream} answered ${state.lastStatus} to ${state.inARow} requests in a row with these credentials, so faultline is holding requests with them back for ${seconds} s ` +
      'instead of risking a credentials lockout; check the credentials the service sends', seconds)
  }

  /** The answer to a request admitted with `ticket` (from check()); answers from an older period are ignored. */
  record (status: number, key: string = NO_CREDENTIALS, ticket?: AuthGuardTicket): void {
    if (ticket !== undefined && ticket < 0) {
      const trial = this.originTrial
      // Not the current origin trial (its turn passed, or a later block began another): it moves nothing.
      if (trial === undefined || trial.ticket !== ticket) return
      this.originTrial = undefined
      if (status === 401 || status === 403) {
        this.lastStatus = status
        this.originBlockedUntil = this.now() + this.config.blockMs
        for (const listener of this.listeners) listener()
      } else {
        this.originBlockedUntil = 0
      }
      ticket = trial.period
    }
    const known = this.credentials.get(key)
    if (ticket !== undefined && ticket !== (known?.period ?? 0)) return
    if (status !== 401 && status !== 403) {
      // Remembered only for credentials that may later trip the origin (a rotation gone wrong).
      if (known === undefined) {
        if (key !== NO_CREDENTIALS) this.credentials.set(key, { worked: true, inARow: 0, lastStatus: 0, blockedUntil: 0, probing: false, period: 0 })
        return
      }
      known.worked = true
      known.inARow = 0
      if (known.blockedUntil !== 0) {
        known.blockedUntil = 0
        known.probing = false
        known.period++
      }
      return
    }
    let state = known
    if (state === undefined) {
      state = { worked: false, inARow: 0, lastStatus: 0, blockedUntil: 0, probing: false, period: 0 }
      this.credentials.set(key, state)
    }
    state.inARow++
    state.lastStatus = status
    this.lastStatus = status
    // The trial after a block failed, or the count is reached: block (again).
    if (!state.probing && state.inARow < this.config.failures) return
    state.probing = false
    state.period++
    const now = this.now()
    state.blockedUntil = now + this.config.blockMs
    if (state.worked && key !== NO_CREDENTIALS) this.tripOriginIfMany(key, now, state.blockedUntil)
    for (const listener of this.listeners) listener()
  }

  /** Many distinct credentials that used to work, blocked at once: the origin itself refuses them (a rotation gone wrong). */
  private tripOriginIfMany (key: string, now: number, until: number): void {
    this.blocked.set(key, until)
    for (const [other, end] of this.blocked) if (end <= now) this.blocked.delete(other)
    // Bounded like the credentials themselves.
    if (this.blocked.size > MAX_CREDENTIALS) this.blocked.delete(this.blocked.keys().next().value!)
    if (this.blocked.size >= this.config.originAfter) {
      this.originBlockedUntil = now + this.config.blockMs
      this.blocked.clear()
    }
  }

  /** A request admitted with `ticket` ended without an answer: a trial's turn passes to the next request. */
  abandon (key: string, ticket: AuthGuardTicket | undefined): void {
    if (ticket !== undefined && ticket < 0) {
      const trial = this.originTrial
      if (trial === undefined || trial.ticket !== ticket) return
      // The origin trial's turn passes to the next request.
      this.originTrial = undefined
      ticket = trial.period
    }
    const state = this.credentials.get(key)
    if (state !== undefined && ticket === state.period) state.probing = false
  }

  snapshot (): AuthGuardSnapshot {
    const now = this.now()
    let blockedCredentials = 0
    let noCredentialsBlocked = false
    for (const [key, state] of this.credentials.entries()) {
      if (state.blockedUntil <= now) continue
      if (key === NO_CREDENTIALS) noCredentialsBlocked = true
      else blockedCredentials++
    }
    const originLeft = Math.max(0, Math.round(this.originBlockedUntil - now))
    return { upstream: this.upstream, blocked: originLeft > 0, blockedForMs: originLeft, originTrialInFlight: this.originTrial !== undefined, blockedCredentials, noCredentialsBlocked }
  }
}

/**
 * Containment, as for the breaker: the shared guard counts real answers
 * only; `shadow`, this route's own guard, counts its injected answers (and
 * is cleared by any of its answers that is not a 401/403). Either blocks.
 */
export function authGuardPolicy (guard: AuthGuard, events: PolicyEvents, release: () => void, shadow?: AuthGuard): Policy {
  const unsubscribe = guard.onTrip(() => { events.authGuardTripped() })
  return {
    name: 'authGuard',
    async execute (ctx, next) {
      const key = credentialKey(ctx.req)
      const ticket = guard.check(key)
      let shadowTicket: AuthGuardTicket | undefined
      try {
        shadowTicket = shadow?.check(key)
      } catch (err) {
        guard.abandon(key, ticket)
        ctx.injectedElsewhere = true
        throw err
      }
      let response
      try {
        response = await next(ctx)
      } catch (err) {
        guard.abandon(key, ticket)
        shadow?.abandon(key, shadowTicket)
        throw err
      }
      const status = response.statusCode
      if (ctx.attemptOutcomeInjected) {
        shadow?.record(status, key, shadowTicket)
        guard.abandon(key, ticket)
      } else {
        guard.record(status, key, ticket)
        if (status !== 401 && status !== 403) shadow?.record(status, key, shadowTicket)
        else shadow?.abandon(key, shadowTicket)
      }
      return response
    },
    snapshot: () => shadow === undefined ? guard.snapshot() : { ...guard.snapshot(), injected: shadow.snapshot() },
    dispose () {
      unsubscribe()
      release()
    }
  }
}
