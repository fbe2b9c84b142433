/**
 * Auth guard: after `failures` 401/403 answers in a row from an upstream,
 * hold further requests back for `blockMs` with a fast 503 that says why.
 * Retrying (or simply continuing to send) bad credentials only risks an
 * account lockout. Shared per upstream like the breaker. After the block,
 * the next request goes through; one more 401/403 blocks again at once,
 * any other answer clears the count.
 *
 * It sits just inside retry (every attempt's answer counts, a blocked
 * attempt ends the retries) and outside the breaker (a credentials problem
 * is not an upstream health problem).
 */
import { PolicyRejection } from '../proxy/errors.js'
import type { Policy } from '../proxy/pipeline.js'
import type { AuthGuardConfig } from './schema.js'
import type { PolicyEvents } from './events.js'

export type AuthGuardListener = () => void

export class AuthGuard {
  readonly upstream: string
  private readonly config: AuthGuardConfig
  private readonly now: () => number
  private readonly listeners = new Set<AuthGuardListener>()
  private inARow = 0
  private lastStatus = 0
  private blockedUntil = 0

  constructor (upstream: string, config: AuthGuardConfig, now: () => number = () => performance.now()) {
    this.upstream = upstream
    this.config = config
    this.now = now
  }

  onTrip (listener: AuthGuardListener): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Throws a PolicyRejection (auth_blocked) while blocked. */
  check (): void {
    if (this.blockedUntil === 0) return
    const left = this.blockedUntil - this.now()
    if (left <= 0) return
    const seconds = Math.ceil(left / 1000)
    throw new PolicyRejection('auth_blocked',
      `${this.upstream} answered ${this.lastStatus} to ${this.inARow} requests in a row, so faultline is holding requests back for ${seconds} s ` +
      'instead of risking a credentials lockout; check the credentials the service sends', seconds)
  }

  record (status: number): void {
    if (status !== 401 && status !== 403) {
      this.inARow = 0
      return
    }
    this.inARow++
    this.lastStatus = status
    if (this.inARow >= this.config.failures) {
      this.blockedUntil = this.now() + this.config.blockMs
      for (const listener of this.listeners) listener()
    }
  }

  reset (): void {
    this.inARow = 0
    this.blockedUntil = 0
  }

  snapshot (): Record<string, unknown> {
    const left = Math.max(0, Math.round(this.blockedUntil - this.now()))
    return { upstream: this.upstream, authFailuresInARow: this.inARow, blocked: left > 0, blockedForMs: left }
  }
}

export function authGuardPolicy (guard: AuthGuard, events: PolicyEvents, release: () => void): Policy {
  const unsubscribe = guard.onTrip(() => { events.authGuardTripped() })
  return {
    name: 'authGuard',
    async execute (ctx, next) {
      guard.check()
      const response = await next(ctx)
      guard.record(response.statusCode)
      return response
    },
    state: () => guard.snapshot(),
    dispose () {
      unsubscribe()
      release()
    }
  }
}
