/**
 * A route's chaos on the hot path: per exchange, which faults fire, and
 * applying them. It reads the fault set (fault-set.ts) and the plan
 * (planned.ts) and changes neither; the admin API and the intent engine
 * change those.
 *
 * Choosing: faults are tried in list order and each rolls its own
 * probability; every one that fires is applied, stacked in list order
 * (first outermost), as Toxiproxy stacks toxics. A trigger header, where
 * allowed, replaces the configured faults for its request. A fault with a
 * schedule (schedule.ts) is counted after its matchers and before its
 * probability; one with an end (`until`, `ttl`) is removed when it ends.
 * Every choice passes the route's switch, the kill switch and the
 * guardrail's halt first, then the share cap and the fleet budget.
 */
import type { RequestContext } from '../core/context.js'
import type { Policy, UpstreamCall, UpstreamResponse } from '../core/pipeline.js'
import type { RouteMetrics } from '../metrics/route-metrics.js'
import type { ChaosStatus } from '../metrics/metrics.js'
import type { ArmedFault } from './armed.js'
import type { FaultSet } from './fault-set.js'
import type { PlannedFaultSnapshot, PlannedFaults } from './planned.js'
import { ClientSideIO, UpstreamSideIO, type ChaosLink, type FaultIO, type FaultSide } from './io.js'
import type { ChaosConfig } from './schema.js'
import type { ChaosSwitch } from './switch.js'
import { TRIGGER_HEADER, TriggerError } from './trigger.js'

/** A route's chaos in GET /routes and the /chaos endpoints: the switches, the hand-written faults and the planned ones. */
export interface FaultStageSnapshot {
  enabled: boolean
  killSwitch: 'on' | 'off'
  injecting: boolean
  seed: FaultSet['currentSeed']
  allowHeaderTriggers: boolean
  exposeHeaders: boolean
  faults: Array<ReturnType<FaultSet['list']>[number] & { effectiveProbability: number }>
  planned: PlannedFaultSnapshot[]
  plannedProbability: number
}

export class FaultStage {
  readonly route: string
  readonly allowHeaderTriggers: boolean
  readonly exposeHeaders: boolean
  /** The upstream-side stage, innermost in the route's pipeline while `active`. */
  readonly policy: Policy
  /**
   * True while a client-side fault or a trigger header could fire here;
   * the listener's one check per request before it takes the client seam.
   */
  clientSide = false
  /** True while the upstream-side stage has anything to do (else it is left out of the chain). */
  active = false
  readonly clientIO: FaultIO
  /** chaos.fleetBudget's tokens (src/fleet/budget.ts), set by the route when the config has one. */
  fleetBudget: { take: () => boolean } | undefined

  private readonly set: FaultSet
  private readonly planned: PlannedFaults
  private readonly chaosSwitch: ChaosSwitch
  private readonly metrics: RouteMetrics
  private readonly upstreamIO: FaultIO
  private activeChanged: (() => void) | undefined
  /** chaos.maxShare and its books: requests seen and touched by any fault. */
  private readonly maxShare: number
  private shareSeen = 0
  private shareTouched = 0

  constructor (set: FaultSet, planned: PlannedFaults, config: ChaosConfig, chaosSwitch: ChaosSwitch, metrics: RouteMetrics) {
    this.route = set.route
    this.set = set
    this.planned = planned
    this.chaosSwitch = chaosSwitch
    this.metrics = metrics
    this.maxShare = config.maxShare
    this.allowHeaderTriggers = config.allowHeaderTriggers
    this.exposeHeaders = config.exposeHeaders
    const link: ChaosLink = { random: set.random, routeChaosOff: () => set.chaosOffSignal, chaosSwitch }
    this.upstreamIO = new UpstreamSideIO(link)
    this.clientIO = new ClientSideIO(link)
    this.policy = {
      name: 'faults',
      // Not async: with no fault chosen (the common case) the attempt's own promise is handed back.
      execute: (ctx, next) => {
        const chosen = this.choose(ctx, 'upstream')
        return chosen === undefined ? next(ctx) : this.inject(ctx, chosen, next, this.upstreamIO)
      },
      snapshot: () => this.snapshot(),
      dispose: () => { this.set.dispose() }
    }
    set.onChange(() => { this.refresh() })
    planned.onChange(() => { this.refresh() })
    this.refresh()
  }

  /** Called when `active` changes: the route recomposes its pipeline. */
  onActiveChange (listener: () => void): void {
    this.activeChanged = listener
  }

  /** True while faults may be injected here: the route's chaos and the kill switch are both on. */
  get injecting (): boolean { return this.set.isEnabled && this.chaosSwitch.enabled }

