/**
 * A route's planned faults, as its intent engine sees them: the weighted
 * mix for the current level, the per-request probability, the budget cap
 * and its books, and the guardrail's halt. The engine writes here once per
 * evaluation window; the stage (stage.ts) draws from it per request.
 */
import type { RequestContext } from '../core/context.js'
import type { ArmedFault } from './armed.js'
import type { FaultConfig } from './schema.js'

/** A planned fault in GET /routes: its config with its real rate (no probability of its own: the plan's, shared by weight). */
export type PlannedFaultSnapshot = (FaultConfig extends infer C ? C extends FaultConfig ? Omit<C, 'probability'> : never : never) & {
  id: string
  probability: undefined
  weight: number
  effectiveProbability: number
}

export interface PlannedFaultsLink {
  /** Arms a planned fault (no schedule): the route's fault set does it, so ids and metric series match. */
  arm: (config: FaultConfig) => ArmedFault
  /** True while faults may be injected on the route: its switch and the kill switch are both on. */
  injecting: () => boolean
}

export class PlannedFaults {
  private faults: ArmedFault[] = []
  private cumulative: number[] = []
  private plannedProbability = 0
  private budget = 0
  /** First attempts seen and planned injections made since the plan's budget was set. */
  private seen = 0
  private injected = 0
  /** The intent engine's guardrail holds all injection on the route (hand-written and triggered faults too). */
  private haltedNow = false
  private readonly link: PlannedFaultsLink
  private readonly listeners: Array<() => void> = []

  constructor (link: PlannedFaultsLink) {
    this.link = link
  }

  /** Called after the plan or the halt changes (the stage recomputes whether it is active). */
  onChange (listener: () => void): void {
    this.listeners.push(listener)
  }

  /** True while faults may be injected on the route (the engine pauses otherwise). */
  get injecting (): boolean { return this.link.injecting() }

  /** The per-request chance of a planned fault (0: none planned). */
  get probability (): number { return this.plannedProbability }

  get halted (): boolean { return this.haltedNow }

  /** Set by the route's intent engine: while its guardrail holds, nothing is injected on the route, whatever its origin (docs/INTENT.md). */
  setHalted (halted: boolean): void {
    if (halted === this.haltedNow) return
    this.haltedNow = halted
    this.changed()
  }

  /**
   * Replaces the planned faults (the intent engine calls this once per
   * evaluation window). `probability` is the per-request chance of a planned
   * fault; `budget` the cap on the share of requests that get one.
   */
  setPlan (entries: ReadonlyArray<{ config: FaultConfig, weight: number }>, probability: number, budget: number): void {
    this.faults = entries.map((e) => this.link.arm(e.config))
    let sum = 0
    this.cumulative = entries.map((e) => (sum += e.weight))
    this.plannedProbability = entries.length > 0 ? Math.min(probability, budget) : 0
    if (budget !== this.budget) {
      this.budget = budget
      this.seen = 0
      this.injected = 0
    }
    this.changed()
  }

  /** Planned injections against first attempts since the budget was set: the cap's own books. */
  plannedBooks (): { seen: number, injected: number, probability: number, budget: number } {
    return { seen: this.seen, injected: this.injected, probability: this.plannedProbability, budget: this.budget }
  }

  /**
   * One planned fault, or none: a roll against the plan's probability, then
   * a weighted pick. The budget is a hard cap on planned injections per
   * request (first attempts), so a lucky streak can never exceed it.
   */
  choose (ctx: RequestContext, random: () => number): ArmedFault | undefined {
    // The upstream-side stage runs inside the attempt timeout, which has counted this attempt already.
    if (ctx.attempts === 1) this.seen++
    if (random() >= this.plannedProbability) return undefined
    if (this.injected + 1 > this.budget * this.seen) return undefined
    const pick = random() * this.cumulative[this.cumulative.length - 1]!
    let i = 0
    while (i < this.cumulative.length - 1 && pick >= this.cumulative[i]!) i++
    this.injected++
    return this.faults[i]
  }

  /** For the admin API: each planned fault with its real rate (the plan's probability times its weight share). */
  snapshot (injecting: boolean): PlannedFaultSnapshot[] {
    const total = this.cumulative[this.cumulative.length - 1] ?? 0
    return this.faults.map((f, i) => {
      const share = total === 0 ? 0 : ((this.cumulative[i] ?? 0) - (this.cumulative[i - 1] ?? 0)) / total
      // A planned fault's own probability is a placeholder (1): the real one is the plan's times its weight share.
      return { ...f.config, id: f.id, probability: undefined, weight: share, effectiveProbability: injecting ? this.plannedProbability * share : 0 }
    })
  }

  private changed (): void {
    for (const listener of this.listeners) listener()
  }
}
