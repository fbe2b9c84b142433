/**
 * Deferral for the whole process, owned by Faultline: the store (opened
 * before the listeners, closed after them) and one Deliverer per route
 * with a `defer` step, kept in step with the live route table on every
 * reload. Nothing here outlives close(): every deliverer's loop, timer
 * and in-flight delivery ends there.
 */
import type { Logger } from 'pino'
import type { Metrics } from '../metrics/metrics.js'
import { deferStepOf, type DeferStepConfig } from '../policies/schema.js'
import type { DeferralStoreConfig } from './schema.js'
import type { DeferralStore } from './store.js'
import type { DeferContext } from './defer-step.js'
import { JournalStore } from './journal-store.js'
import { Deliverer, type DeliveryRoute } from './deliverer.js'

export interface DeferralsDeps {
  logger: Logger
  metrics: Metrics
  /** The live routes (read on every use: a reload replaces them). */
  routes: () => readonly DeliveryRoute[]
  /** Opens the Redis Streams store (redis-store.ts); absent where Redis is not wired. */
  openRedis?: (config: DeferralStoreConfig) => Promise<DeferralStore>
  /** Test seams for the deliverers. */
  random?: () => number
  idleMs?: number
}

export function deferConfigOf (route: Pick<DeliveryRoute, 'config'>): DeferStepConfig | undefined {
  return deferStepOf(route.config.resilience)
}

export class Deferrals implements DeferContext {
  readonly #config: DeferralStoreConfig
  readonly #deps: DeferralsDeps
  #store: DeferralStore | undefined
  readonly #deliverers = new Map<string, Deliverer>()
  #closed = false
  #stopping = false

  constructor (config: DeferralStoreConfig, deps: DeferralsDeps) {
    this.#config = config
    this.#deps = deps
    deps.metrics.deferralStats = async () => await this.stats()
  }

  /** Opens the store when a route defers (or one did: entries may be waiting). Throws a clear error when it cannot. */
  async open (needed: boolean): Promise<void> {
    if (this.#store !== undefined || this.#closed) return
    const c = this.#config
    if (c.store === 'redis') {
      if (this.#deps.openRedis === undefined) throw new Error('deferral.store is redis but no Redis store is available')
      this.#store = await this.#deps.openRedis(c)
    } else {
      if (c.dir === undefined) return
      this.#store = await JournalStore.open({
        dir: c.dir,
        retainMs: c.retainMs,
        compactBytes: c.compactBytes,
        onSkipped: (count, torn) => {
          this.#deps.logger.warn({ dir: c.dir, skipped: count, tornLastLine: torn }, 'deferral journal: lines that failed their checksum were skipped (a write torn by a crash)')
        }
      })
    }
    this.#deps.logger.info({ store: c.store, dir: c.store === 'journal' ? c.dir : undefined }, 'deferral store open')
  }

  get store (): DeferralStore | undefined { return this.#store }

  /** After a start or reload: a deliverer for every live route with a defer step, none for the others. */
  sync (): void {
    if (this.#stopping || this.#store === undefined) return
    const wanted = new Map<string, DeferStepConfig>()
    for (const route of this.#deps.routes()) {
      const config = deferConfigOf(route)
      if (config !== undefined) wanted.set(route.name, config)
    }
    for (const [name, deliverer] of this.#deliverers) {
      if (wanted.has(name)) continue
      this.#deliverers.delete(name)
      void deliverer.stop()
      this.#deps.logger.info({ route: name }, 'route no longer defers: its deliverer stopped (pending entries stay in the store)')
    }
    const store = this.#store
    for (const [name, config] of wanted) {
      const existing = this.#deliverers.get(name)
      if (existing !== undefined) {
        existing.configure(config)
        continue
      }
      const deliverer = new Deliverer(name, config, {
        store,
        route: () => this.#deps.routes().find((r) => r.name === name),
        logger: this.#deps.logger,
        delivered: (route, result) => { this.#deps.metrics.deferralDeliveries.inc({ route, result }) },
        random: this.#deps.random,
        idleMs: this.#deps.idleMs
      })
      this.#deliverers.set(name, deliverer)
      // Every series of the route exists from the start, so dashboards show 0 rather than nothing.
      for (const result of ['delivered', 'retry', 'dead', 'expired'] as const) this.#deps.metrics.deferralDeliveries.labels(name, result).inc(0)
      for (const injected of ['false', 'true']) this.#deps.metrics.deferralsAccepted.labels(name, injected).inc(0)
      deliverer.start()
    }
  }

  // DeferContext, for the defer steps of the routes.
  readonly storeOf = (): DeferralStore | undefined => this.#store

  wake (route: string): void {
    this.#deliverers.get(route)?.deferred()
  }

  accepted (route: string, injected: boolean): void {
    this.#deps.metrics.deferralsAccepted.inc({ route, injected: String(injected) })
  }

  deliverer (route: string): Deliverer | undefined {
    return this.#deliverers.get(route)
  }

  /** Queue figures per route that has entries or a deliverer (faultline_deferral_* gauges). */
  async stats (): Promise<Array<{ route: string, pending: number, dead: number, oldestAgeS: number }>> {
    const store = this.#store
    if (store === undefined) return []
    const now = Date.now()
    const names = new Set([...this.#deliverers.keys(), ...await store.routes()])
    const out = []
    for (const route of names) {
      const s = await store.stats(route, now)
      out.push({ route, pending: s.pending, dead: s.dead, oldestAgeS: s.oldestPendingAt === undefined ? 0 : Math.max(0, (now - s.oldestPendingAt) / 1000) })
    }
    return out
  }

  /** Shutdown begins: no delivery starts any more, the one in flight is aborted; the store still takes deferrals. */
  async stopDelivering (): Promise<void> {
    this.#stopping = true
    const deliverers = [...this.#deliverers.values()]
    this.#deliverers.clear()
    await Promise.all(deliverers.map(async (d) => { await d.stop() }))
  }

  async close (): Promise<void> {
    if (this.#closed) return
    await this.stopDelivering()
    this.#closed = true
    await this.#store?.close()
  }
}
