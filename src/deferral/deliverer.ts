/**
 * One deliverer per route with a `defer` step: it replays the route's
 * deferred requests to the upstream, oldest first, one at a time.
 *
 * - **Order**: the head entry (the oldest pending one) is delivered or
 *   settled before any later entry is tried, so writes reach the upstream
 *   in the order they were accepted, per key and per route.
 * - **No stampede**: at most `ratePerSecond` deliveries per second, one in
 *   flight; after a failure the next try waits an exponential backoff with
 *   full jitter, whatever wakes the deliverer meanwhile.
 * - **Recovery**: the delivery itself is the probe. With a breaker on the
 *   route the delivery asks it first (an open breaker is waited out; a
 *   half-open one admits the delivery as its trial), its result is a real
 *   outcome for the breaker, and the breaker closing (a live request's
 *   half-open success) ends the backoff at once.
 * - **Chaos never reaches a delivery**: it goes straight to the route's
 *   pool, past the fault stage. The replay is the real write; the failure
 *   that deferred it may have been injected, its delivery is not.
 * - **Ownership**: one loop, one timer, one AbortController; stop() ends
 *   the wait and aborts the delivery in flight (reload, shutdown).
 */
import type { Logger } from 'pino'
import type { Dispatcher } from 'undici'
import type { Policy } from '../core/pipeline.js'
import { isBreakerPolicy } from '../policies/breaker.js'
import type { CircuitBreaker } from '../policies/breaker.js'
import { PolicyRejectionError, classifyError } from '../core/errors.js'
import type { DeferStepConfig, ResilienceConfig } from '../policies/schema.js'
import type { DeferralEntry, DeferralStore, DeliveryResult } from './store.js'
import { RESULT_HEADERS } from './defer-step.js'

/** What a deliverer needs of its route; the assembly's DeliveryRoute has it (and a reload replaces it). */
export interface DeliveryRoute {
  readonly name: string
  readonly config: { readonly resilience: Pick<ResilienceConfig, 'fallback'> }
  /** The route's primary upstream pool: deliveries go straight to it, past the fault stage. */
  readonly pool: Pick<Dispatcher, 'request'>
  /** Its policies, to follow the shared breaker. */
  readonly policies: readonly Policy[]
  enter (): void
  leave (): void
}

export type DeliveryResultLabel = 'delivered' | 'retry' | 'dead' | 'expired'

export interface DelivererDeps {
  store: DeferralStore
  /** The route as it is now (a reload replaces it); undefined when the route is gone. */
  route: () => DeliveryRoute | undefined
  logger: Logger
  delivered: (route: string, result: DeliveryResultLabel) => void
  /** [0, 1): the jitter's draw (tests pass a fixed one). */
  random?: () => number
  /** How often an idle deliverer looks again (entries another instance added, a store that was down). */
  idleMs?: number
}

/** Exponential backoff for the n-th failure in a row (n >= 1), capped, with full jitter when asked. */
export function backoffMs (config: DeferStepConfig['backoff'], failures: number, random: () => number): number {
  const ceiling = Math.min(config.maxMs, config.baseMs * 2 ** Math.min(failures - 1, 30))
  return config.jitter === 'full' ? Math.max(1, Math.round(random() * ceiling)) : ceiling
}

/** An answer that settles an entry: the upstream took a decision (2xx-4xx but 408 and 429). */
function settles (status: number): boolean {
  return status < 500 && status !== 408 && status !== 429
}

async function readBounded (body: Dispatcher.ResponseData['body'], max: number): Promise<{ body: Buffer, truncated: boolean }> {
  const chunks: Buffer[] = []
  let size = 0
  let truncated = false
  for await (const chunk of body) {
    const buf = chunk as Buffer
    if (size + buf.length > max) {
      chunks.push(buf.subarray(0, max - size))
      size = max
      truncated = true
      break
    }
    chunks.push(buf)
    size += buf.length
  }
  if (truncated) body.destroy()
  return { body: Buffer.concat(chunks, size), truncated }
}

