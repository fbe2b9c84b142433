/**
 * Intent -> fault plan: the heart of intent-weighted chaos, as one
 * readable table. `protects` chooses the mix of fault kinds; the SLO sizes
 * them; the chaos level L (0..1, moved by the controller) scales their
 * severity; criticality and sensitivity set how far and how carefully the
 * controller may go. docs/INTENT.md explains every rule.
 *
 * The planner is a pure function: same intent, same plan. Each entry builds
 * a fault config (the same shape as a hand-written `chaos.faults` entry) for
 * a level, so planned faults run through the exact code hand-written ones do.
 */
import { CRITICALITY_DEFAULTS, controllerSchema, type ControllerConfig, type Intent, type Protects } from './schema.js'
import type { ControllerSettings } from './controller.js'

/** A fault config as the `chaos.faults` schema reads it (validated where it is used). */
export type PlannedFaultConfig = { kind: string, name: string } & Record<string, unknown>

export interface PlanEntry {
  /** Bounded, stable name: `<kind>` or `<kind>-<variant>`; the metric label of injected faults. */
  name: string
  kind: string
  /** Share of injected faults that are this entry (the entries of a plan sum to 1). */
  weight: number
  /** Why this entry is in the plan, for `faultline plan` and the report. */
  why: string
  /** The fault at chaos level `level` (0..1). */
  build: (level: number) => PlannedFaultConfig
}

export interface FaultPlan {
  protects: Protects
  entries: PlanEntry[]
  /**
   * Security routes fail closed: an auth failure must never be answered from
   * the cache, an alternate or a static body. The policies already refuse
   * (see docs/POLICIES.md); the plan records it so reports can check it.
   */
  failClosed: boolean
  controller: ControllerSettings
}

const lerp = (from: number, to: number, level: number): number => from + (to - from) * Math.min(1, Math.max(0, level))
const ms = (value: number): number => Math.max(1, Math.round(value))

/**
 * The table. Weights per `protects`; sizes from the SLO. Latency-type
 * faults are drawn around 0.5x-2x the p99 threshold so both sizes the route
 * should absorb and sizes that must break it are tried.
 */
function entriesFor (intent: Intent): PlanEntry[] {
  const p99 = intent.slo.p99Ms
  const delay = (level: number): number => ms(p99 * lerp(0.5, 2, level))
  switch (intent.protects) {
    case 'latency':
      return [
        { name: 'latency', kind: 'latency', weight: 0.5, why: `delays of 0.5x-2x the ${p99} ms p99 threshold, jittered`, build: (l) => ({ kind: 'latency', name: 'latency', ms: delay(l), jitterMs: ms(delay(l) * 0.2) }) },
        { name: 'slowHeaders', kind: 'slowHeaders', weight: 0.2, why: 'the status line arrives late: tests header timeouts', build: (l) => ({ kind: 'slowHeaders', name: 'slowHeaders', ms: delay(l) }) },
        { name: 'timeout', kind: 'timeout', weight: 0.15, why: 'no answer at all: only the route\'s own timeout ends it', build: () => ({ kind: 'timeout', name: 'timeout' }) },
        { name: 'throttle', kind: 'throttle', weight: 0.15, why: 'a slow body: 64 KiB/s down to 4 KiB/s', build: (l) => ({ kind: 'throttle', name: 'throttle', bytesPerSecond: Math.round(lerp(64 * 1024, 4 * 1024, l)) }) }
      ]
    case 'availability':
      return [
        { name: 'abort-503', kind: 'abort', weight: 0.25, why: 'the dependency is overloaded (retryable)', build: () => ({ kind: 'abort', name: 'abort-503', status: 503 }) },
        { name: 'abort-500', kind: 'abort', weight: 0.15, why: 'the dependency fails outright', build: () => ({ kind: 'abort', name: 'abort-500', status: 500 }) },
        { name: 'reset', kind: 'reset', weight: 0.3, why: 'the connection drops before the answer', build: () => ({ kind: 'reset', name: 'reset', phase: 'headers' }) },
        { name: 'timeout', kind: 'timeout', weight: 0.2, why: 'no answer at all', build: () => ({ kind: 'timeout', name: 'timeout' }) },
        { name: 'rateLimit', kind: 'rateLimit', weight: 0.1, why: '429 with Retry-After growing with the level (1-5 s)', build: (l) => ({ kind: 'rateLimit', name: 'rateLimit', retryAfterSeconds: Math.round(lerp(1, 5, l)) }) }
      ]
    case 'security':
      return [
        { name: 'auth-unauthorized', kind: 'auth', weight: 0.3, why: '401: the credentials are refused', build: () => ({ kind: 'auth', name: 'auth-unauthorized', variant: 'unauthorized' }) },
        { name: 'auth-expired', kind: 'auth', weight: 0.25, why: '401 with an expired-token body: must refresh, not retry', build: () => ({ kind: 'auth', name: 'auth-expired', variant: 'expired' }) },
        { name: 'auth-forbidden', kind: 'auth', weight: 0.15, why: '403: must fail closed, never fall back', build: () => ({ kind: 'auth', name: 'auth-forbidden', variant: 'forbidden' }) },
        { name: 'abort-503', kind: 'abort', weight: 0.2, why: 'the auth dependency itself is down', build: () => ({ kind: 'abort', name: 'abort-503', status: 503 }) },
        { name: 'latency', kind: 'latency', weight: 0.1, why: 'a slow auth check', build: (l) => ({ kind: 'latency', name: 'latency', ms: delay(l) }) }
      ]
    case 'consistency':
      return [
        { name: 'truncate', kind: 'truncate', weight: 0.3, why: 'a partial body, closed early (less is kept as the level rises)', build: (l) => ({ kind: 'truncate', name: 'truncate', bytes: Math.round(lerp(512, 16, l)) }) },
        { name: 'corrupt', kind: 'corrupt', weight: 0.3, why: 'invalid JSON', build: () => ({ kind: 'corrupt', name: 'corrupt', mode: 'json' }) },
        { name: 'schemaDrift', kind: 'schemaDrift', weight: 0.3, why: 'an API version mismatch: top-level fields renamed and retyped', build: () => ({ kind: 'schemaDrift', name: 'schemaDrift', ...schemaDriftShape(intent) }) },
        { name: 'reset-body', kind: 'reset', weight: 0.1, why: 'the connection drops mid-body', build: () => ({ kind: 'reset', name: 'reset-body', phase: 'body', afterBytes: 64 }) }
      ]
  }
}

