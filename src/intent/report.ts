/**
 * The experiment report: per route, what was injected, what the caller
 * saw, whether the SLO held, the resilience margin, and which fault kinds
 * got through to the caller (weaknesses). JSON for machines, Markdown for
 * people.
 */
import type { IntentEngine } from './engine.js'
import type { ExperimentMode } from './experiment.js'

export interface Weakness {
  /** The fault's label (planned faults: `<kind>` or `<kind>-<variant>`). */
  fault: string
  /** Requests that carried it. */
  requests: number
  /** Of those, failures the caller saw. */
  surfaced: number
  /** Faults of this kind injected before the first one reached the caller. */
  faultsToFind: number
}

export interface RouteReport {
  route: string
  criticality: string
  protects: string
  slo: { p99Ms: number, errorRate: number }
  /** chaos.budget: the cap on the share of requests given a planned fault. */
  budget: number
  /** intent, uniform or off (a route without a declared intent does not inject in intent mode). */
  mode: string
  requests: number
  outcomes: Record<string, number>
  faultsInjected: Record<string, number>
  totalInjected: number
  caller: { ok: number, absorbedByRetry: number, servedByFallback: number, surfaced: number }
  sloWindows: { judged: number, withinSlo: number, breached: number, attainment: number | null }
  level: { final: number, resilienceMargin: number, significant: number | null, disabling: number | null, guardrailHalts: number }
  weaknesses: Weakness[]
  /** Share of requests carrying a fault whose failure reached the caller: the route lets failures cascade. */
  cascadingRisk: number | null
}

export interface ExperimentReport {
  mode: ExperimentMode
  startedAt: string
  durationMs: number
  routes: RouteReport[]
  totals: {
    faultsInjected: number
    surfaced: number
    /** SLO-breaching windows on critical routes: the collateral a careless experiment causes. */
    breachedWindowsOnCritical: number
    /** Time spent in breach, summed over routes (breached windows x window length). */
    timeInBreachMs: number
    weaknessesFound: number
  }
}

export interface ReportInput {
  mode: ExperimentMode
  startedAt: string
  durationMs: number
  engines: IntentEngine[]
  /** Deltas of faultline_faults_injected_total keyed "route|fault". */
  injected: Map<string, number>
  /** Deltas of faultline_requests_total keyed "route|outcome". */
  outcomes: Map<string, number>
  now: number
  evaluationMs?: number
}

const FALLBACKS = ['fallback_cache', 'fallback_alternate', 'fallback_static']
const SURFACED = ['failed', 'short_circuited', 'rejected_bulkhead']

function forRoute (map: Map<string, number>, route: string): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [key, value] of map) {
    const [r, label] = key.split('|') as [string, string]
    if (r === route) out[label] = value
  }
  return out
}

const sum = (record: Record<string, number>, keys?: string[]): number =>
  Object.entries(record).reduce((total, [k, v]) => (keys === undefined || keys.includes(k) ? total + v : total), 0)

