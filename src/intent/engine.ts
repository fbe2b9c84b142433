/**
 * The intent engine of one route: it watches the client-visible SLO,
 * moves the chaos level once per evaluation window (the controller) and
 * hands the route's faults the plan built for that level. It also keeps
 * the books an experiment report is made from.
 *
 * Modes: `intent` (planned mix, calibrated, guardrail on), `uniform` (every
 * kind equally likely at a fixed severity and the full budget: what most
 * chaos tools do; no guardrail, so its collateral shows) and `off`.
 */
import type { PlannedFaults } from '../faults/planned.js'
import type { FaultConfig } from '../faults/schema.js'
import { faultSchema } from '../faults/registry.js'
import type { Metrics } from '../metrics/metrics.js'
import { IntensityController, headroom, type ControllerEvent, type ControllerReport, type ControllerState } from './controller.js'
import { planFor, uniformPlan, type FaultPlan } from './planner.js'
import type { ControllerConfig, Intent } from './schema.js'
import { SloTracker, type SloSnapshot } from './slo-tracker.js'
import type { FleetReading, SourceReason } from '../fleet/prometheus-source.js'

export type ChaosMode = 'intent' | 'uniform' | 'off'

/** What the caller saw for requests a given fault was injected into. */
export interface FaultBooks {
  /** Requests that carried this fault (a request may carry several). */
  requests: number
  /** Of those, answered with a failure the caller saw. */
  surfaced: number
  /** Injected faults of this label before the first surfaced failure, if any surfaced. */
  toFirstSurfaced: number | undefined
}

export interface EngineBooks {
  requests: number
  surfaced: number
  windows: number
  windowsWithinSlo: number
  windowsBreached: number
  /** Windows that ended with fewer client requests than controller.minRequests: not judged. */
  windowsTooFew: number
  byFault: Map<string, FaultBooks>
  /** Level at the start of each evaluation window (bounded). */
  levels: number[]
  /** One point per evaluation window (bounded like levels): what the report's charts draw. */
  timeline: WindowPoint[]
}

export interface WindowPoint {
  level: number
  /** SLO headroom of the window's client-visible figures (negative: breached); null when not judged. */
  headroom: number | null
  requests: number
  /** Requests given a fault in the window. */
  injected: number
}

const MAX_LEVEL_HISTORY = 720
/** The status page's sparklines: the last 15 minutes of windows, in memory, bounded. */
const HISTORY_MS = 15 * 60_000
const MAX_HISTORY_POINTS = 900

/** One evaluation window for the status page. Failures the caller saw are split: injected (a fault was in the request) and real. */
export interface HistoryPoint {
  at: number
  level: number
  /** null when the window had no request. */
  headroom: number | null
  requests: number
  realErrorRate: number
  injectedErrorRate: number
  p99Ms: number
}

function emptyBooks (): EngineBooks {
  return { requests: 0, surfaced: 0, windows: 0, windowsWithinSlo: 0, windowsBreached: 0, windowsTooFew: 0, byFault: new Map(), levels: [], timeline: [] }
}

/** A route's intent in GET /routes, as IntentEngine.snapshot builds it. */
export type IntentSnapshot = ReturnType<IntentEngine['snapshot']>

