/**
 * `faultline plan FILE`: each route's plan as people read it (a table) or
 * as machines do (--json): the mix, the intensity range, the guardrails.
 */
import type { ChaosConfig } from '../faults/schema.js'
import type { ResilienceConfig } from '../policies/schema.js'
import type { ControllerConfig, Intent } from './schema.js'
import { faultSchema } from '../faults/registry.js'
import { planFor } from './planner.js'
import { faultDelayMs } from '../faults/delay-ms.js'

export interface RoutePlanView {
  route: string
  intent: { criticality: string, protects: string, slo: { p99Ms: number, errorRate: number, windowMs: number }, sensitivity: number }
  chaosEnabled: boolean
  budget: number
  /** Planned fault probability per request: from 0 up to ceiling x budget. */
  intensity: { levelCeiling: number, maxProbability: number, step: number, backoff: number }
  guardrails: { safetyMargin: number, cooldownMs: number, holdWindows: number, minRequests: number, failClosed: boolean }
  mix: Array<{ name: string, kind: string, weight: number, why: string, atLowLevel: Record<string, unknown>, atCeiling: Record<string, unknown>, aboveTimeout: boolean }>
  /** resilience.timeoutMs: a planned delay above it is cut by the route's own timeout. */
  timeoutMs: number
  /** The route's hand-written chaos.faults, which run beside the planned ones with their own probabilities. */
  handWritten: Array<{ name: string, kind: string, probability: number }>
}

/** What a plan is printed from: the parsed config's routes and controller (the config file's Config has them). */
export interface PlanInput {
  readonly routes: ReadonlyArray<{ readonly name: string, readonly intent?: Intent, readonly chaos: ChaosConfig, readonly resilience: Pick<ResilienceConfig, 'timeoutMs'> }>
  readonly controller: ControllerConfig
}

export function planViews (config: PlanInput): RoutePlanView[] {
  return config.routes.filter((r) => r.intent !== undefined).map((route) => {
    const intent = route.intent!
    const plan = planFor(intent, config.controller)
    const c = plan.controller
    // Parsing each built fault proves the plan is a valid chaos config.
    const show = (built: Record<string, unknown>): Record<string, unknown> => {
      const { kind: _k, name: _n, probability: _p, at: _a, ...params } = faultSchema.parse(built) as unknown as Record<string, unknown>
      return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined && !(typeof v === 'object' && v !== null && Object.keys(v).length === 0)))
    }
    return {
      route: route.name,
      intent,
      chaosEnabled: route.chaos.enabled,
      budget: route.chaos.budget,
      intensity: { levelCeiling: c.ceiling, maxProbability: Math.round(c.ceiling * route.chaos.budget * 10000) / 10000, step: c.step, backoff: c.backoff },
      guardrails: { safetyMargin: c.margin, cooldownMs: c.cooldownMs, holdWindows: c.holdWindows, minRequests: c.minRequests, failClosed: plan.failClosed },
      mix: plan.entries.map((e) => {
        const atCeiling = show(e.build(c.ceiling))
        return { name: e.name, kind: e.kind, weight: e.weight, why: e.why, atLowLevel: show(e.build(c.step)), atCeiling, aboveTimeout: (faultDelayMs(atCeiling) ?? 0) > route.resilience.timeoutMs }
      }),
      timeoutMs: route.resilience.timeoutMs,
      handWritten: route.chaos.faults.map((f, i) => ({ name: f.name ?? `f${i + 1}`, kind: f.kind, probability: f.probability }))
    }
  })
}

function params (p: Record<string, unknown>): string {
  const text = Object.entries(p).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(' ')
  return text || '-'
}

export function planText (config: PlanInput): string {
  const views = planViews(config)
  if (views.length === 0) return 'no route declares an intent: nothing to plan (see docs/INTENT.md)\n'
  const out: string[] = []
  for (const v of views) {
    out.push(`route ${v.route}: ${v.intent.criticality}, protects ${v.intent.protects}; SLO p99 <= ${v.intent.slo.p99Ms} ms, errors <= ${(v.intent.slo.errorRate * 100).toFixed(2)}% over ${v.intent.slo.windowMs / 1000} s; sensitivity ${v.intent.sensitivity}`)
    out.push(`  chaos ${v.chaosEnabled ? 'enabled' : 'disabled (set chaos.enabled to inject)'}; budget ${(v.budget * 100).toFixed(1)}% of requests`)
    out.push(`  intensity: level 0..${v.intensity.levelCeiling} in steps of ${v.intensity.step} (x${v.intensity.backoff} on back-off) => fault probability 0..${(v.intensity.maxProbability * 100).toFixed(2)}%`)
    out.push(`  guardrails: back off below ${v.guardrails.safetyMargin} headroom; halt ${v.guardrails.cooldownMs / 1000} s on breach; judge windows of >= ${v.guardrails.minRequests} requests; margin = level held ${v.guardrails.holdWindows} windows${v.guardrails.failClosed ? '; fails closed (no fallback on auth failure)' : ''}`)
    out.push('  weight  fault               at low level -> at ceiling')
    for (const m of v.mix) {
      out.push(`  ${(m.weight * 100).toFixed(0).padStart(4)}%  ${m.name.padEnd(19)} ${params(m.atLowLevel)} -> ${params(m.atCeiling)}`)
      out.push(`         ${''.padEnd(19)} ${m.why}`)
      if (m.aboveTimeout) out.push(`         ${''.padEnd(19)} note: above the route's timeoutMs (${v.timeoutMs} ms) at the ceiling: the timeout answers first`)
    }
    if (v.handWritten.length > 0) {
      out.push('  hand-written faults (chaos.faults, their own probabilities, beside the plan):')
      for (const f of v.handWritten) out.push(`  ${(f.probability * 100).toFixed(1).padStart(5)}%  ${f.name.padEnd(19)} kind ${f.kind}`)
    }
    out.push('')
  }
  return out.join('\n')
}
