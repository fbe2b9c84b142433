/**
 * The experiment report: per route, what was injected, what the caller
 * saw, whether the SLO held, the resilience margin, and which fault kinds
 * got through to the caller (weaknesses). JSON for machines, Markdown for
 * people.
 */
import type { IntentEngine, WindowPoint } from './engine.js'
import type { ExperimentMode } from './schema.js'

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
  /** elapsed: evaluation windows that ended; judged: those with at least controller.minRequests requests. */
  sloWindows: { elapsed: number, judged: number, tooFewRequests: number, withinSlo: number, breached: number, attainment: number | null }
  /** No window had enough requests to judge: nothing here is a verdict. */
  tooLittleTraffic: boolean
  /** One point per evaluation window: chaos level, SLO headroom, requests and injections (the HTML report's charts). */
  timeline: WindowPoint[]
  /** scope fleet: the levels are the fleet's (one level per route across replicas, docs/FLEET.md), not this instance's. */
  level: { final: number, resilienceMargin: number, significant: number | null, disabling: number | null, guardrailHalts: number, scope?: 'fleet' }
  weaknesses: Weakness[]
  /** Share of requests carrying a fault whose failure reached the caller: the route lets failures cascade. */
  cascadingRisk: number | null
}

export interface ExperimentReport {
  mode: ExperimentMode
  startedAt: string
  durationMs: number
  routes: RouteReport[]
  /** What the experiment saw of the traffic, and what judging a window takes. */
  traffic: { requests: number, perSecond: number, evaluationMs: number, minRequests: number, expectedPerWindow: number, windowsElapsed: number, windowsJudged: number }
  /** No route had a single window with enough traffic to judge (the CLI exits 3). */
  tooLittleTraffic: boolean
  /** Plain sentences on why the report may not be a verdict (too little traffic, minRequests out of reach). */
  notes: string[]
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
  minRequests?: number
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
        elapsed: books.windows + books.windowsTooFew,
        judged: books.windows,
        tooFewRequests: books.windowsTooFew,
        withinSlo: books.windowsWithinSlo,
        breached: books.windowsBreached,
        attainment: books.windows === 0 ? null : books.windowsWithinSlo / books.windows
      },
      level: {
        final: engine.level,
        resilienceMargin: input.mode === 'intent' ? controller.resilienceMargin : 0,
        significant: input.mode === 'intent' ? controller.significantLevel ?? null : null,
        disabling: input.mode === 'intent' ? controller.disablingLevel ?? null : null,
        guardrailHalts: input.mode === 'intent' ? controller.breaches : 0,
        ...(engine.fleet !== undefined && engine.fleet.role !== 'local' ? { scope: 'fleet' as const } : {})
      },
      weaknesses,
      cascadingRisk: withFault === 0 ? null : surfacedWithFault / withFault,
      tooLittleTraffic: books.windows === 0,
      timeline: [...books.timeline]
    }
  })
  const evaluationMs = input.evaluationMs ?? 0
  const minRequests = input.minRequests ?? 0
  const requests = routes.reduce((n, r) => n + r.requests, 0)
  const perSecond = input.durationMs > 0 ? requests / (input.durationMs / 1000) : 0
  // Judging is per route: the busiest route is the best any window could do.
  const busiest = routes.reduce((n, r) => Math.max(n, r.requests), 0)
  const expectedPerWindow = input.durationMs > 0 ? busiest * evaluationMs / input.durationMs : 0
  const windowsJudged = routes.reduce((n, r) => n + r.sloWindows.judged, 0)
  const tooLittleTraffic = windowsJudged === 0
  const notes: string[] = []
  if (routes.length === 0) notes.push('No route took part: an experiment needs chaos.enabled on a route (and an intent for intent mode).')
  if (routes.length > 0 && requests === 0) notes.push('No request reached the proxy during the experiment: send traffic through it while the experiment runs.')
  if (requests > 0 && tooLittleTraffic) {
    notes.push(`Too little traffic to judge: ${requests} request(s) in ${(input.durationMs / 1000).toFixed(1)} s, and no ${evaluationMs / 1000} s evaluation window reached controller.minRequests (${minRequests}).` +
      (input.mode === 'intent' ? ' The controller never raised the chaos level, so the planned chaos never ran.' : ''))
  }
  if (requests > 0 && minRequests > 0 && expectedPerWindow < minRequests) {
    notes.push(`At the observed rate (${perSecond.toFixed(1)} req/s on all routes, about ${expectedPerWindow.toFixed(1)} per window on the busiest) a window cannot reach controller.minRequests (${minRequests}): send more traffic, lower controller.minRequests, or raise controller.evaluationMs.`)
  }
  return {
    mode: input.mode,
    startedAt: input.startedAt,
    durationMs: Math.round(input.durationMs),
    routes,
    traffic: { requests, perSecond: Math.round(perSecond * 100) / 100, evaluationMs, minRequests, expectedPerWindow: Math.round(expectedPerWindow * 10) / 10, windowsElapsed: routes.reduce((n, r) => n + r.sloWindows.elapsed, 0), windowsJudged },
    tooLittleTraffic,
    notes,
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
    `${report.totals.weaknessesFound} weakness(es) found; ${report.totals.breachedWindowsOnCritical} SLO-breaching window(s) on critical routes. ` +
    `${report.traffic.windowsJudged} of ${report.traffic.windowsElapsed} evaluation window(s) judged (a window needs ${report.traffic.minRequests} requests).`, '')
  if (report.tooLittleTraffic) lines.push('**Too little traffic to judge: nothing below is a verdict.**', '')
  for (const note of report.notes) lines.push(`> ${note}`, '')
  lines.push('| route | intent | requests | faults | absorbed by retry | served by fallback | reached caller | SLO windows held | margin | cascading risk |')
  lines.push('|---|---|---|---|---|---|---|---|---|---|')
  for (const r of report.routes) {
    lines.push(`| ${r.route} | ${r.criticality}, ${r.protects} | ${r.requests} | ${r.totalInjected} | ${r.caller.absorbedByRetry} | ${r.caller.servedByFallback} | ${r.caller.surfaced} | ` +
      `${r.sloWindows.withinSlo}/${r.sloWindows.judged} | ${report.mode === 'intent' ? r.level.resilienceMargin.toFixed(2) : '-'} | ${pct(r.cascadingRisk)} |`)
  }
  lines.push('')
  for (const r of report.routes) {
    lines.push(`## ${r.route} (${r.mode})`, '')
    const injected = Object.entries(r.faultsInjected).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ')
    lines.push(`- Faults injected: ${injected || 'none'}.`)
    lines.push(`- SLO windows judged: ${r.sloWindows.judged} of ${r.sloWindows.elapsed}` + (r.sloWindows.tooFewRequests > 0 ? ` (${r.sloWindows.tooFewRequests} had too few requests to judge).` : '.'))
    if (report.mode === 'intent') {
      lines.push(`- Resilience margin: held chaos level ${r.level.resilienceMargin.toFixed(2)} (faults in up to ${pct(r.level.resilienceMargin * r.budget)} of requests) within its SLO (p99 ${r.slo.p99Ms} ms, errors ${pct(r.slo.errorRate)}).` +
        (r.level.disabling !== null ? ` The SLO broke at level ${r.level.disabling.toFixed(2)} (guardrail halted ${r.level.guardrailHalts}x).` : '') +
        (r.level.scope === 'fleet' ? ' These levels are the fleet\'s: one level for this route on every replica.' : ''))
    }
    if (r.requests === 0) {
      lines.push('- No request reached this route: nothing was tested.')
    } else if (r.totalInjected === 0) {
      lines.push(`- No fault was injected${r.tooLittleTraffic ? ': no window had enough traffic to judge, so the chaos level never rose' : ''}; nothing was tested.`)
    } else if (r.weaknesses.length === 0) {
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