export class IntentEngine {
  readonly route: string
  readonly intent: Intent
  /** True when the route declared its intent (uniform experiments also cover routes that did not). */
  readonly declared: boolean
  readonly budget: number
  readonly plan: FaultPlan
  private readonly uniform: FaultPlan
  private readonly faults: PlannedFaults
  private readonly metrics: Metrics
  private controller: IntensityController
  private readonly settings: ControllerConfig
  /** The SLO as declared: over intent.slo.windowMs, for the gauges and the report. */
  private readonly slo: SloTracker
  /** The current evaluation window's figures. */
  private readonly window: SloTracker
  private modeValue: ChaosMode
  private books = emptyBooks()
  /** Requests in the current evaluation window that carried an injected fault. */
  private windowInjected = 0
  /** Caller-visible failures this window, with and without an injected fault. */
  private windowFailedInjected = 0
  private windowFailedReal = 0
  /** Ring of the last HISTORY_MS of windows (at most MAX_HISTORY_POINTS; a reload starts a new one). */
  private readonly historyRing: HistoryPoint[] = []
  /** mode + level of the plan last handed to the faults: re-planned only when it changes. */
  private applied = ''
  /** With controller.source prometheus: why the fleet's figures are unusable now (planned injection stops), or undefined. */
  private sourceDownReason: Exclude<SourceReason, 'ok'> | undefined
  /**
   * Fleet control (src/fleet/levels.ts): this replica's part in the route's
   * one fleet level; undefined when the instance works alone. A follower
   * does not move the level itself: it adopts the evaluating replica's,
   * and judges its own window only to halt the fleet on a breach.
   */
  fleet: { role: 'evaluates' | 'follows' | 'local', evaluatedBy: string | undefined } | undefined
  /** The Prometheus scrape the controller last judged: a window with no newer one judges nothing. */
  private judgedScrape: number | undefined

  constructor (route: string, intent: Intent, declared: boolean, budget: number, faults: PlannedFaults, metrics: Metrics, settings: ControllerConfig, mode: ChaosMode) {
    this.route = route
    this.intent = intent
    this.declared = declared
    this.budget = budget
    this.faults = faults
    this.metrics = metrics
    this.settings = settings
    this.plan = planFor(intent, settings)
    this.uniform = uniformPlan(intent, settings)
    this.controller = new IntensityController(this.plan.controller, intent.slo)
    this.slo = new SloTracker(intent.slo.windowMs)
    // One slice that never rotates on its own: tick() empties it at the end of each window.
    this.window = new SloTracker(Infinity, { slices: 1 })
    this.modeValue = mode
    // The fleet's figures are judged from the first window on: until they are read, nothing planned is injected.
    if (settings.source === 'prometheus') this.sourceDownReason = 'empty'
    metrics.sloTargetP99.labels(route).set(intent.slo.p99Ms / 1000)
    metrics.sloTargetErrorRate.labels(route).set(intent.slo.errorRate)
    metrics.guardrailHalts.labels(route).inc(0)
    this.apply()
  }

  get mode (): ChaosMode { return this.modeValue }
  get level (): number { return this.modeValue === 'intent' ? this.controller.level : this.modeValue === 'uniform' ? 1 : 0 }
  /** Why planned injection is stopped for want of fleet figures (controller.source prometheus), if it is. */
  get sourceDown (): Exclude<SourceReason, 'ok'> | undefined { return this.modeValue === 'intent' ? this.sourceDownReason : undefined }

  /** One finished client request (the hot path: counters and two histogram records). */
  record (durationMs: number, surfaced: boolean, fault: string | undefined): void {
    this.slo.record(durationMs, surfaced)
    this.window.record(durationMs, surfaced)
    const b = this.books
    b.requests++
    if (surfaced) b.surfaced++
    if (surfaced) { if (fault === undefined) this.windowFailedReal++; else this.windowFailedInjected++ }
    if (fault === undefined) return
    this.windowInjected++
    for (const label of fault.split(',')) {
      let f = b.byFault.get(label)
      if (f === undefined) { f = { requests: 0, surfaced: 0, toFirstSurfaced: undefined }; b.byFault.set(label, f) }
      f.requests++
      if (surfaced) {
        f.surfaced++
        f.toFirstSurfaced ??= f.requests
      }
    }
  }

