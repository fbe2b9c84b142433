/**
 * Built-in escalation: faultline POSTs JSON alerts to the configured
 * webhooks when a breaker opens, the auth guard trips, a route's
 * client-visible error rate goes over its threshold, or (from the intent
 * engine) a guardrail halts chaos.
 *
 * Never on the request path: emit() only deduplicates, takes a rate-limit
 * token and pushes onto a bounded queue; one sender loop per webhook does
 * the POSTs, retries with exponential backoff and full jitter, and gives
 * up after `attempts`. Nothing here can slow or fail a proxied request.
 */
import { randomUUID } from 'node:crypto'
import { request } from 'undici'
import type { Logger } from 'pino'
import type { Metrics } from '../metrics/metrics.js'
import type { FailureRecorder } from '../failure-report/recorder.js'
import { summarise, WINDOWS } from '../failure-report/report.js'
import type { AlertsConfig, AlertType, WebhookConfig } from './schema.js'
import { retryAfterMs } from '../policies/retry-decision.js'

export interface AlertInput {
  type: AlertType
  route: string
  upstream?: string
  /** One line for a human; a default per type when absent. */
  summary?: string
  /** Type-specific facts (breaker states, thresholds, the guardrail that halted). */
  details?: Record<string, unknown>
}

export interface Alert {
  id: string
  source: 'faultline'
  type: AlertType
  severity: 'page' | 'ticket'
  summary: string
  route: string
  upstream: string | undefined
  at: string
  /** Earlier occurrences of the same alert suppressed by deduplication since the last one sent. */
  suppressed: number
  details: Record<string, unknown>
  /** The route's last five minutes, from the failure report. */
  context: {
    requests: number
    failed: number
    errorRate: number | null
    errorClasses: Record<string, number>
    sampleError: { status: number, errorClass: string | undefined, path: string } | undefined
    /** Requests an injected fault shaped, shown beside the real figures (which leave them out). */
    injected: { requests: number, failed: number, shortCircuited: number, fallbacks: number }
  }
}

const MAX_DEDUPE_KEYS = 10_000

const SEVERITY: Record<AlertType, 'page' | 'ticket'> = {
  breaker_opened: 'page',
  auth_guard_tripped: 'page',
  error_rate: 'page',
  guardrail_halt: 'ticket'
}

function defaultSummary (a: AlertInput): string {
  switch (a.type) {
    case 'breaker_opened': return `circuit breaker opened: route ${a.route} -> ${a.upstream ?? '?'}`
    case 'auth_guard_tripped': return `auth guard tripped: route ${a.route} -> ${a.upstream ?? '?'} answers 401/403`
    case 'error_rate': return `route ${a.route}: client error rate over its threshold`
    case 'guardrail_halt': return `chaos halted by a guardrail on route ${a.route}`
  }
}

const sleep = async (ms: number, signal: AbortSignal): Promise<void> => {
  await new Promise<void>((resolve) => {
    if (signal.aborted) { resolve(); return }
    const timer = setTimeout(done, ms)
    function done (): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
    signal.addEventListener('abort', done, { once: true })
  })
}

/** Token bucket refilled continuously at perMinute per minute, holding at most perMinute. */
class RateLimit {
  private tokens: number
  private last = Date.now()
  constructor (private readonly perMinute: number) { this.tokens = perMinute }
  take (): boolean {
    const now = Date.now()
    this.tokens = Math.min(this.perMinute, this.tokens + (now - this.last) * this.perMinute / 60_000)
    this.last = now
    if (this.tokens < 1) return false
    this.tokens--
    return true
  }
}

class Webhook {
  readonly config: WebhookConfig
  private readonly queue: Alert[] = []
  private readonly limit: RateLimit
  private running: Promise<void> | undefined
  private readonly notifier: AlertNotifier

  constructor (config: WebhookConfig, notifier: AlertNotifier) {
    this.config = config
    this.notifier = notifier
    this.limit = new RateLimit(config.perMinute)
  }

  wants (type: AlertType): boolean { return this.config.types === undefined || this.config.types.includes(type) }

