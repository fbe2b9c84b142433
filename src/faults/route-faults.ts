/**
 * A route's chaos: its faults with their envelopes, its seeded random
 * source, the upstream-side fault stage (a Policy) and the switch for the
 * client-side seam. Built from config with the route; the admin API
 * changes it at runtime until the next reload replaces it.
 *
 * Choosing: faults are tried in list order and each rolls its own
 * probability; every one that fires is applied, stacked in list order
 * (first outermost), as Toxiproxy stacks toxics. A trigger header, where
 * allowed, replaces the configured faults for its request. A fault with a
 * schedule (schedule.ts) is counted after its matchers and before its
 * probability; one with an end (`until`, `ttl`) is removed when it ends.
 */
import { randomInt } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Logger } from '../log.js'
import type { RequestContext } from '../core/context.js'
import type { Policy, UpstreamCall, UpstreamResponse } from '../core/pipeline.js'
import type { RouteMetrics } from '../metrics/route-metrics.js'
import type { ChaosStatus } from '../metrics/metrics.js'
import { seededRandom } from '../util/random.js'
import type { ArmedFault } from './armed.js'
import type { FaultSide } from './io.js'
import type { ChaosConfig, FaultConfig } from './schema.js'
import { createFault } from './registry.js'
import { compileMatch } from './match.js'
import { ClientSideIO, UpstreamSideIO, type ChaosLink, type FaultIO } from './io.js'
import { TRIGGER_HEADER, TriggerError, checkTriggerCaps, parseTrigger, type TriggerCaps } from './trigger.js'
import { releaser, type ChaosSwitch } from './switch.js'
import { Schedule, isScheduled, systemClock, type Clock } from './schedule.js'
import { MAX_TIMER_MS } from '../util/timer.js'
import { FaultlineError } from '../core/errors.js'

interface Inc { inc: (value?: number) => void }

export interface RouteFaultsOptions {
  /** The clock schedules read (windows, until, ttl); tests inject one. */
  clock?: Clock
  /** Where an expired fault's audit line goes. */
  logger?: Logger
}

/** Distinct trigger header values whose schedules a route remembers (least recently seen forgotten first). */
const TRIGGER_SCHEDULES = 256

export class RouteFaults {
  readonly route: string
  readonly allowHeaderTriggers: boolean
  /** What a trigger header may set on this route. */
  private readonly triggerCaps: TriggerCaps
  readonly exposeHeaders: boolean
  /** The upstream-side stage, innermost in the route's pipeline while `active`. */
  readonly stage: Policy
  /**
   * True while a client-side fault or a trigger header could fire here;
   * the listener's one check per request before it takes the client seam.
   */
  clientSide = false
  /** True while the upstream-side stage has anything to do (else it is left out of the chain). */
  active = false

  private enabled: boolean
  private seed: number
  private random: () => number
  private armed: ArmedFault[] = []
  private upstreamFaults: ArmedFault[] = []
  private clientFaults: ArmedFault[] = []
  private release = releaser()
  private readonly counters = new Map<string, Inc>()
  private readonly metrics: RouteMetrics
  private readonly chaosSwitch: ChaosSwitch
  private readonly upstreamIO: FaultIO
  readonly clientIO: FaultIO
  private activeChanged: (() => void) | undefined
  /** Faults planned from the intent: one weighted pick per roll, under a hard budget cap. */
  private planned: ArmedFault[] = []
  private plannedCumulative: number[] = []
  private plannedProbability = 0
  private plannedBudget = 0
  /** First attempts seen and planned injections made since the plan's budget was set. */
  private plannedSeen = 0
  private plannedInjected = 0
  /** chaos.maxShare and its books: requests seen and touched by any fault. */
  private readonly maxShare: number
  private shareSeen = 0
  private shareTouched = 0
  /** The intent engine's guardrail holds all injection here. */
  private halted = false
  private readonly clock: Clock
  private readonly logger: Logger | undefined
  /** The earliest end (epoch ms) of a fault with `until` or `ttl`, and the timer that removes it then. */
  private nextExpiry: number | undefined
  private expiryTimer: NodeJS.Timeout | undefined
  private disposed = false
  /** Trigger header faults with a schedule, per header value and side: counted per route, bounded. */
  private readonly triggerLists = new LRUCache<string, ArmedFault[]>({ max: TRIGGER_SCHEDULES })

