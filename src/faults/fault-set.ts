/**
 * A route's hand-written faults, as the admin API sees them: the armed
 * list with ids, each fault's schedule and end, the route's chaos switch
 * and its seeded random source. Built from config with the route; the
 * admin API changes it at runtime until the next reload replaces it.
 *
 * Nothing here chooses a fault for a request (stage.ts does) or plans one
 * (planned.ts); this is the list and its bookkeeping, Envoy's "fault
 * settings" beside its filter.
 */
import { randomInt } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Logger } from '../log.js'
import type { RouteMetrics } from '../metrics/route-metrics.js'
import { FaultlineError } from '../core/errors.js'
import { seededRandom } from '../util/random.js'
import { MAX_TIMER_MS } from '../util/timer.js'
import type { ArmedFault } from './armed.js'
import type { FaultSide } from './io.js'
import type { ChaosConfig, FaultConfig } from './schema.js'
import { createFault } from './registry.js'
import { compileMatch } from './match.js'
import { checkTriggerCaps, parseTrigger, type TriggerCaps } from './trigger.js'
import { chaosOffController } from './switch.js'
import { Schedule, isScheduled, systemClock, type Clock } from './schedule.js'

export interface FaultSetOptions {
  /** The clock schedules read (windows, until, ttl); tests inject one. */
  clock?: Clock
  /** Where an expired fault's audit line goes. */
  logger?: Logger
}

/** Distinct trigger header values whose schedules a route remembers (least recently seen forgotten first). */
const TRIGGER_SCHEDULES = 256

export class FaultSet {
  readonly route: string
  /** The route's faults at each side, in list order (refreshed on every change). */
  upstream: readonly ArmedFault[] = []
  client: readonly ArmedFault[] = []
  /** The earliest end (epoch ms) of a fault with `until` or `ttl`: the stage sweeps when it passes. */
  nextExpiry: number | undefined
  readonly clock: Clock

  private armed: ArmedFault[] = []
  private enabled: boolean
  private seed: number
  private randomSource: () => number
  private chaosOff = chaosOffController()
  private readonly metrics: RouteMetrics
  private readonly logger: Logger | undefined
  private readonly triggerCaps: TriggerCaps
  /** Trigger header faults with a schedule, per header value and side: counted per route, bounded. */
  private readonly triggerLists = new LRUCache<string, ArmedFault[]>({ max: TRIGGER_SCHEDULES })
  private expiryTimer: NodeJS.Timeout | undefined
  private disposed = false
  private readonly listeners: Array<() => void> = []

  constructor (route: string, config: ChaosConfig, metrics: RouteMetrics, options: FaultSetOptions = {}) {
    this.route = route
    this.metrics = metrics
    this.clock = options.clock ?? systemClock
    this.logger = options.logger
    this.enabled = config.enabled
    this.triggerCaps = { maxBytes: config.maxTriggerBytes }
    this.seed = config.seed ?? randomInt(0, 0xffffffff)
    this.randomSource = seededRandom(this.seed)
    // An unnamed fault's id is its kind (then kind-2, ...): never a name the config gives a later fault.
    const names = new Set(config.faults.flatMap((f) => (f.name === undefined ? [] : [f.name])))
    for (const fault of config.faults) this.armed.push(this.arm(fault, undefined, true, names))
    this.changed()
  }

  /** Called after every change of the list or the switch (the stage recomputes whether it is active). */
  onChange (listener: () => void): void {
    this.listeners.push(listener)
  }

  /** The route's seeded source: every random choice here comes from it, so a seed replays. */
  readonly random = (): number => this.randomSource()

  get isEnabled (): boolean { return this.enabled }

  /** Aborted when chaos is switched off on this route: a fault still waiting ends at once. */
  get chaosOffSignal (): AbortSignal { return this.chaosOff.signal }

  /** Switches chaos on or off here; off releases this route's in-flight delays and hangs. */
  setEnabled (enabled: boolean): void {
    if (enabled === this.enabled) return
    this.enabled = enabled
    if (enabled) this.chaosOff = chaosOffController()
    else this.chaosOff.abort()
    this.changed()
  }

  /** Restarts the random sequence from `seed`. */
  reseed (seed: number): void {
    this.seed = seed
    this.randomSource = seededRandom(seed)
  }

  get currentSeed (): number { return this.seed }

  /**
   * Arms a fault: its id (the admin handle and the metric label, one
   * string), the fault itself, its matchers and, when `scheduled`, its
   * schedule. Planned faults are armed here too, without a schedule.
   */
  arm (config: FaultConfig, id?: string, scheduled = true, reserved: ReadonlySet<string> = new Set()): ArmedFault {
    const faultId = config.name ?? id ?? (scheduled ? this.freeId(config.kind, reserved) : config.kind)
    // Bound up front, so the series exists (at 0) as soon as the fault is configured.
    if (config.kind !== 'none') this.metrics.faultInjected(faultId, 0)
    return {
      id: faultId,
      label: faultId,
      config,
      fault: createFault(config),
      matches: compileMatch(config.match),
      schedule: scheduled && isScheduled(config) ? new Schedule(config, this.clock) : undefined
    }
  }

  /**
   * A trigger header's faults at `side`. A header fault with a schedule
   * gets this route's own count for this header value (a shared one would
   * let one route's requests use up another's `first`). Throws TriggerError.
   */
  triggered (header: string, side: FaultSide): ArmedFault[] {
    const key = side + header
    let list = this.triggerLists.get(key)
    if (list === undefined) {
      const parsed = parseTrigger(header)
      checkTriggerCaps(parsed, this.triggerCaps)
      list = parsed.filter((f) => f.config.at === side)
        .map((f) => (isScheduled(f.config) ? { ...f, schedule: new Schedule(f.config, this.clock) } : f))
      this.triggerLists.set(key, list)
    }
    return list
  }