/** Which fields drift: the route's declared ones, or a generic "id"/"data" pair. */
function schemaDriftShape (intent: Intent & { driftFields?: string[] }): Record<string, unknown> {
  const fields = intent.driftFields ?? ['id', 'data']
  return { drop: fields.slice(1), retype: { [fields[0]!]: 'string' } }
}

/**
 * Controller settings from the intent: criticality sets the ceiling and
 * the base safety margin; sensitivity widens the margin (backs off earlier)
 * and shrinks the step (probes more carefully).
 */
export function controllerSettings (intent: Intent, windows: Pick<ControllerConfig, 'holdWindows' | 'cooldownMs' | 'minRequests'> = controllerSchema.parse({})): ControllerSettings {
  const d = CRITICALITY_DEFAULTS[intent.criticality]
  return {
    ceiling: d.ceiling,
    step: Math.round(lerp(0.15, 0.05, intent.sensitivity) * 1000) / 1000,
    backoff: 0.5,
    margin: Math.round((d.marginBase + 0.4 * intent.sensitivity) * 1000) / 1000,
    minRequests: windows.minRequests,
    holdWindows: windows.holdWindows,
    cooldownMs: windows.cooldownMs
  }
}

export function planFor (intent: Intent, windows?: ControllerConfig): FaultPlan {
  return {
    protects: intent.protects,
    entries: entriesFor(intent),
    failClosed: intent.protects === 'security',
    controller: controllerSettings(intent, windows)
  }
}

/** Uniform mode, for comparison: every kind equally likely at a fixed mid severity, whatever the intent. */
export function uniformPlan (intent: Intent, windows?: ControllerConfig): FaultPlan {
  const all = (['latency', 'availability', 'security', 'consistency'] as const)
    .flatMap((protects) => entriesFor({ ...intent, protects }))
  const byKind = new Map<string, PlanEntry>()
  for (const e of all) if (!byKind.has(e.kind)) byKind.set(e.kind, e)
  const entries = [...byKind.values()].map((e) => ({ ...e, weight: 1 / byKind.size, why: 'uniform: every kind equally likely', build: () => e.build(0.5) }))
  return { protects: intent.protects, entries, failClosed: false, controller: { ...controllerSettings(intent, windows), ceiling: 1 } }
}