export class Deliverer {
  readonly route: string
  #config: DeferStepConfig
  readonly #deps: DelivererDeps
  readonly #random: () => number
  readonly #abort = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #wakeUp: (() => void) | undefined
  #loop: Promise<void> | undefined
  /** Failed deliveries in a row: the backoff's exponent. */
  #failures = 0
  /** No delivery starts before this (epoch ms, as the store's nextAttemptAt): rate limit and backoff. */
  #notBefore = 0
  #breaker: CircuitBreaker | undefined
  #unsubscribe: (() => void) | undefined

  constructor (route: string, config: DeferStepConfig, deps: DelivererDeps) {
    this.route = route
    this.#config = config
    this.#deps = deps
    this.#random = deps.random ?? Math.random
  }

  /** A reload changed the step's options: the next delivery uses them. */
  configure (config: DeferStepConfig): void {
    this.#config = config
  }

  start (): void {
    this.#loop ??= this.#run().catch((err: unknown) => {
      this.#deps.logger.error({ err, route: this.route }, 'deferral deliverer stopped on an error')
    })
  }

  /** Look now (a new entry, an operator's retry); a backoff or rate wait still holds. */
  wake (): void {
    this.#wakeUp?.()
  }

  /**
   * A request was just deferred: the upstream failed it a moment ago, so
   * that failure counts as the first of a run and the first delivery
   * waits a backoff instead of knocking at once.
   */
  deferred (): void {
    if (this.#failures === 0) {
      this.#failures = 1
      this.#notBefore = Math.max(this.#notBefore, Date.now() + backoffMs(this.#config.backoff, 1, this.#random))
    }
    this.wake()
  }

  /** The upstream answers again (the breaker closed): the backoff ends now. */
  recovered (): void {
    this.#failures = 0
    this.#notBefore = 0
    this.wake()
  }

  async stop (): Promise<void> {
    this.#abort.abort(new Error('deliverer stopped'))
    this.wake()
    this.#unsubscribe?.()
    await this.#loop
  }

  get stopped (): boolean { return this.#abort.signal.aborted }

  /** Sleeps until `ms` passed, wake() or stop(). */
  async #sleep (ms: number): Promise<void> {
    if (this.stopped) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(this.#timer)
        this.#timer = undefined
        this.#wakeUp = undefined
        resolve()
      }
      this.#wakeUp = done
      this.#timer = setTimeout(done, Math.max(0, Math.min(ms + 1, 2_147_483_647)))
    })
  }

  /** Follows the route's shared breaker: its closing ends our backoff. Re-followed when a reload replaces it. */
  #follow (route: DeliveryRoute): CircuitBreaker | undefined {
    const policy = route.policies.find(isBreakerPolicy)
    const breaker = policy?.breaker
    if (breaker !== this.#breaker) {
      this.#unsubscribe?.()
      this.#breaker = breaker
      this.#unsubscribe = breaker?.onTransition((_from, to) => { if (to === 'closed') this.recovered() })
    }
    return breaker
  }

  async #run (): Promise<void> {
    const idleMs = this.#deps.idleMs ?? 1_000
    while (!this.stopped) {
      const route = this.#deps.route()
      // Followed before any wait: the breaker closing is what ends a backoff early.
      if (route !== undefined) this.#follow(route)
      const wait = this.#notBefore - Date.now()
      if (wait > 0) {
        await this.#sleep(wait)
        continue
      }
      if (route === undefined) {
        await this.#sleep(idleMs)
        continue
      }
      let next: Awaited<ReturnType<DeferralStore['next']>>
      try {
        next = await this.#deps.store.next(this.route, Date.now())
      } catch (err) {
        this.#deps.logger.warn({ err, route: this.route }, 'deferral store unavailable; the deliverer tries again')
        await this.#sleep(idleMs)
        continue
      }
      for (const e of next.expired) {
        this.#deps.delivered(this.route, 'expired')
        this.#deps.logger.warn({ route: this.route, deferral: e.id, attempts: e.attempts }, 'deferred request expired (maxAgeMs): dead letter')
      }
      const entry = next.entry
      if (entry === undefined) {
        await this.#sleep(idleMs)
        continue
      }
      await this.#attempt(entry)
    }
  }

  async #attempt (entry: DeferralEntry): Promise<void> {
    // Read again after the store's await: a reload in between may have retired the route we had.
    const route = this.#deps.route()
    if (route === undefined) return
    const breaker = this.#follow(route)
    let ticket: number | undefined
    try {
      ticket = breaker?.admit()
    } catch (err) {
      // Open: wait it out (a live request or this deliverer will be its trial once it half-opens).
      const s = err instanceof PolicyRejectionError ? err.retryAfterS : 1
      this.#notBefore = Date.now() + Math.min(s * 1000, this.#config.backoff.maxMs)
      return
    }
    const attempts = entry.attempts + 1
    route.enter()
    let outcome: { ok: true, result: DeliveryResult } | { ok: false, error: string }
    try {
      outcome = await this.#send(route, entry)
    } finally {
      route.leave()
    }
    if (this.stopped && !outcome.ok) {
      // Cut short by stop(): not the upstream's failure, not an attempt.
      if (ticket !== undefined) breaker!.abandon(ticket)
      return
    }
    if (ticket !== undefined) breaker!.record(ticket, outcome.ok)
    const now = Date.now()
    if (outcome.ok) {
      this.#failures = 0
      this.#notBefore = Date.now() + 1000 / this.#config.ratePerSecond
      await this.#record(entry, attempts, { kind: 'delivered', result: outcome.result }, 'delivered')
      this.#deps.logger.info({ route: this.route, deferral: entry.id, attempts, status: outcome.result.status }, 'deferred request delivered')
      return
    }
    this.#failures++
    const delay = backoffMs(this.#config.backoff, this.#failures, this.#random)
    this.#notBefore = Date.now() + Math.max(delay, 1000 / this.#config.ratePerSecond)
    if (attempts >= this.#config.maxAttempts) {
      await this.#record(entry, attempts, { kind: 'dead', error: `${outcome.error} (after ${attempts} attempts)` }, 'dead')
      this.#deps.logger.warn({ route: this.route, deferral: entry.id, attempts, error: outcome.error }, 'deferred request failed maxAttempts times: dead letter')
      return
    }
    await this.#record(entry, attempts, { kind: 'retry', error: outcome.error, nextAttemptAt: now + delay }, 'retry')
  }

  async #record (entry: DeferralEntry, attempts: number, outcome: Parameters<DeferralStore['record']>[2], label: DeliveryResultLabel): Promise<void> {
    try {
      await this.#deps.store.record(entry.id, attempts, outcome)
      this.#deps.delivered(this.route, label)
    } catch (err) {
      // Not recorded: the entry stays pending and is delivered again (the upstream has its Idempotency-Key).
      this.#deps.logger.warn({ err, route: this.route, deferral: entry.id }, 'cannot record a delivery attempt')
    }
  }

  /** One delivery: the stored request, straight to the route's pool, bounded by attemptTimeoutMs. */
  async #send (route: DeliveryRoute, entry: DeferralEntry): Promise<{ ok: true, result: DeliveryResult } | { ok: false, error: string }> {
    const timeout = AbortSignal.timeout(this.#config.attemptTimeoutMs)
    const signal = AbortSignal.any([this.#abort.signal, timeout])
    try {
      const body = Buffer.from(entry.body, 'base64')
      const response = await route.pool.request({
        method: entry.method as 'POST',
        path: entry.path,
        headers: entry.headers,
        body: body.length > 0 || entry.method !== 'DELETE' ? body : null,
        signal,
        headersTimeout: this.#config.attemptTimeoutMs,
        bodyTimeout: this.#config.attemptTimeoutMs
      })
      if (!settles(response.statusCode)) {
        response.body.on('error', () => {}).destroy()
        return { ok: false, error: `HTTP ${response.statusCode}` }
      }
      const { body: kept, truncated } = await readBounded(response.body, this.#config.resultMaxBytes)
      const headers: Record<string, string> = {}
      for (const name of RESULT_HEADERS) {
        const value = response.headers[name]
        if (typeof value === 'string') headers[name] = value
      }
      return { ok: true, result: { status: response.statusCode, headers, body: kept.toString('base64'), truncated, at: Date.now() } }
    } catch (err) {
      const failure = classifyError(timeout.aborted ? new Error('delivery timed out (attemptTimeoutMs)') : err)
      return { ok: false, error: `${failure.errorClass}: ${failure.message}` }
    }
  }
}