  /**
   * The faults that fire for this exchange at `side`, or undefined (the
   * common case, allocation-free). Throws TriggerError for a bad trigger header.
   */
  choose (ctx: RequestContext, side: FaultSide): ArmedFault[] | undefined {
    const set = this.set
    set.sweepIfDue()
    // The guardrail halt, like the kill switch, stops every fault: hand-written and triggered ones too.
    if (!set.isEnabled || !this.chaosSwitch.enabled || this.planned.halted) return undefined
    let list = side === 'upstream' ? set.upstream : set.client
    if (this.allowHeaderTriggers) {
      const header = ctx.req.headers[TRIGGER_HEADER]
      if (typeof header === 'string') {
        try {
          list = set.triggered(header, side)
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
      if (p < 1 && (p <= 0 || set.random() >= p)) continue
      (chosen ??= []).push(f)
    }
    if (side === 'upstream' && this.planned.probability > 0 && list === set.upstream) {
      const planned = this.planned.choose(ctx, set.random)
      if (planned !== undefined) (chosen ??= []).push(planned)
    }
    const result = this.maxShare < 1 ? this.withinShare(ctx, chosen) : chosen
    // chaos.fleetBudget: each fault costs a token of the fleet's bucket (src/fleet/budget.ts); none left, none injected.
    if (result !== undefined && this.fleetBudget !== undefined && !this.fleetBudget.take()) return undefined
    return result
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

  /**
   * For connection-level faults (WebSocket upgrades, src/proxy/upgrade.ts):
   * true when one with `probability` fires now, under the same kill switch,
   * route switch, guardrail and seeded source as every other fault here.
   */
  rollConnectionFault (probability: number): boolean {
    if (!this.set.isEnabled || !this.chaosSwitch.enabled || this.planned.halted) return false
    return probability >= 1 || (probability > 0 && this.set.random() < probability)
  }

  /** Abort when chaos is switched off here or by the kill switch: a fault still waiting ends at once. */
  get chaosOffSignals (): readonly AbortSignal[] { return [this.set.chaosOffSignal, this.chaosSwitch.chaosOffSignal] }

  /** Whether this route injects now and why (faultline_chaos_active); `halted`: its intent engine's guardrail holds planned chaos. */
  status (halted: boolean): ChaosStatus {
    if (!this.set.isEnabled) return { active: false, reason: 'disabled' }
    if (!this.chaosSwitch.enabled) return { active: false, reason: 'kill_switch' }
    // A guardrail halt holds every fault, hand-written ones too (issue 12).
    if (halted || this.planned.halted) return { active: false, reason: 'guardrail' }
    if (this.planned.probability > 0) return { active: true, reason: 'planned' }
    if (this.set.size > 0) return { active: true, reason: 'faults' }
    if (this.allowHeaderTriggers) return { active: true, reason: 'header_triggers' }
    return { active: false, reason: 'idle' }
  }

  /** The route's chaos as the admin API shows it: switches, seed, hand-written and planned faults with their real rates. */
  snapshot (): FaultStageSnapshot {
    const injecting = this.injecting
    return {
      enabled: this.set.isEnabled,
      killSwitch: this.chaosSwitch.enabled ? 'on' : 'off',
      injecting,
      seed: this.set.currentSeed,
      allowHeaderTriggers: this.allowHeaderTriggers,
      exposeHeaders: this.exposeHeaders,
      // effectiveProbability: the chance a request gets this fault now (0 while chaos is off or killed).
      faults: this.set.list().map((f) => ({ ...f, effectiveProbability: injecting ? f.probability : 0 })),
      planned: this.planned.snapshot(injecting),
      plannedProbability: this.planned.probability
    }
  }

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

  private record (ctx: RequestContext, f: ArmedFault, side: FaultSide): void {
    // "No fault" is chosen like a fault but injects nothing: not counted, not named.
    if (f.config.kind === 'none') return
    // The containment mark: this attempt's outcome belongs to this route's policies only.
    if (side === 'upstream') ctx.attemptInjected = true
    else ctx.injectedElsewhere = true
    this.metrics.faultInjected(f.label)
    ctx.fault = ctx.fault === undefined ? f.label : `${ctx.fault},${f.label}`
  }

  private refresh (): void {
    const enabled = this.set.isEnabled
    const active = enabled && (this.set.upstream.length > 0 || this.allowHeaderTriggers || this.planned.probability > 0)
    this.clientSide = enabled && (this.set.client.length > 0 || this.allowHeaderTriggers)
    if (active !== this.active) {
      this.active = active
      this.activeChanged?.()
    }
  }
}
