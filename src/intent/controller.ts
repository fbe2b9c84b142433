/**
 * The chaos-level controller of one route: a pure state machine, fed one
 * client-visible SLO snapshot per evaluation window. AIMD, like TCP
 * congestion control, because the goal is the same: probe for the edge,
 * back away fast when near it.
 *
 *   headroom h = min(1 - errorRate / slo.errorRate, 1 - p99 / slo.p99Ms)
 *   h <= 0          guardrail: level 0 at once, halt for a cool-down,
 *                   remember the level that broke the SLO ("disabling")
 *   h < margin      multiplicative back-off; the first such level is
 *                   "significant"
 *   otherwise       additive increase, up to the ceiling
 *
 * The resilience margin is the highest level L such that the route stayed
 * within its SLO for `holdWindows` consecutive windows at levels >= L.
 */

export interface ControllerSettings {
  /** Highest level the controller may reach (criticality sets it). */
  ceiling: number
  /** Additive increase per healthy window. */
  step: number
  /** Multiplier on the level when headroom falls inside the margin. */
  backoff: number
  /** Headroom below which the controller backs off (sensitivity sets it). */
  margin: number
  /** Windows with fewer client requests than this are not judged. */
  minRequests: number
  /** Consecutive healthy windows at a level that count as "held". */
  holdWindows: number
  /** How long injection halts after a breach. */
  cooldownMs: number
}

export interface SloTarget { p99Ms: number, errorRate: number }
export interface WindowFigures { requests: number, errorRate: number, p99Ms: number }

export type ControllerEvent =
  | { type: 'raise' | 'backoff' | 'hold', level: number, headroom: number }
  | { type: 'breach', level: 0, brokeAt: number, headroom: number }
  | { type: 'halted', level: 0, resumesInMs: number }
  | { type: 'resume', level: number }
  | { type: 'insufficient', level: number, requests: number }
  /** Chaos is off here (kill switch, route disabled, no budget): the level holds, nothing is judged. */
  | { type: 'paused', level: number }
  /** The SLO broke in a window with nothing injected: a real failure of the upstream, not a chaos breach. */
  | { type: 'upstream_breach', level: number, headroom: number }
  /** controller.source prometheus: the fleet's figures are missing, erroring or stale; planned injection stops, the level holds. */
  | { type: 'source_down', level: number, reason: 'unreachable' | 'error' | 'empty' | 'stale' }
  /** Fleet control: another replica evaluates this route; this one keeps the fleet's level and judged its window only for a breach. */
  | { type: 'following', level: number }
  /** controller.source prometheus: no new scrape since the last judged window; nothing judged, the level holds. */
  | { type: 'unchanged', level: number }

/** What one replica hands the others (fleet control): everything but the halt's timing, which Redis keeps (src/fleet/levels.ts). */
export interface ControllerState {
  level: number
  cap: number
  margin: number
  significant: number | null
  disabling: number | null
  breaches: number
}

export interface ControllerReport {
  level: number
  halted: boolean
  /** Highest level held within the SLO for holdWindows windows (0 if none yet). */
  resilienceMargin: number
  /** First level whose headroom fell inside the safety margin. */
  significantLevel: number | undefined
  /** Level at which the SLO was breached (the latest breach). */
  disablingLevel: number | undefined
  breaches: number
  windows: number
  /** While halted: milliseconds until planned chaos resumes. */
  resumesInMs?: number
}

/** Headroom: 1 is an idle SLO, 0 is exactly at a threshold, negative is a breach. */
export function headroom (figures: WindowFigures, slo: SloTarget): number {
  const errors = slo.errorRate > 0 ? 1 - figures.errorRate / slo.errorRate : (figures.errorRate > 0 ? -1 : 1)
  const latency = 1 - figures.p99Ms / slo.p99Ms
  return Math.min(errors, latency)
}

export class IntensityController {
  private readonly settings: ControllerSettings
  private readonly slo: SloTarget
  private levelValue = 0
  private haltedUntil = -Infinity
  private cap: number
  /** Levels of the latest consecutive windows within the SLO (at most holdWindows). */
  private readonly healthy: number[] = []
  private margin = 0
  private significant: number | undefined
  private disabling: number | undefined
  private breachCount = 0
  private windowCount = 0

