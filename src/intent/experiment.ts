/**
 * Experiments: one mode (intent or uniform) for a bounded time against
 * live traffic, then a report. Routes take part when chaos is enabled on
 * them; in intent mode only routes that declared an intent inject.
 *
 * Figures that /metrics also has (faults injected, outcomes) are taken as
 * deltas of the very same counters, so the report and the dashboard agree
 * to the request. The attribution of caller-visible failures to fault kinds
 * comes from the intent engines' books.
 */
import type { Metrics } from '../metrics/metrics.js'
import type { IntentEngine } from './engine.js'
import { buildReport, type ExperimentReport } from './experiment-report.js'
import { FaultlineError } from '../core/errors.js'

import type { ExperimentMode } from './schema.js'

export type { ExperimentMode }

type CounterValues = Map<string, number>

/** Current values of a counter, keyed by its label values joined with "|" in `keys` order. */
async function counterValues (metrics: Metrics, name: string, keys: string[]): Promise<CounterValues> {
  const metric = metrics.registry.getSingleMetric(name)
  const out: CounterValues = new Map()
  if (metric === undefined) return out
  const data = await metric.get()
  for (const v of data.values) {
    const key = keys.map((k) => String(v.labels[k] ?? '')).join('|')
    out.set(key, (out.get(key) ?? 0) + v.value)
  }
  return out
}

function delta (after: CounterValues, before: CounterValues): CounterValues {
  const out: CounterValues = new Map()
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0)
    if (d !== 0) out.set(k, d)
  }
  return out
}

interface Running {
  mode: ExperimentMode
  durationMs: number
  startedAt: number
  startedAtIso: string
  timer: NodeJS.Timeout
  injected: CounterValues
  outcomes: CounterValues
  engines: IntentEngine[]
  done: Promise<ExperimentReport>
  resolve: (report: ExperimentReport) => void
}

export class ExperimentRunner {
  private readonly metrics: Metrics
  /** The intent engines of the routes with chaos enabled, as the live config has them. */
  private readonly engines: () => IntentEngine[]
  private readonly evaluationMs: () => number
  private running: Running | undefined
  private last: ExperimentReport | undefined
  private readonly lastByMode = new Map<ExperimentMode, ExperimentReport>()

  private readonly minRequests: () => number

  constructor (metrics: Metrics, engines: () => IntentEngine[], evaluationMs: () => number, minRequests: () => number = () => 20) {
    this.metrics = metrics
    this.engines = engines
    this.evaluationMs = evaluationMs
    this.minRequests = minRequests
  }

  /** Client requests the running experiment's routes have seen so far (the CLI's "send traffic" hint). */
  get trafficSoFar (): { requests: number, elapsedMs: number } | undefined {
    const r = this.running
    if (r === undefined) return undefined
    return { requests: r.engines.reduce((n, e) => n + e.booksSoFar.requests, 0), elapsedMs: performance.now() - r.startedAt }
  }

  get current (): { mode: ExperimentMode, durationMs: number, elapsedMs: number, routes: string[] } | undefined {
    const r = this.running
    return r === undefined ? undefined : { mode: r.mode, durationMs: r.durationMs, elapsedMs: performance.now() - r.startedAt, routes: r.engines.map((e) => e.route) }
  }

  get lastReport (): ExperimentReport | undefined { return this.last }

  /** The last report of each mode, intent first: the HTML report puts them side by side. */
  get lastReports (): ExperimentReport[] {
    return (['intent', 'uniform'] as const).flatMap((mode) => { const r = this.lastByMode.get(mode); return r === undefined ? [] : [r] })
  }

  /** Starts an experiment; throws if one is running. Resolves `done` with the report when it ends. */
  async start (mode: ExperimentMode, durationMs: number): Promise<{ done: Promise<ExperimentReport> }> {
    if (this.running !== undefined) throw new ExperimentBusyError(this.running.mode)
    const engines = this.engines()
    const [injected, outcomes] = await Promise.all([
      counterValues(this.metrics, 'faultline_faults_injected_total', ['route', 'fault']),
      counterValues(this.metrics, 'faultline_requests_total', ['route', 'outcome'])
    ])
    for (const engine of engines) {
      engine.resetBooks()
      engine.setMode(mode === 'uniform' ? 'uniform' : engine.declared ? 'intent' : 'off')
    }
    let resolve!: (report: ExperimentReport) => void
    const done = new Promise<ExperimentReport>((_resolve) => { resolve = _resolve })
    this.running = {
      mode,
      durationMs,
      startedAt: performance.now(),
      startedAtIso: new Date().toISOString(),
      timer: setTimeout(() => { void this.stop() }, durationMs),
      injected,
      outcomes,
      engines,
      done,
      resolve
    }
    return { done }
  }

  /** Ends the running experiment now (or at its deadline) and returns its report. */
  async stop (): Promise<ExperimentReport | undefined> {
    const r = this.running
    if (r === undefined) return undefined
    this.running = undefined
    clearTimeout(r.timer)
    const [injected, outcomes] = await Promise.all([
      counterValues(this.metrics, 'faultline_faults_injected_total', ['route', 'fault']),
      counterValues(this.metrics, 'faultline_requests_total', ['route', 'outcome'])
    ])
    const now = performance.now()
    const report = buildReport({
      mode: r.mode,
      startedAt: r.startedAtIso,
      durationMs: now - r.startedAt,
      engines: r.engines,
      injected: delta(injected, r.injected),
      outcomes: delta(outcomes, r.outcomes),
      now,
      evaluationMs: this.evaluationMs(),
      minRequests: this.minRequests()
    })
    // Back to each route's standing mode: planned chaos where intent and chaos are both configured.
    for (const engine of r.engines) engine.setMode(engine.declared ? 'intent' : 'off')
    this.last = report
    this.lastByMode.set(report.mode, report)
    r.resolve(report)
    return report
  }

  dispose (): void {
    if (this.running !== undefined) clearTimeout(this.running.timer)
  }
}

export class ExperimentBusyError extends FaultlineError {
  constructor (mode: string) {
    super('experiment_running', `an experiment (${mode}) is already running; stop it first`)
    this.name = 'ExperimentBusyError'
  }
}