  constructor (route: string, config: ChaosConfig, metrics: RouteMetrics, chaosSwitch: ChaosSwitch, options: RouteFaultsOptions = {}) {
    this.route = route
    this.metrics = metrics
    this.chaosSwitch = chaosSwitch
    this.clock = options.clock ?? systemClock
    this.logger = options.logger
    this.enabled = config.enabled
    this.maxShare = config.maxShare
    this.allowHeaderTriggers = config.allowHeaderTriggers
    this.triggerCaps = { maxBytes: config.maxTriggerBytes }
    this.exposeHeaders = config.exposeHeaders
    this.seed = config.seed ?? randomInt(0, 0xffffffff)
    this.random = seededRandom(this.seed)
    const link: ChaosLink = {
      random: () => this.random(),
      routeRelease: () => this.release.signal,
      chaosSwitch,
      metrics
    }
    this.upstreamIO = new UpstreamSideIO(link)
    this.clientIO = new ClientSideIO(link)
    // An unnamed fault's id is its kind (then kind-2, ...): never a name the config gives a later fault.
    const names = new Set(config.faults.flatMap((f) => (f.name === undefined ? [] : [f.name])))
    for (const fault of config.faults) this.armed.push(this.arm(fault, undefined, true, names))
    this.stage = {
      name: 'faults',
      // Not async: with no fault chosen (the common case) the attempt's own promise is handed back.
      execute: (ctx, next) => {
        const chosen = this.choose(ctx, 'upstream')
        return chosen === undefined ? next(ctx) : this.inject(ctx, chosen, next, this.upstreamIO)
      },
      state: () => this.state(),
      dispose: () => { this.dispose() }
    }
    this.refresh()
  }

  /** Called when `active` changes: the route recomposes its pipeline. */
  onActiveChange (listener: () => void): void {
    this.activeChanged = listener
  }

  /**
   * The faults that fire for this exchange at `side`, or undefined (the
   * common case, allocation-free). Throws TriggerError for a bad trigger header.
   */
  choose (ctx: RequestContext, side: FaultSide): ArmedFault[] | undefined {
    if (this.nextExpiry !== undefined && this.clock() >= this.nextExpiry) this.sweep()
    // The guardrail halt, like the kill switch, stops every fault: hand-written and triggered ones too.
    if (!this.enabled || !this.chaosSwitch.enabled || this.halted) return undefined
    let list = side === 'upstream' ? this.upstreamFaults : this.clientFaults
    if (this.allowHeaderTriggers) {
      const header = ctx.req.headers[TRIGGER_HEADER]
      if (typeof header === 'string') {
        try {
          list = this.triggered(header, side)
        } catch (err) {
          // The client seam answers a bad header with a 400 before the pipeline runs.
          if (side === 'client' || !(err instanceof TriggerError)) throw err
          return undefined
        }
      }
    }
    let chosen: ArmedFault[] | undefined
    for (const f of list) {
      if (f.matches !== undefined && !f.matches(ctx)) continue
      // After the matchers (only matching exchanges are counted), before the dice (a count is exact, not a draw).
      if (f.schedule !== undefined && !f.schedule.admits(ctx)) continue
      const p = f.config.probability
      if (p < 1 && (p <= 0 || this.random() >= p)) continue
      (chosen ??= []).push(f)
    }
    if (side === 'upstream' && this.plannedProbability > 0 && list === this.upstreamFaults) {
      const planned = this.choosePlanned(ctx)
      if (planned !== undefined) (chosen ??= []).push(planned)
    }
    const result = this.maxShare < 1 ? this.withinShare(ctx, chosen) : chosen
    // chaos.fleetBudget: each fault costs a token of the fleet's bucket (src/fleet/budget.ts); none left, none injected.
    if (result !== undefined && this.fleetBudget !== undefined && !this.fleetBudget.take()) return undefined
    return result
  }

  /** chaos.fleetBudget's tokens, set by the route when the config has one. */
  fleetBudget: { take: () => boolean } | undefined

