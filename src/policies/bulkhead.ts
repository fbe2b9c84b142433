/**
 * Bulkhead: at most `maxConcurrent` requests of a route upstream at once,
 * at most `maxQueue` waiting; the rest get a fast 503 with Retry-After, so
 * a slow route holds a bounded share of connections and sockets and never
 * starves another. A slot is held until the upstream response body is done
 * (the connection is busy until then), not just until its headers.
 *
 * Our own, not cockatiel's: a waiter that gives up (its deadline passed)
 * removes itself from the queue, and a freed slot is handed only to a
 * waiter still waiting, so no caller is ever stranded.
 */
import { PolicyRejectionError, UpstreamError } from '../core/errors.js'
import type { Policy } from '../core/pipeline.js'
import type { RequestContext } from '../core/context.js'
import type { BulkheadConfig } from './schema.js'
import type { PolicyEvents } from './events.js'

interface Waiter {
  resolve: () => void
  timer: NodeJS.Timeout
  /** Stops listening for the waiting request's client fault. */
  off: () => void
}

/** GET /routes for a bulkhead: what runs and waits now, against the limits. */
export interface BulkheadSnapshot { inFlight: number, queued: number, maxConcurrent: number, maxQueue: number }

export class Bulkhead {
  private readonly config: BulkheadConfig
  private readonly queue: Waiter[] = []
  private readonly listeners = new Set<PolicyEvents['bulkheadChanged']>()
  private active = 0

  constructor (config: BulkheadConfig) {
    this.config = config
  }

  get inFlight (): number { return this.active }
  get queued (): number { return this.queue.length }

  onChange (listener: PolicyEvents['bulkheadChanged']): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  private changed (): void {
    for (const listener of this.listeners) listener(this.active, this.queue.length)
  }

  /** Takes a slot at once (true) or not (false). */
  tryAcquire (): boolean {
    if (this.active >= this.config.maxConcurrent) return false
    this.active++
    this.changed()
    return true
  }

  /**
   * Waits for a slot until `deadline` (performance.now() time); rejects when
   * the queue is full or time runs out, or at once when the waiting
   * request's client leaves or breaks a limit (`ctx`), so it holds no queue place.
   */
  async acquire (deadline: number, ctx?: RequestContext): Promise<void> {
    if (this.tryAcquire()) return
    if (this.queue.length >= this.config.maxQueue) {
      throw new PolicyRejectionError('rejected_bulkhead',
        `the route is at its limit of ${this.config.maxConcurrent} concurrent requests` + (this.config.maxQueue > 0 ? ` and ${this.config.maxQueue} queued` : ''),
        this.config.retryAfterS)
    }
    if (ctx?.clientFault !== undefined) throw ctx.clientFault
    await new Promise<void>((resolve, reject) => {
      const leave = (err: Error): void => {
        clearTimeout(waiter.timer)
        waiter.off()
        const i = this.queue.indexOf(waiter)
        if (i !== -1) this.queue.splice(i, 1)
        this.changed()
        reject(err)
      }
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          leave(new UpstreamError('timeout', 'the request waited in the bulkhead queue until the route\'s timeoutMs passed', { timeoutPhase: 'total' }))
        }, Math.max(1, deadline - performance.now())),
        off: noop
      }
      if (ctx !== undefined) waiter.off = ctx.onClientFault(leave)
      this.queue.push(waiter)
      this.changed()
    })
  }

  /** Frees a slot, handing it straight to the first waiter if any. */
  release (): void {
    const next = this.queue.shift()
    if (next !== undefined) {
      clearTimeout(next.timer)
      next.off()
      next.resolve()
    } else {
      this.active--
    }
    this.changed()
  }

  snapshot (): BulkheadSnapshot {
    return { inFlight: this.active, queued: this.queue.length, maxConcurrent: this.config.maxConcurrent, maxQueue: this.config.maxQueue }
  }
}

export function bulkheadPolicy (bulkhead: Bulkhead, events: PolicyEvents, release: () => void): Policy {
  const unsubscribe = bulkhead.onChange((inFlight, queued) => { events.bulkheadChanged(inFlight, queued) })
  events.bulkheadChanged(bulkhead.inFlight, bulkhead.queued)
  return {
    name: 'bulkhead',
    async execute (ctx, next) {
      if (!bulkhead.tryAcquire()) await bulkhead.acquire(ctx.deadline, ctx)
      let response
      try {
        response = await next(ctx)
      } catch (err) {
        bulkhead.release()
        throw err
      }
      // The upstream connection stays busy until the body is done (ended, failed or discarded).
      if (response.body.closed || response.body.destroyed) bulkhead.release()
      else response.body.once('close', () => { bulkhead.release() })
      return response
    },
    snapshot: () => bulkhead.snapshot(),
    dispose () {
      unsubscribe()
      release()
    }
  }
}

function noop (): void {}
