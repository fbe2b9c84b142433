/**
 * The fleet SLO source: once per evaluation window, each intent route's
 * client-visible figures summed over every replica, read from Prometheus'
 * HTTP API (GET /api/v1/query, the documented JSON) over undici.
 *
 * One HTTP query per route: the route's five figures are tagged with
 * label_replace and joined with `or`, so a window costs Prometheus one
 * query per route, each a lookup of recorded series (docker/prometheus/fleet-rules.yml).
 *
 * Fail safe: any figure missing (unreachable, an error, an empty answer,
 * stale data) gives the route a reading that says why, and the engine
 * stops planned injection until a good reading comes back. Nothing here
 * runs on a request's path; a query is bounded by its timeout.
 */
import { readFile } from 'node:fs/promises'
import { Pool } from 'undici'
import type { Logger } from 'pino'
import { z } from 'zod'
import { DEFAULT_FLEET_QUERIES, type FleetQueries, type FleetQueryName, type PrometheusSourceConfig } from './prometheus-schema.js'

/** Why the fleet figures of a route are not usable; `ok` when they are. */
export const SOURCE_REASONS = ['ok', 'unreachable', 'error', 'empty', 'stale'] as const
export type SourceReason = (typeof SOURCE_REASONS)[number]

export interface FleetFigures {
  /** Fleet client requests in one evaluation window (the requests rate times evaluationMs). */
  requests: number
  errorRate: number
  p99Ms: number
  /** Fleet requests in one window that an injected fault shaped. */
  injected: number
  /** Seconds since the newest scrape behind the figures, on Prometheus' clock. */
  ageSeconds: number
  /** When that scrape was (Unix seconds, Prometheus' clock): unchanged means the figures are the ones already judged. */
  scrapedAt: number
}

export type FleetReading =
  | { ok: true, figures: FleetFigures }
  | { ok: false, reason: Exclude<SourceReason, 'ok'>, detail: string }

export interface FleetRoute { name: string, queries?: FleetQueries }

const FIGURES: FleetQueryName[] = ['requests', 'errorRate', 'p99', 'injected', 'age']
const TAG = 'faultline_query'

const queryAnswer = z.object({
  status: z.string(),
  error: z.string().optional(),
  errorType: z.string().optional(),
  data: z.object({
    resultType: z.string(),
    result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]) }))
  }).optional()
})

/** A PromQL string literal's content: backslashes and double quotes escaped. */
function promqlString (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')
}

/** The route's label matchers: `route="name"` and the configured selector. */
export function routeMatchers (route: string, selector: string): string {
  const extra = selector.trim().replace(/,\s*$/, '')
  return `route="${promqlString(route)}"` + (extra === '' ? '' : `,${extra}`)
}

/** The one query that fetches all five figures of a route, each tagged by its name. */
export function routeQuery (route: FleetRoute, config: PrometheusSourceConfig): string {
  const labels = routeMatchers(route.name, config.selector)
  return FIGURES.map((name) => {
    const template = route.queries?.[name] ?? config.queries[name] ?? DEFAULT_FLEET_QUERIES[name]
    return `label_replace((${template.replaceAll('$labels', labels)}), "${TAG}", "${name}", "", "")`
  }).join(' or ')
}

/** Turns Prometheus' answer for one route into a reading. */
export function readingFrom (body: unknown, evaluationMs: number, staleAfterMs: number): FleetReading {
  const parsed = queryAnswer.safeParse(body)
  if (!parsed.success) return { ok: false, reason: 'error', detail: 'the answer is not Prometheus query JSON' }
  const answer = parsed.data
  if (answer.status !== 'success' || answer.data === undefined) return { ok: false, reason: 'error', detail: `${answer.errorType ?? 'error'}: ${answer.error ?? 'no data'}` }
  if (answer.data.resultType !== 'vector') return { ok: false, reason: 'error', detail: `expected an instant vector, got a ${answer.data.resultType}` }
  const values = new Map<string, number>()
  let evaluatedAt = 0
  for (const sample of answer.data.result) {
    const name = sample.metric[TAG] ?? ''
    if (values.has(name)) return { ok: false, reason: 'error', detail: `the ${name} query returned more than one series` }
    values.set(name, Number(sample.value[1]))
    evaluatedAt = sample.value[0]
  }
  const missing = FIGURES.filter((name) => !values.has(name) && (name === 'requests' || name === 'age'))
  if (missing.length > 0) return { ok: false, reason: 'empty', detail: `no data for ${missing.join(', ')}` }
  const perSecond = values.get('requests')!
  const ageSeconds = values.get('age')!
  if (!Number.isFinite(ageSeconds) || ageSeconds * 1000 > staleAfterMs) {
    return { ok: false, reason: 'stale', detail: `the newest scrape is ${Number.isFinite(ageSeconds) ? Math.round(ageSeconds * 10) / 10 + ' s' : 'of unknown age'} old (staleAfterMs ${staleAfterMs})` }
  }
  const windowSeconds = evaluationMs / 1000
  const requests = Number.isFinite(perSecond) ? perSecond * windowSeconds : 0
  // With no traffic the ratio and the quantile are NaN (0/0): nothing to judge, and minRequests says so.
  const finite = (name: FleetQueryName): number | undefined => {
    const v = values.get(name)
    return v !== undefined && Number.isFinite(v) ? v : undefined
  }
  const errorRate = finite('errorRate')
  const p99 = finite('p99')
  if (requests > 0 && (errorRate === undefined || p99 === undefined)) {
    return { ok: false, reason: 'empty', detail: `no data for ${[errorRate === undefined ? 'errorRate' : '', p99 === undefined ? 'p99' : ''].filter(Boolean).join(', ')} though the fleet has requests` }
  }
  return {
    ok: true,
    // Rounded to the millisecond: the same scrape must compare equal across windows.
    figures: { requests, errorRate: errorRate ?? 0, p99Ms: (p99 ?? 0) * 1000, injected: (finite('injected') ?? 0) * windowSeconds, ageSeconds, scrapedAt: Math.round((evaluatedAt - ageSeconds) * 1000) / 1000 }
  }
}