  /**
   * chaos.maxShare: `chosen` only while the share of this route's requests
   * touched by any fault stays within the cap. Per request: every attempt
   * of a request already touched may be faulted again, and a retry neither
   * counts as a new request nor starts the count afresh.
   */
  private withinShare (ctx: RequestContext, chosen: ArmedFault[] | undefined): ArmedFault[] | undefined {
    if (!ctx.chaosCounted) {
      ctx.chaosCounted = true
      this.shareSeen++
    }
    if (chosen === undefined || ctx.chaosTouched) return chosen
    if (this.shareTouched + 1 > this.maxShare * this.shareSeen) return undefined
    this.shareTouched++
    ctx.chaosTouched = true
    return chosen
  }

  /**
   * Set by the route's intent engine: while its guardrail holds, nothing is
   * injected here, whatever its origin (docs/INTENT.md).
   */
  setHalted (halted: boolean): void {
    this.halted = halted
  }

  /**
   * A trigger header's faults at `side`. A header fault with a schedule
   * gets this route's own count for this header value (a shared one would
   * let one route's requests use up another's `first`).
   */
  private triggered (header: string, side: FaultSide): ArmedFault[] {
    const parsed = parseTrigger(header)
    const key = side + header
    let list = this.triggerLists.get(key)
    if (list === undefined) {
      checkTriggerCaps(parsed, this.triggerCaps)
      list = parsed.filter((f) => f.config.at === side)
        .map((f) => (isScheduled(f.config) ? { ...f, schedule: new Schedule(f.config, this.clock) } : f))
      this.triggerLists.set(key, list)
    }
    return list
  }

  /**
   * One planned fault, or none: a roll against the plan's probability, then
   * a weighted pick. The budget is a hard cap on planned injections per
   * request (first attempts), so a lucky streak can never exceed it.
   */
  private choosePlanned (ctx: RequestContext): ArmedFault | undefined {
    // The upstream-side stage runs inside the attempt timeout, which has counted this attempt already.
    if (ctx.attempts === 1) this.plannedSeen++
    if (this.random() >= this.plannedProbability) return undefined
    if (this.plannedInjected + 1 > this.plannedBudget * this.plannedSeen) return undefined
    const pick = this.random() * this.plannedCumulative[this.plannedCumulative.length - 1]!
    let i = 0
    while (i < this.plannedCumulative.length - 1 && pick >= this.plannedCumulative[i]!) i++
    this.plannedInjected++
    return this.planned[i]
  }

  /**
   * Replaces the planned faults (the intent engine calls this once per
   * evaluation window). `probability` is the per-request chance of a planned
   * fault; `budget` the cap on the share of requests that get one.
   */
  setPlan (entries: ReadonlyArray<{ config: FaultConfig, weight: number }>, probability: number, budget: number): void {
    // Planned faults keep their probability and budget only: a schedule is for hand-written ones.
    this.planned = entries.map((e) => this.arm(e.config, undefined, false))
    let sum = 0
    this.plannedCumulative = entries.map((e) => (sum += e.weight))
    this.plannedProbability = entries.length > 0 ? Math.min(probability, budget) : 0
    if (budget !== this.plannedBudget) {
      this.plannedBudget = budget
      this.plannedSeen = 0
      this.plannedInjected = 0
    }
    this.refresh()
  }

  /** Planned injections against first attempts since the budget was set: the cap's own books. */
  plannedBooks (): { seen: number, injected: number, probability: number, budget: number } {
    return { seen: this.plannedSeen, injected: this.plannedInjected, probability: this.plannedProbability, budget: this.plannedBudget }
  }

  /**
   * Applies the chosen faults around `next`, first outermost. Each is
   * recorded when it starts to act: behind an abort, a stacked fault never
   * runs and is not counted.
   */
  async inject (ctx: RequestContext, chosen: ArmedFault[], next: UpstreamCall, io: FaultIO): Promise<UpstreamResponse> {
    let call = next
    for (let i = chosen.length - 1; i >= 0; i--) {
      const f = chosen[i]!
      const inner = call
      call = async (c) => {
        this.record(c, f, io.at)
        return await f.fault.apply(c, inner, io)
      }
    }
    return await call(ctx)
  }

  private record (ctx: RequestContext, f: ArmedFault, side: FaultSide): void {
    // "No fault" is chosen like a fault but injects nothing: not counted, not named.
    if (f.config.kind === 'none') return
    // The containment mark: this attempt's outcome belongs to this route's policies only.
    if (side === 'upstream') ctx.attemptInjected = true
    else ctx.injectedElsewhere = true
    this.counter(f.label).inc()
    ctx.fault = ctx.fault === undefined ? f.label : `${ctx.fault},${f.label}`
  }