export function buildReport (input: ReportInput): ExperimentReport {
  const routes = input.engines.map((engine): RouteReport => {
    const outcomes = forRoute(input.outcomes, engine.route)
    const faultsInjected = forRoute(input.injected, engine.route)
    const books = engine.booksSoFar
    const controller = engine.controllerReport(input.now)
    const weaknesses: Weakness[] = [...books.byFault.entries()]
      .filter(([, f]) => f.surfaced > 0)
      .map(([fault, f]) => ({ fault, requests: f.requests, surfaced: f.surfaced, faultsToFind: f.toFirstSurfaced ?? f.requests }))
      .sort((a, b) => b.surfaced / b.requests - a.surfaced / a.requests)
    const withFault = [...books.byFault.values()].reduce((n, f) => n + f.requests, 0)
    const surfacedWithFault = [...books.byFault.values()].reduce((n, f) => n + f.surfaced, 0)
    const mode = engine.mode === 'off' && input.mode === 'intent' && !engine.declared ? 'off (no intent declared)' : input.mode
    return {
      route: engine.route,
      criticality: engine.intent.criticality,
      protects: engine.intent.protects,
      slo: { p99Ms: engine.intent.slo.p99Ms, errorRate: engine.intent.slo.errorRate },
      budget: engine.budget,
      mode,
      requests: sum(outcomes),
      outcomes,
      faultsInjected,
      totalInjected: sum(faultsInjected),
      caller: {
        ok: outcomes.ok ?? 0,
        absorbedByRetry: outcomes.retried_ok ?? 0,
        servedByFallback: sum(outcomes, FALLBACKS),
        surfaced: sum(outcomes, SURFACED)
      },
      sloWindows: {
        judged: books.windows,
        withinSlo: books.windowsWithinSlo,
        breached: books.windowsBreached,
        attainment: books.windows === 0 ? null : books.windowsWithinSlo / books.windows
      },
      level: {
        final: engine.level,
        resilienceMargin: input.mode === 'intent' ? controller.resilienceMargin : 0,
        significant: input.mode === 'intent' ? controller.significantLevel ?? null : null,
        disabling: input.mode === 'intent' ? controller.disablingLevel ?? null : null,
        guardrailHalts: input.mode === 'intent' ? controller.breaches : 0
      },
      weaknesses,
      cascadingRisk: withFault === 0 ? null : surfacedWithFault / withFault
    }
  })
  const evaluationMs = input.evaluationMs ?? 0
  return {
    mode: input.mode,
    startedAt: input.startedAt,
    durationMs: Math.round(input.durationMs),
    routes,
    totals: {
      faultsInjected: routes.reduce((n, r) => n + r.totalInjected, 0),
      surfaced: routes.reduce((n, r) => n + r.caller.surfaced, 0),
      breachedWindowsOnCritical: routes.filter((r) => r.criticality === 'critical').reduce((n, r) => n + r.sloWindows.breached, 0),
      timeInBreachMs: routes.reduce((n, r) => n + r.sloWindows.breached, 0) * evaluationMs,
      weaknessesFound: routes.reduce((n, r) => n + r.weaknesses.length, 0)
    }
  }
}

const pct = (x: number | null): string => (x === null ? 'n/a' : `${(x * 100).toFixed(1)}%`)

export function reportMarkdown (report: ExperimentReport): string {
  const lines: string[] = []
  lines.push(`# faultline experiment: ${report.mode} mode`, '')
  lines.push(`Started ${report.startedAt}, ran ${(report.durationMs / 1000).toFixed(1)} s. ` +
    `${report.totals.faultsInjected} faults injected; ${report.totals.surfaced} failures reached callers; ` +
    `${report.totals.weaknessesFound} weakness(es) found; ${report.totals.breachedWindowsOnCritical} SLO-breaching window(s) on critical routes.`, '')
  lines.push('| route | intent | requests | faults | absorbed by retry | served by fallback | reached caller | SLO windows held | margin | cascading risk |')
  lines.push('|---|---|---|---|---|---|---|---|---|---|')
  for (const r of report.routes) {
    lines.push(`| ${r.route} | ${r.criticality}, ${r.protects} | ${r.requests} | ${r.totalInjected} | ${r.caller.absorbedByRetry} | ${r.caller.servedByFallback} | ${r.caller.surfaced} | ` +
      `${r.sloWindows.withinSlo}/${r.sloWindows.judged} | ${report.mode === 'intent' ? r.level.resilienceMargin.toFixed(2) : '-'} | ${pct(r.cascadingRisk)} |`)
  }
  lines.push('')
  for (const r of report.routes) {
    lines.push(`## ${r.route} (${r.mode})`, '')
    const injected = Object.entries(r.faultsInjected).map(([k, v]) => `${k} ${v}`).join(', ')
    lines.push(`- Faults injected: ${injected || 'none'}.`)
    if (report.mode === 'intent') {
      lines.push(`- Resilience margin: held chaos level ${r.level.resilienceMargin.toFixed(2)} (faults in up to ${pct(r.level.resilienceMargin * r.budget)} of requests) within its SLO (p99 ${r.slo.p99Ms} ms, errors ${pct(r.slo.errorRate)}).` +
        (r.level.disabling !== null ? ` The SLO broke at level ${r.level.disabling.toFixed(2)} (guardrail halted ${r.level.guardrailHalts}x).` : ''))
    }
    if (r.weaknesses.length === 0) {
      lines.push('- No injected fault reached the caller: retries and fallbacks absorbed them.')
    } else {
      for (const w of r.weaknesses) {
        lines.push(`- Weakness: **${w.fault}** reached the caller in ${w.surfaced} of ${w.requests} requests (found after ${w.faultsToFind} fault(s)).`)
      }
    }
    lines.push('')
  }
  return lines.join('\n')
}