export interface PrometheusSourceOptions {
  logger: Logger
  /** The evaluation window: requests per second become requests per window; the timeout stays inside it. */
  evaluationMs: number
}

export class PrometheusSource {
  readonly config: PrometheusSourceConfig
  private readonly pool: Pool
  private readonly base: URL
  private readonly logger: Logger
  private readonly evaluationMs: number
  /** Each route's latest reason, for the metric and to log transitions once. */
  private readonly reasons = new Map<string, { reason: SourceReason, detail: string }>()
  private closed = false

  constructor (config: PrometheusSourceConfig, options: PrometheusSourceOptions) {
    this.config = config
    this.base = new URL(config.url)
    this.pool = new Pool(this.base.origin, { connections: 4, connectTimeout: this.timeoutMs(options.evaluationMs) })
    this.logger = options.logger
    this.evaluationMs = options.evaluationMs
  }

  private timeoutMs (evaluationMs: number): number {
    return Math.max(10, Math.min(this.config.timeoutMs, Math.floor(evaluationMs * 0.8)))
  }

  /** The latest reason of every route read so far (ok or why not). */
  get states (): ReadonlyMap<string, { reason: SourceReason, detail: string }> { return this.reasons }

  /** Reads every route's fleet figures; never rejects (a failure is a reading that says why). */
  async read (routes: readonly FleetRoute[]): Promise<Map<string, FleetReading>> {
    const out = new Map<string, FleetReading>()
    let headers: Record<string, string> = {}
    try {
      headers = await this.authorization()
    } catch (err) {
      for (const route of routes) out.set(route.name, { ok: false, reason: 'error', detail: `cannot read controller.prometheus.bearerTokenFile: ${(err as Error).message}` })
    }
    if (out.size === 0) {
      await Promise.all(routes.map(async (route) => { out.set(route.name, await this.readRoute(route, headers)) }))
    }
    for (const [name, reading] of out) this.note(name, reading)
    for (const name of [...this.reasons.keys()]) if (!out.has(name)) this.reasons.delete(name)
    return out
  }

  private async authorization (): Promise<Record<string, string>> {
    if (this.config.bearerTokenFile === undefined) return {}
    const token = (await readFile(this.config.bearerTokenFile, 'utf8')).trim()
    if (token === '') throw new Error('the file is empty')
    return { authorization: `Bearer ${token}` }
  }

  private async readRoute (route: FleetRoute, headers: Record<string, string>): Promise<FleetReading> {
    const timeout = this.timeoutMs(this.evaluationMs)
    const path = this.base.pathname.replace(/\/$/, '') + '/api/v1/query'
    // POST with a form body: the documented alternative to GET for long queries.
    const form = new URLSearchParams({ query: routeQuery(route, this.config), timeout: `${timeout}ms` })
    let status: number
    let body: unknown
    try {
      const res = await this.pool.request({
        method: 'POST',
        path,
        headers: { ...headers, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: AbortSignal.timeout(timeout)
      })
      status = res.statusCode
      const text = await res.body.text()
      try {
        body = JSON.parse(text)
      } catch {
        return { ok: false, reason: 'error', detail: `HTTP ${status}: not JSON` }
      }
    } catch (err) {
      return { ok: false, reason: 'unreachable', detail: (err as Error).message }
    }
    // Prometheus answers 400/422/503 with its JSON error; anything else non-2xx without it is still an error.
    if (status >= 300 && (body as { status?: unknown } | null)?.status !== 'error') return { ok: false, reason: 'error', detail: `HTTP ${status}` }
    return readingFrom(body, this.evaluationMs, this.config.staleAfterMs)
  }

  /** One log line when a route's source state changes (down with why, or back). */
  private note (route: string, reading: FleetReading): void {
    const before = this.reasons.get(route)
    const reason: SourceReason = reading.ok ? 'ok' : reading.reason
    const detail = reading.ok ? '' : reading.detail
    this.reasons.set(route, { reason, detail })
    if (before?.reason === reason) return
    if (reason === 'ok') {
      if (before !== undefined) this.logger.info({ route, source: 'prometheus', was: before.reason }, 'fleet SLO source: figures are back, planned injection resumes on this route')
    } else {
      this.logger.warn({ route, source: 'prometheus', reason, detail, url: this.config.url }, `fleet SLO source ${reason}: planned injection stops on this route until the fleet's figures are back`)
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.destroy()
  }
}