  push (alert: Alert): void {
    if (!this.limit.take()) { this.notifier.count(alert.type, 'rate_limited'); return }
    if (this.queue.length >= this.config.maxQueue) {
      const dropped = this.queue.shift()!
      this.notifier.count(dropped.type, 'dropped')
    }
    this.queue.push(alert)
    this.running ??= this.drain().finally(() => { this.running = undefined })
  }

  private async drain (): Promise<void> {
    for (let alert = this.queue.shift(); alert !== undefined && !this.notifier.signal.aborted; alert = this.queue.shift()) {
      const ok = await this.deliver(alert)
      this.notifier.count(alert.type, ok ? 'sent' : 'failed')
    }
  }

  /** One alert, retried with exponential backoff and full jitter; true once a 2xx came back. */
  private async deliver (alert: Alert): Promise<boolean> {
    const { url, headers, timeoutMs, attempts, backoff } = this.config
    const body = JSON.stringify(alert)
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let waitMs = 0
      let reason: string
      try {
        const res = await request(url, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json', 'user-agent': 'faultline-alerts' },
          body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
          signal: AbortSignal.any([this.notifier.signal, AbortSignal.timeout(timeoutMs)])
        })
        await res.body.dump()
        if (res.statusCode >= 200 && res.statusCode < 300) return true
        reason = `HTTP ${res.statusCode}`
        // Another try cannot fix a request the receiver refuses (except timeouts and rate limits).
        if (res.statusCode < 500 && res.statusCode !== 408 && res.statusCode !== 429) break
        // delay-seconds or an HTTP-date (RFC 9110 §10.2.3); anything else is ignored.
        const ra = retryAfterMs(res.headers['retry-after'])
        if (ra !== undefined && ra > 0) waitMs = Math.min(ra, backoff.maxMs)
      } catch (err) {
        reason = (err as Error).message
      }
      if (this.notifier.signal.aborted) return false
      this.notifier.logger.warn({ webhook: redact(url), alert: alert.type, route: alert.route, attempt, reason }, 'alert webhook failed')
      if (attempt < attempts) {
        const cap = Math.min(backoff.maxMs, backoff.baseMs * 2 ** (attempt - 1))
        await sleep(Math.max(waitMs, Math.random() * cap), this.notifier.signal)
      }
    }
    return false
  }

  async idle (): Promise<void> { await this.running }
}

/** Origin and path only: query strings of webhook URLs often carry tokens. */
function redact (url: string): string {
  const u = new URL(url)
  return u.origin + u.pathname
}

export class AlertNotifier {
  readonly logger: Logger
  private readonly metrics: Metrics
  private readonly recorder: FailureRecorder
  private config: AlertsConfig
  private webhooks: Webhook[] = []
  /** Dedup key -> when last sent and how many were suppressed since; at most MAX_DEDUPE_KEYS. */
  private readonly recent = new Map<string, { at: number, suppressed: number }>()
  private readonly abort = new AbortController()
  private checker: NodeJS.Timeout | undefined
  private routes: () => string[] = () => []
  /** Routes currently over the error-rate threshold: alert on crossing it, not on every check. */
  private readonly overThreshold = new Set<string>()

  constructor (config: AlertsConfig, deps: { logger: Logger, metrics: Metrics, recorder: FailureRecorder }) {
    this.config = config
    this.logger = deps.logger.child({ component: 'alerts' })
    this.metrics = deps.metrics
    this.recorder = deps.recorder
    this.configure(config)
  }

  get signal (): AbortSignal { return this.abort.signal }

  /** Applies a (re)loaded config: new webhooks, threshold and check interval. */
  configure (config: AlertsConfig): void {
    this.config = config
    const previous = new Map(this.webhooks.map((w) => [JSON.stringify(w.config), w]))
    this.webhooks = config.webhooks.map((c) => previous.get(JSON.stringify(c)) ?? new Webhook(c, this))
    if (this.checker !== undefined) clearInterval(this.checker)
    this.checker = undefined
    if (this.webhooks.length > 0) {
      this.checker = setInterval(() => { this.checkErrorRates() }, config.errorRate.checkIntervalMs)
      this.checker.unref()
    }
  }

