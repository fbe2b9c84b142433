/**
 * A route's intent: how critical it is, what it must protect and the
 * thresholds that define acceptable behaviour. Everything the planner and
 * the controller derive starts here. Defaults depend on criticality, so
 * `intent: { criticality: critical, protects: consistency }` is a
 * complete, sensible intent.
 */
import { z } from 'zod'
import { duration, share } from '../config/units.js'
import { CONTROLLER_SOURCES, fleetQueriesSchema, prometheusSourceSchema } from '../fleet/prometheus-schema.js'

export const CRITICALITIES = ['critical', 'degradable', 'optional'] as const
export const PROTECTS = ['availability', 'latency', 'security', 'consistency'] as const
export type Criticality = (typeof CRITICALITIES)[number]
export type Protects = (typeof PROTECTS)[number]

/**
 * Per criticality: default thresholds, how steeply to back off
 * (sensitivity), and the controller's ceiling. A critical route gets a low
 * ceiling and a wide safety margin: chaos there is a scalpel, not a hammer.
 */
export const CRITICALITY_DEFAULTS: Record<Criticality, { p99Ms: number, errorRate: number, sensitivity: number, ceiling: number, marginBase: number }> = {
  critical: { p99Ms: 300, errorRate: 0.01, sensitivity: 0.8, ceiling: 0.4, marginBase: 0.1 },
  degradable: { p99Ms: 1000, errorRate: 0.05, sensitivity: 0.5, ceiling: 0.8, marginBase: 0.05 },
  optional: { p99Ms: 2000, errorRate: 0.1, sensitivity: 0.2, ceiling: 1, marginBase: 0 }
}

export const intentSchema = z.strictObject({
  criticality: z.enum(CRITICALITIES).default('degradable'),
  protects: z.enum(PROTECTS).default('availability'),
  slo: z.strictObject({
    p99Ms: duration(z.number().positive().optional()),
    errorRate: share(z.number().min(0).max(1).optional()),
    /** The sliding window the client-visible SLO is measured over. */
    windowMs: duration(z.number().int().min(1000).default(30_000))
  }).prefault({}),
  /** 0..1: how early the controller backs off as headroom shrinks. */
  sensitivity: share(z.number().min(0).max(1).optional()),
  /** With controller.source prometheus: this route's own fleet queries, instead of the defaults (docs/FLEET.md). */
  queries: fleetQueriesSchema.optional()
}).transform((intent) => {
  const d = CRITICALITY_DEFAULTS[intent.criticality]
  return {
    criticality: intent.criticality,
    protects: intent.protects,
    slo: { p99Ms: intent.slo.p99Ms ?? d.p99Ms, errorRate: intent.slo.errorRate ?? d.errorRate, windowMs: intent.slo.windowMs },
    sensitivity: intent.sensitivity ?? d.sensitivity,
    ...(intent.queries !== undefined ? { queries: intent.queries } : {})
  }
})

export type Intent = z.infer<typeof intentSchema>

/** How the intensity controller runs: one evaluation per window, for every route with an intent. */
export const controllerSchema = z.strictObject({
  /** Length of an evaluation window: the controller judges the client-visible figures of each. */
  evaluationMs: duration(z.number().int().min(100).default(5_000)),
  /** Injection pause after a guardrail halt. */
  cooldownMs: duration(z.number().int().min(0).default(60_000)),
  /** Consecutive windows within the SLO that make a level "held" (the resilience margin). */
  holdWindows: z.number().int().min(1).default(3),
  /** Windows with fewer client requests are not judged. */
  minRequests: z.number().int().min(1).default(20),
  /** Where the figures come from: this instance's own window (local) or the fleet's, from Prometheus (docs/FLEET.md). */
  source: z.enum(CONTROLLER_SOURCES).default('local'),
  prometheus: prometheusSourceSchema.optional()
}).superRefine((controller, ctx) => {
  if (controller.source === 'prometheus' && controller.prometheus === undefined) {
    ctx.addIssue({ code: 'custom', path: ['prometheus'], message: 'expected controller.prometheus (at least its url) when controller.source is prometheus' })
  }
})

export type ControllerConfig = z.infer<typeof controllerSchema>

/** How an experiment plans its chaos: by each route's intent, or one uniform mix for comparison. */
export type ExperimentMode = 'intent' | 'uniform'