  constructor (settings: ControllerSettings, slo: SloTarget, startLevel = settings.step) {
    this.settings = settings
    this.slo = slo
    this.cap = settings.ceiling
    this.levelValue = Math.min(startLevel, this.cap)
  }

  get level (): number { return this.levelValue }

  /** Judges one evaluation window and moves the level. */
  evaluate (figures: WindowFigures, now: number): ControllerEvent {
    this.windowCount++
    const s = this.settings
    if (now < this.haltedUntil) return { type: 'halted', level: 0, resumesInMs: this.haltedUntil - now }
    if (this.levelValue === 0 && this.haltedUntil !== -Infinity) {
      this.haltedUntil = -Infinity
      this.levelValue = Math.min(s.step, this.cap)
      return { type: 'resume', level: this.levelValue }
    }
    if (figures.requests < s.minRequests) return { type: 'insufficient', level: this.levelValue, requests: figures.requests }

    const h = headroom(figures, this.slo)
    const level = this.levelValue
    if (h <= 0) {
      this.breachCount++
      this.disabling = level
      // Never climb back to a level that broke the SLO.
      this.cap = Math.max(0, Math.min(this.cap, level - s.step))
      this.levelValue = 0
      this.haltedUntil = now + s.cooldownMs
      this.healthy.length = 0
      return { type: 'breach', level: 0, brokeAt: level, headroom: h }
    }
    this.noteHeld(level)
    if (h < s.margin) {
      this.significant ??= level
      this.levelValue = round(level * s.backoff)
      return { type: 'backoff', level: this.levelValue, headroom: h }
    }
    const next = round(Math.min(this.cap, level + s.step))
    this.levelValue = next
    return { type: next > level ? 'raise' : 'hold', level: next, headroom: h }
  }

  /** Admin: stop at once (kill switch) or resume after a guardrail halt. */
  halt (now: number, forMs = this.settings.cooldownMs): void {
    this.levelValue = 0
    this.haltedUntil = now + forMs
  }

  resume (): void {
    this.haltedUntil = -Infinity
    this.levelValue = Math.min(this.settings.step, this.cap)
  }

  /** The state another replica adopts (fleet control). */
  snapshot (): ControllerState {
    return { level: this.levelValue, cap: this.cap, margin: this.margin, significant: this.significant ?? null, disabling: this.disabling ?? null, breaches: this.breachCount }
  }

  /**
   * Takes the fleet's state: its level, cap and reported levels, and its
   * halt (haltMs left, 0 when not halted). The local hold history starts
   * again: held windows are counted where the level is evaluated.
   */
  adopt (state: ControllerState, haltMs: number, now: number): void {
    this.levelValue = haltMs > 0 ? 0 : Math.min(state.level, state.cap)
    this.haltedUntil = haltMs > 0 ? now + haltMs : -Infinity
    this.cap = state.cap
    this.margin = state.margin
    this.significant = state.significant ?? undefined
    this.disabling = state.disabling ?? undefined
    this.breachCount = state.breaches
    this.healthy.length = 0
  }

  report (now: number): ControllerReport {
    return {
      level: this.levelValue,
      resumesInMs: now < this.haltedUntil ? this.haltedUntil - now : undefined,
      halted: now < this.haltedUntil,
      resilienceMargin: this.margin,
      significantLevel: this.significant,
      disablingLevel: this.disabling,
      breaches: this.breachCount,
      windows: this.windowCount
    }
  }

  private noteHeld (level: number): void {
    this.healthy.push(level)
    if (this.healthy.length > this.settings.holdWindows) this.healthy.shift()
    if (this.healthy.length === this.settings.holdWindows) {
      const held = Math.min(...this.healthy)
      if (held > this.margin) this.margin = held
    }
  }
}

/** Levels are shown to people: keep them to 3 decimals so 0.1 + 0.2 stays 0.3. */
function round (x: number): number {
  return Math.round(x * 1000) / 1000
}