  /** Which routes the error-rate check looks at (the live route table). */
  watchRoutes (routes: () => string[]): void { this.routes = routes }

  /**
   * Raise an alert. Cheap and synchronous: safe from any code path,
   * including policy event handlers. The intent engine calls
   * emit({ type: 'guardrail_halt', route, details }) when a guardrail halts chaos.
   */
  emit (input: AlertInput): void {
    if (this.webhooks.length === 0 || this.abort.signal.aborted) return
    const key = `${input.type}|${input.route}|${input.upstream ?? ''}`
    const now = Date.now()
    const last = this.recent.get(key)
    if (last !== undefined && now - last.at < this.config.dedupeMs) {
      last.suppressed++
      this.count(input.type, 'deduplicated')
      return
    }
    if (this.recent.size >= MAX_DEDUPE_KEYS) {
      // Keys come from config (routes, upstreams), but emit() is public: forget expired ones.
      for (const [k, v] of this.recent) if (now - v.at >= this.config.dedupeMs) this.recent.delete(k)
      if (this.recent.size >= MAX_DEDUPE_KEYS) this.recent.delete(this.recent.keys().next().value!)
    }
    this.recent.set(key, { at: now, suppressed: 0 })
    const alert = this.build(input, now, last?.suppressed ?? 0)
    this.logger.warn({ alert: alert.type, route: alert.route, upstream: alert.upstream }, alert.summary)
    for (const webhook of this.webhooks) if (webhook.wants(alert.type)) webhook.push(alert)
  }

  private build (input: AlertInput, now: number, suppressed: number): Alert {
    const record = this.recorder.forRoute(input.route)
    const ups = input.upstream !== undefined && record.upstreams.has(input.upstream) ? [record.upstreams.get(input.upstream)!] : [...record.upstreams.values()]
    const w = summarise(ups.flatMap((u) => u.recent(now, WINDOWS['5m'])))
    return {
      id: randomUUID(),
      source: 'faultline',
      type: input.type,
      severity: SEVERITY[input.type],
      summary: input.summary ?? defaultSummary(input),
      route: input.route,
      upstream: input.upstream,
      at: new Date(now).toISOString(),
      suppressed,
      details: input.details ?? {},
      context: { requests: w.requests, failed: w.failed, errorRate: w.errorRate, errorClasses: w.errorClasses, sampleError: w.sampleError, injected: w.injected }
    }
  }

  /** The periodic error-rate check: alerts when a route crosses the threshold. */
  checkErrorRates (now = Date.now()): void {
    const { threshold, minRequests } = this.config.errorRate
    for (const route of this.routes()) {
      const record = this.recorder.forRoute(route)
      const w = summarise([...record.upstreams.values()].flatMap((u) => u.recent(now, WINDOWS['5m'])))
      const over = w.requests >= minRequests && w.errorRate !== null && w.errorRate > threshold
      if (over && !this.overThreshold.has(route)) {
        this.emit({
          type: 'error_rate',
          route,
          summary: `route ${route}: ${Math.round((w.errorRate ?? 0) * 1000) / 10}% of requests failed over the last 5 minutes (threshold ${threshold * 100}%)`,
          details: { errorRate: w.errorRate, threshold, requests: w.requests, window: '5m' }
        })
      }
      if (over) this.overThreshold.add(route)
      else this.overThreshold.delete(route)
    }
  }

  count (type: AlertType, result: 'sent' | 'failed' | 'deduplicated' | 'rate_limited' | 'dropped'): void {
    this.metrics.alerts.labels(type, result).inc()
  }

  /** Resolves when every queued alert has been sent or given up on (for tests and shutdown). */
  async idle (): Promise<void> { await Promise.all(this.webhooks.map(async (w) => { await w.idle() })) }

  /** Stops the checker and abandons pending retries. */
  close (): void {
    if (this.checker !== undefined) clearInterval(this.checker)
    this.abort.abort()
  }
}