  /**
   * One evaluation window ended: judge it, move the level, apply the plan.
   * `fleet` (controller.source prometheus) replaces the local window as what
   * the controller judges; the local window still feeds the books and gauges.
   */
  tick (now: number, fleet?: FleetReading): ControllerEvent | undefined {
    const figures = this.window.snapshot()
    this.window.reset()
    const slo = this.slo.snapshot()
    this.metrics.sloP99.labels(this.route).set(slo.p99Ms / 1000)
    this.metrics.sloErrorRate.labels(this.route).set(slo.errorRate)
    const b = this.books
    // The level the window ran at, before this judgement moves it.
    const ranAt = this.level
    if (b.levels.length < MAX_LEVEL_HISTORY) b.levels.push(ranAt)
    if (figures.requests >= this.settings.minRequests) {
      b.windows++
      if (headroom(figures, this.intent.slo) > 0) b.windowsWithinSlo++
      else b.windowsBreached++
    } else {
      b.windowsTooFew++
    }
    const injected = this.windowInjected
    this.windowInjected = 0
    this.remember(figures)
    if (b.timeline.length < MAX_LEVEL_HISTORY) {
      const judged = figures.requests >= this.settings.minRequests
      b.timeline.push({ level: ranAt, headroom: judged ? Math.round(headroom(figures, this.intent.slo) * 1000) / 1000 : null, requests: figures.requests, injected })
    }
    if (this.modeValue !== 'intent') return undefined
    if (fleet !== undefined && !fleet.ok) {
      // No fleet figures to judge: fail safe. The level holds (nothing was judged) and the plan is empty until they are back.
      this.sourceDownReason = fleet.reason
      this.apply()
      return { type: 'source_down', level: this.level, reason: fleet.reason }
    }
    if (this.sourceDownReason !== undefined) {
      this.sourceDownReason = undefined
      this.apply()
    }
    // Chaos off (kill switch, route disabled, no budget): hold the level and judge nothing, so
    // turning chaos back on resumes where it stopped instead of at a level never tried.
    if (!this.faults.injecting || this.budget === 0) return { type: 'paused', level: this.level }
    // No scrape since the last judged window (a 15 s scrape, a 5 s window): the same figures again.
    // Judging them again would step the level up on one healthy sample several times over.
    if (fleet !== undefined && fleet.figures.scrapedAt === this.judgedScrape) return { type: 'unchanged', level: this.level }
    if (fleet !== undefined) this.judgedScrape = fleet.figures.scrapedAt
    const judged = fleet?.figures ?? figures
    // Nothing injected, yet the SLO broke: the upstream failed on its own. Not a chaos breach: no
    // guardrail halt, no disabling level; the level holds until the upstream recovers.
    // Fleet: fewer than half a request injected per window across the fleet is nothing injected.
    const nothingInjected = fleet !== undefined ? fleet.figures.injected < 0.5 : injected === 0
    if (nothingInjected && judged.requests >= this.settings.minRequests) {
      const h = headroom(judged, this.intent.slo)
      if (h <= 0) return { type: 'upstream_breach', level: this.level, headroom: h }
    }
    // A follower leaves the level to the evaluating replica, but a breach it sees halts the route (and the fleet).
    if (this.fleet?.role === 'follows' && !(judged.requests >= this.settings.minRequests && headroom(judged, this.intent.slo) <= 0) &&
      this.controller.report(now).halted === false) {
      return { type: 'following', level: this.level }
    }
    const event = this.controller.evaluate(judged, now)
    if (event.type === 'breach') this.metrics.guardrailHalts.labels(this.route).inc()
    // The halt holds every fault on the route, hand-written ones too, until the cool-down ends.
    this.faults.setHalted(event.type === 'breach' || event.type === 'halted')
    this.apply()
    return event
  }

  private remember (figures: SloSnapshot): void {
    const n = figures.requests
    this.historyRing.push({
      at: Date.now(),
      level: this.level,
      headroom: n === 0 ? null : Math.round(headroom(figures, this.intent.slo) * 1000) / 1000,
      requests: n,
      realErrorRate: n === 0 ? 0 : this.windowFailedReal / n,
      injectedErrorRate: n === 0 ? 0 : this.windowFailedInjected / n,
      p99Ms: Math.round(figures.p99Ms * 10) / 10
    })
    this.windowFailedReal = 0
    this.windowFailedInjected = 0
    const oldest = Date.now() - HISTORY_MS
    while (this.historyRing.length > MAX_HISTORY_POINTS || (this.historyRing[0] !== undefined && this.historyRing[0].at < oldest)) this.historyRing.shift()
  }