  /** The faults with their ids, and what remains of each one's schedule. */
  list (): Array<{ id: string } & FaultConfig> {
    this.sweepIfDue()
    return this.armed.map((f) => (f.schedule === undefined ? { id: f.id, ...f.config } : { id: f.id, ...f.config, schedule: f.schedule.state() }))
  }

  get size (): number { return this.armed.length }

  get (id: string): ArmedFault | undefined {
    return this.armed.find((f) => f.id === id)
  }

  /** Adds a fault at the end; throws DuplicateFaultError if its name is taken. */
  add (config: FaultConfig): ArmedFault {
    this.assertFreeName(config.name, undefined)
    const armed = this.arm(config)
    this.assertNotEnded(armed)
    this.armed = [...this.armed, armed]
    this.changed()
    return armed
  }

  /** Replaces a fault in place; its id becomes the new name, if it has one. Undefined when there is no such fault. */
  replace (id: string, config: FaultConfig): ArmedFault | undefined {
    const index = this.armed.findIndex((f) => f.id === id)
    if (index === -1) return undefined
    this.assertFreeName(config.name, id)
    const armed = this.arm(config, id)
    this.assertNotEnded(armed)
    this.armed = this.armed.map((f, i) => (i === index ? armed : f))
    this.changed()
    return armed
  }

  remove (id: string): boolean {
    const before = this.armed.length
    this.armed = this.armed.filter((f) => f.id !== id)
    if (this.armed.length === before) return false
    this.changed()
    return true
  }

  /**
   * Restarts a fault's counts, window and ttl (`id`), or every schedule on
   * the route, trigger headers' included (no `id`). False when there is no
   * such fault.
   */
  resetSchedule (id?: string): boolean {
    if (id === undefined) {
      for (const f of this.armed) f.schedule?.reset()
      this.triggerLists.clear()
    } else {
      const f = this.get(id)
      if (f === undefined) return false
      f.schedule?.reset()
    }
    this.armExpiry()
    return true
  }

  /** Removes the faults whose end has passed, if one has (the stage calls this before choosing). */
  sweepIfDue (): void {
    if (this.nextExpiry !== undefined && this.clock() >= this.nextExpiry) this.sweep()
  }

  /** The route is gone (reload, shutdown): its expiry timer with it. */
  dispose (): void {
    this.disposed = true
    clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
  }

  /** The kind, or kind-2, kind-3, ...: the first not taken by an armed fault or a reserved name. */
  private freeId (kind: string, reserved: ReadonlySet<string>): string {
    const taken = (candidate: string): boolean => reserved.has(candidate) || this.armed.some((f) => f.id === candidate)
    if (!taken(kind)) return kind
    let n = 2
    while (taken(`${kind}-${n}`)) n++
    return `${kind}-${n}`
  }

  private changed (): void {
    this.armExpiry()
    this.upstream = this.armed.filter((f) => f.config.at === 'upstream')
    this.client = this.armed.filter((f) => f.config.at === 'client')
    for (const listener of this.listeners) listener()
  }

  /** Removes every fault whose `until` or `ttl` has passed: an audit line and a metric each. */
  private sweep (): void {
    const now = this.clock()
    const expired = this.armed.filter((f) => { const at = f.schedule?.expiresAt; return at !== undefined && now >= at })
    if (expired.length > 0) {
      this.armed = this.armed.filter((f) => !expired.includes(f))
      for (const f of expired) {
        this.metrics.faultExpired(f.label)
        this.logger?.info({ audit: 'chaos.fault.expire', route: this.route, id: f.id, fault: f.label, until: f.config.until, ttl: f.config.ttl }, `chaos: fault ${f.id} on route ${this.route} expired and was removed`)
      }
    }
    this.changed()
  }

  /**
   * Keeps one timer on the earliest end, so an expired fault is removed
   * (and audited) on time even without traffic; the stage checks too, so a
   * late timer never lets a fault outlive its end.
   */
  private armExpiry (): void {
    let next: number | undefined
    for (const f of this.armed) {
      const at = f.schedule?.expiresAt
      if (at !== undefined && (next === undefined || at < next)) next = at
    }
    this.nextExpiry = next
    clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
    if (next === undefined || this.disposed) return
    // At least 10 ms: an injected clock that stands still must not spin the timer.
    this.expiryTimer = setTimeout(() => { this.sweep() }, Math.min(MAX_TIMER_MS, Math.max(10, next - this.clock())))
    this.expiryTimer.unref()
  }

  /** A fault added at runtime whose `until` has already passed would be removed at once: refused instead. */
  private assertNotEnded (armed: ArmedFault): void {
    const at = armed.schedule?.expiresAt
    if (at !== undefined && this.clock() >= at) throw new EndedFaultError(armed.config.until ?? '')
  }

  private assertFreeName (name: string | undefined, except: string | undefined): void {
    if (name !== undefined && this.armed.some((f) => f.id === name && f.id !== except)) throw new DuplicateFaultError(name)
  }
}

export class DuplicateFaultError extends FaultlineError {
  constructor (name: string) {
    super('duplicate_fault', `a fault named "${name}" already exists on this route`)
    this.name = 'DuplicateFaultError'
  }
}

export class EndedFaultError extends FaultlineError {
  constructor (until: string) {
    super('invalid_fault', `until: expected a time in the future, got ${JSON.stringify(until)}`)
    this.name = 'EndedFaultError'
  }
}