  private counter (label: string): Inc {
    let child = this.counters.get(label)
    if (child === undefined) {
      child = this.metrics.metrics.faultsInjected.labels(this.route, label)
      // prom-client creates a series on its first inc: start at 0, so dashboards show it before the first injection.
      child.inc(0)
      this.counters.set(label, child)
    }
    return child
  }

  /** The kind, or kind-2, kind-3, ...: the first not taken by an armed fault or a reserved name. */
  private freeId (kind: string, reserved: ReadonlySet<string>): string {
    const taken = (candidate: string): boolean => reserved.has(candidate) || this.armed.some((f) => f.id === candidate)
    if (!taken(kind)) return kind
    let n = 2
    while (taken(`${kind}-${n}`)) n++
    return `${kind}-${n}`
  }

  private arm (config: FaultConfig, id?: string, scheduled = true, reserved: ReadonlySet<string> = new Set()): ArmedFault {
    // The admin id and the metric label are one string, so /routes, /metrics and logs name a fault alike.
    const faultId = config.name ?? id ?? (scheduled ? this.freeId(config.kind, reserved) : config.kind)
    const label = faultId
    // Bound up front, so the series exists (at 0) as soon as the fault is configured.
    if (config.kind !== 'none') this.counter(label)
    return {
      id: faultId,
      label,
      config,
      fault: createFault(config),
      matches: compileMatch(config.match),
      schedule: scheduled && isScheduled(config) ? new Schedule(config, this.clock) : undefined
    }
  }

  private refresh (): void {
    this.armExpiry()
    this.upstreamFaults = this.armed.filter((f) => f.config.at === 'upstream')
    this.clientFaults = this.armed.filter((f) => f.config.at === 'client')
    const active = this.enabled && (this.upstreamFaults.length > 0 || this.allowHeaderTriggers || this.plannedProbability > 0)
    this.clientSide = this.enabled && (this.clientFaults.length > 0 || this.allowHeaderTriggers)
    if (active !== this.active) {
      this.active = active
      this.activeChanged?.()
    }
  }

  // ---- runtime control (admin API) ----

  get isEnabled (): boolean { return this.enabled }

  /**
   * For connection-level faults (WebSocket upgrades, src/proxy/upgrade.ts):
   * true when one with `probability` fires now, under the same kill switch,
   * route switch, guardrail and seeded source as every other fault here.
   */
  rollConnectionFault (probability: number): boolean {
    if (!this.enabled || !this.chaosSwitch.enabled || this.halted) return false
    return probability >= 1 || (probability > 0 && this.random() < probability)
  }

  /** Abort when chaos is switched off here or by the kill switch: a fault still waiting ends at once. */
  get releaseSignals (): readonly AbortSignal[] { return [this.release.signal, this.chaosSwitch.releaseSignal] }

  /** True while faults may be injected here: the route's chaos and the kill switch are both on. */
  get injecting (): boolean { return this.enabled && this.chaosSwitch.enabled }

  /** Switches chaos on or off here; off releases this route's in-flight delays and hangs. */
  setEnabled (enabled: boolean): void {
    if (enabled === this.enabled) return
    this.enabled = enabled
    if (enabled) this.release = releaser()
    else this.release.abort()
    this.refresh()
  }

  /** Restarts the random sequence from `seed`. */
  reseed (seed: number): void {
    this.seed = seed
    this.random = seededRandom(seed)
  }