  /** The last 15 minutes of windows (oldest first), for the status page. */
  get history (): readonly HistoryPoint[] { return this.historyRing }

  setMode (mode: ChaosMode): void {
    this.modeValue = mode
    if (mode !== 'intent') this.faults.setHalted(false)
    this.apply()
  }

  /** The controller's state for the other replicas (fleet control). */
  fleetState (): ControllerState { return this.controller.snapshot() }

  /** Takes the fleet's level and halt (haltMs left; 0: not halted) and plans for it at once. */
  adopt (state: ControllerState, haltMs: number, now: number): void {
    if (this.modeValue !== 'intent') return
    this.controller.adopt(state, haltMs, now)
    this.faults.setHalted(haltMs > 0)
    this.apply()
  }

  /**
   * Told when an operator resumes the route here; fleet control ends the
   * fleet's halt with it (src/fleet/levels.ts). Not called for a resume
   * taken from the fleet, so a resume is told once, not echoed.
   */
  onResume: (() => void) | undefined

  /** Admin (or the fleet, `from: 'fleet'`): clear a guardrail halt now instead of waiting for the cool-down. */
  resume (from: 'operator' | 'fleet' = 'operator'): void {
    this.controller.resume()
    // Judge afresh from the resume: the window left open through the halt still holds the figures
    // (slow answers, late injected ones) that broke the SLO, and judging them again halts at once.
    this.window.reset()
    this.windowInjected = 0
    this.windowFailedInjected = 0
    this.windowFailedReal = 0
    this.faults.setHalted(false)
    this.apply()
    if (from === 'operator') this.onResume?.()
  }

  /** Starts fresh books (an experiment begins) and, for intent mode, a fresh controller. */
  resetBooks (): void {
    this.books = emptyBooks()
    this.controller = new IntensityController(this.plan.controller, this.intent.slo)
    this.faults.setHalted(false)
    this.applied = ''
    this.apply()
  }

  get booksSoFar (): EngineBooks { return this.books }
  controllerReport (now: number): ControllerReport { return this.controller.report(now) }
  sloSnapshot (): SloSnapshot { return this.slo.snapshot() }

  /** Pushes the plan for the current mode and level to the route's faults. */
  private apply (): void {
    const level = this.sourceDown !== undefined ? 0 : this.level
    let probability = 0
    let entries: Array<{ config: FaultConfig, weight: number }> = []
    if (this.modeValue === 'intent' && level > 0) {
      probability = level * this.budget
      entries = this.plan.entries.map((e) => ({ config: faultSchema.parse(e.build(level)), weight: e.weight }))
    } else if (this.modeValue === 'uniform') {
      probability = this.budget
      entries = this.uniform.entries.map((e) => ({ config: faultSchema.parse(e.build(0.5)), weight: e.weight }))
    }
    const key = `${this.modeValue}:${level}`
    if (key !== this.applied) this.faults.setPlan(entries, probability, this.budget)
    this.applied = key
    this.metrics.chaosLevel.labels(this.route).set(level)
    this.metrics.chaosProbability.labels(this.route).set(probability)
  }

  /** GET /routes for the intent: its mode and level, the controller's judgement and the plan (IntentSnapshot). */
  snapshot (now: number) {
    return {
      mode: this.modeValue,
      declared: this.declared,
      intent: this.intent,
      budget: this.budget,
      level: this.level,
      controller: this.controller.report(now),
      ...(this.sourceDown !== undefined ? { sourceDown: this.sourceDown } : {}),
      // Whose figures these are: the fleet's (one level per route across replicas) or this instance's.
      scope: this.fleet === undefined || this.fleet.role === 'local' ? 'local' : 'fleet',
      ...(this.fleet === undefined ? {} : { fleet: this.fleet }),
      slo: this.slo.snapshot(),
      plan: this.plan.entries.map((e) => ({ name: e.name, kind: e.kind, weight: e.weight }))
    }
  }

  dispose (): void {
    this.slo.destroy()
    this.window.destroy()
  }
}