  /** The faults with their ids, and what remains of each one's schedule. */
  list (): Array<{ id: string } & FaultConfig> {
    if (this.nextExpiry !== undefined && this.clock() >= this.nextExpiry) this.sweep()
    return this.armed.map((f) => (f.schedule === undefined ? { id: f.id, ...f.config } : { id: f.id, ...f.config, schedule: f.schedule.state() }))
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

  /** Removes every fault whose `until` or `ttl` has passed: an audit line and a metric each. */
  private sweep (): void {
    const now = this.clock()
    const expired = this.armed.filter((f) => { const at = f.schedule?.expiresAt; return at !== undefined && now >= at })
    if (expired.length > 0) {
      this.armed = this.armed.filter((f) => !expired.includes(f))
      for (const f of expired) {
        this.metrics.metrics.faultsExpired.labels(this.route, f.label).inc()
        this.logger?.info({ audit: 'chaos.fault.expire', route: this.route, id: f.id, fault: f.label, until: f.config.until, ttl: f.config.ttl }, `chaos: fault ${f.id} on route ${this.route} expired and was removed`)
      }
    }
    this.refresh()
  }

  /**
   * Keeps one timer on the earliest end, so an expired fault is removed
   * (and audited) on time even without traffic; choose() checks too, so a
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

  /** The route is gone (reload, shutdown): its expiry timer with it. */
  dispose (): void {
    this.disposed = true
    clearTimeout(this.expiryTimer)
    this.expiryTimer = undefined
  }

  get (id: string): ArmedFault | undefined {
    return this.armed.find((f) => f.id === id)
  }

  /** Adds a fault at the end; throws DuplicateFault if its name is taken. */
  add (config: FaultConfig): ArmedFault {
    this.assertFreeName(config.name, undefined)
    const armed = this.arm(config)
    this.assertNotEnded(armed)
    this.armed = [...this.armed, armed]
    this.refresh()
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
    this.refresh()
    return armed
  }

  remove (id: string): boolean {
    const before = this.armed.length
    this.armed = this.armed.filter((f) => f.id !== id)
    if (this.armed.length === before) return false
    this.refresh()
    return true
  }

  /** A fault added at runtime whose `until` has already passed would be removed at once: refused instead. */
  private assertNotEnded (armed: ArmedFault): void {
    const at = armed.schedule?.expiresAt
    if (at !== undefined && this.clock() >= at) throw new EndedFault(armed.config.until ?? '')
  }

  private assertFreeName (name: string | undefined, except: string | undefined): void {
    if (name !== undefined && this.armed.some((f) => f.id === name && f.id !== except)) throw new DuplicateFault(name)
  }

  /** Whether this route injects now and why (faultline_chaos_active); `halted`: its intent engine's guardrail holds planned chaos. */
  status (halted: boolean): ChaosStatus {
    if (!this.enabled) return { active: false, reason: 'disabled' }
    if (!this.chaosSwitch.enabled) return { active: false, reason: 'kill_switch' }
    // A guardrail halt holds every fault, hand-written ones too (issue 12).
    if (halted || this.halted) return { active: false, reason: 'guardrail' }
    if (this.plannedProbability > 0) return { active: true, reason: 'planned' }
    if (this.armed.length > 0) return { active: true, reason: 'faults' }
    if (this.allowHeaderTriggers) return { active: true, reason: 'header_triggers' }
    return { active: false, reason: halted ? 'guardrail' : 'idle' }
  }

  state (): Record<string, unknown> {
    const injecting = this.enabled && this.chaosSwitch.enabled
    return {
      enabled: this.enabled,
      killSwitch: this.chaosSwitch.enabled ? 'on' : 'off',
      injecting: this.enabled && this.chaosSwitch.enabled,
      seed: this.seed,
      allowHeaderTriggers: this.allowHeaderTriggers,
      exposeHeaders: this.exposeHeaders,
      // effectiveProbability: the chance a request gets this fault now (0 while chaos is off or killed).
      faults: this.list().map((f) => ({ ...f, effectiveProbability: injecting ? f.probability : 0 })),
      // A planned fault's own probability is a placeholder (1): the real one is the plan's times its weight share.
      planned: this.planned.map((f, i) => {
        const total = this.plannedCumulative[this.plannedCumulative.length - 1] ?? 0
        const share = total === 0 ? 0 : ((this.plannedCumulative[i] ?? 0) - (this.plannedCumulative[i - 1] ?? 0)) / total
        return { ...f.config, id: f.id, probability: undefined, weight: share, effectiveProbability: injecting ? this.plannedProbability * share : 0 }
      }),
      plannedProbability: this.plannedProbability
    }
  }
}

export class DuplicateFault extends FaultlineError {
  constructor (name: string) {
    super('duplicate_fault', `a fault named "${name}" already exists on this route`)
    this.name = 'DuplicateFault'
  }
}

export class EndedFault extends FaultlineError {
  constructor (until: string) {
    super('invalid_fault', `until: expected a time in the future, got ${JSON.stringify(until)}`)
    this.name = 'EndedFault'
  }
}
