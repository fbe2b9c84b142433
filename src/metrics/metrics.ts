/**
 * Every metric faultline exports, defined once. Names follow Prometheus
 * conventions (base units, counters end in _total); label names are `as
 * const` tuples so a wrong label fails to compile. Label values are always
 * drawn from config or from fixed enums, never from raw paths or ids.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { VERSION } from '../version.js'

import { OUTCOMES, type Outcome } from '../core/outcome.js'

export { OUTCOMES, type Outcome }

/** Seconds; spans sub-millisecond sidecar hops to multi-second timeouts. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'])
/** Keeps the method label bounded: extension methods are folded into OTHER. */
export function methodLabel (method: string): string {
  return METHODS.has(method) ? method : 'OTHER'
}

export function statusClass (status: number): string {
  if (status >= 500) return '5xx'
  if (status >= 400) return '4xx'
  if (status >= 300) return '3xx'
  if (status >= 200) return '2xx'
  return status > 0 ? '1xx' : 'none'
}

/** Why the listener refused a request before any route or upstream saw it (docs/SECURITY.md). */
export const EDGE_REJECTIONS = ['bad_request', 'request_timeout', 'uri_too_long', 'header_too_large', 'too_many_headers', 'body_too_large', 'body_fragmented', 'slow_reader', 'method_not_supported'] as const
export type EdgeRejection = (typeof EDGE_REJECTIONS)[number]

/** The reason for a Node 'clientError', or undefined when the client just went away. */
export function clientErrorReason (code: string | undefined): EdgeRejection | undefined {
  if (code === 'ECONNRESET' || code === 'EPIPE') return undefined
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return 'request_timeout'
  if (code === 'HPE_HEADER_OVERFLOW') return 'header_too_large'
  return 'bad_request'
}

const REDUNDANT_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/**
 * Why a route's chaos is on (1) or off (0), the `reason` of
 * faultline_chaos_active. On: planned (the intent engine's plan is
 * injecting), faults (hand-written faults are armed), header_triggers (only
 * x-faultline-fault headers can inject). Off: disabled (chaos.enabled false
 * or switched off on the route), kill_switch, guardrail (planned injection
 * halted by the route's SLO), idle (enabled with nothing to inject now),
 * source_down (planned injection stopped: the fleet's figures cannot be read
 * from Prometheus, docs/FLEET.md).
 */
export const CHAOS_REASONS = ['planned', 'faults', 'header_triggers', 'disabled', 'kill_switch', 'guardrail', 'idle', 'source_down'] as const
export type ChaosReason = (typeof CHAOS_REASONS)[number]
export interface ChaosStatus { active: boolean, reason: ChaosReason }

/** Requests of one label set counted since `faultline_requests_total` was last collected. */
export interface PendingRequests {
  readonly labels: Record<'route' | 'upstream' | 'method' | 'status_class' | 'outcome' | 'injected', string>
  count: number
}

export class Metrics {
  readonly registry = new Registry()

  /**
   * The per-request counter, kept as plain numbers by label set and folded
   * into prom-client when it collects `requests` (a scrape or any get()).
   * prom-client builds a key from the label values and validates them on
   * every inc(), child or not: ~2 us per request under load (bench/).
   * Shared by every route of every config generation, so a reload neither
   * loses counts nor grows this past the label sets that exist.
   */
  readonly pendingRequests = new Map<string, PendingRequests>()

  readonly requests: Counter<'route' | 'upstream' | 'method' | 'status_class' | 'outcome' | 'injected'> = new Counter({
    name: 'faultline_requests_total',
    help: 'Client requests handled, by route, upstream, method, response status class, outcome, and whether an injected fault shaped the answer (injected="true").',
    labelNames: ['route', 'upstream', 'method', 'status_class', 'outcome', 'injected'] as const,
    registers: [this.registry],
    collect: () => {
      for (const pending of this.pendingRequests.values()) {
        if (pending.count === 0) continue
        this.requests.inc(pending.labels, pending.count)
        pending.count = 0
      }
    }
  })

  readonly requestDuration = new Histogram({
    name: 'faultline_request_duration_seconds',
    help: 'Time from receiving a client request to the end of its response, as the client saw it.',
    labelNames: ['route', 'outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry]
  })

  readonly upstreamErrors = new Counter({
    name: 'faultline_upstream_errors_total',
    help: 'Failed upstream attempts, by route, error class, and whether a fault made the failure (injected="true") or the upstream did.',
    labelNames: ['route', 'error_class', 'injected'] as const,
    registers: [this.registry]
  })

  readonly faultsInjected = new Counter({
    name: 'faultline_faults_injected_total',
    help: 'Faults injected, by route and fault (its configured name, or its kind). Counted per attempt.',
    labelNames: ['route', 'fault'] as const,
    registers: [this.registry]
  })

  readonly faultsExpired = new Counter({
    name: 'faultline_faults_expired_total',
    help: 'Faults removed because their `until` or `ttl` ended, by route and fault (its configured name, or its kind).',
    labelNames: ['route', 'fault'] as const,
    registers: [this.registry]
  })

  /** Each live route's chaos status, read when faultline_chaos_active is collected; the running Faultline sets it. */
  chaosStatus: () => Iterable<{ route: string } & ChaosStatus> = () => []

  /**
   * One series per live route, computed on collect from the routes
   * themselves: a route removed by a reload, or whose reason changed, leaves
   * no stale series behind. Grafana draws chaos periods from it.
   */
  readonly chaosActive: Gauge<'route' | 'reason'> = new Gauge({
    name: 'faultline_chaos_active',
    help: 'Whether fault injection is on for the route (1) or stopped (0), with the reason: planned, faults, header_triggers (on); disabled, kill_switch, guardrail, idle, source_down (off).',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
    collect: () => {
      this.chaosActive.reset()
      for (const s of this.chaosStatus()) this.chaosActive.set({ route: s.route, reason: s.reason }, s.active ? 1 : 0)
    }
  })

  /** With controller.source prometheus: each live intent route's source state; the running Faultline sets it. */
  controllerSourceStatus: () => Iterable<{ route: string, reason: string }> = () => []

  /** One series per intent route, computed on collect (no stale series after a reload or a change of reason). */
  readonly controllerSourceUp: Gauge<'route' | 'reason'> = new Gauge({
    name: 'faultline_controller_source_up',
    help: 'controller.source prometheus: whether the fleet\'s figures for the route were read (1, reason ok) or not (0: unreachable, error, empty or stale; planned injection stops).',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
    collect: () => {
      this.controllerSourceUp.reset()
      for (const s of this.controllerSourceStatus()) this.controllerSourceUp.set({ route: s.route, reason: s.reason }, s.reason === 'ok' ? 1 : 0)
    }
  })

  readonly buildInfo = new Gauge({
    name: 'faultline_build_info',
    help: 'Always 1; its labels say which faultline version runs on which Node.js.',
    labelNames: ['version', 'node'] as const,
    registers: [this.registry]
  })

  readonly chaosLevel = new Gauge({
    name: 'faultline_chaos_level',
    help: 'Chaos level (0..1) the intensity controller set for the route; planned fault probability is level x chaos.budget.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly chaosProbability = new Gauge({
    name: 'faultline_chaos_fault_probability',
    help: 'Per-request probability of a planned fault on the route right now.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly guardrailHalts = new Counter({
    name: 'faultline_guardrail_halts_total',
    help: 'Times planned injection on a route halted because its client-visible SLO was breached.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly sloP99 = new Gauge({
    name: 'faultline_slo_p99_seconds',
    help: 'Client-visible p99 latency of the route over its SLO window.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly sloErrorRate = new Gauge({
    name: 'faultline_slo_error_rate',
    help: 'Client-visible error ratio (0..1) of the route over its SLO window.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly sloTargetP99 = new Gauge({
    name: 'faultline_slo_target_p99_seconds',
    help: 'The p99 latency threshold the route\'s intent declares.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly sloTargetErrorRate = new Gauge({
    name: 'faultline_slo_target_error_rate',
    help: 'The error ratio threshold (0..1) the route\'s intent declares.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly edgeRejections = new Counter({
    name: 'faultline_edge_rejections_total',
    help: 'Client requests refused at the listener before reaching an upstream, by reason: bad_request (400: malformed or smuggling-shaped HTTP), request_timeout (408: headers or body not received in time), uri_too_long (414), header_too_large and too_many_headers (431), body_too_large (413), slow_reader (a response cut because the client did not read it for bodyIdleTimeoutMs), method_not_supported (501: CONNECT).',
    labelNames: ['reason'] as const,
    registers: [this.registry]
  })

  readonly websockets = new Counter({
    name: 'faultline_websocket_connections_total',
    help: 'WebSocket (HTTP/1.1 upgrade) connections by route and event: opened (101 relayed), closed, refused (the handshake was answered without switching protocols) and error (the handshake or the connection failed); injected="true" when a fault caused it.',
    labelNames: ['route', 'event', 'injected'] as const,
    registers: [this.registry]
  })

  readonly unmatched = new Counter({
    name: 'faultline_unmatched_requests_total',
    help: 'Client requests that matched no route (answered 404).',
    registers: [this.registry]
  })

  readonly adminRequests = new Counter({
    name: 'faultline_admin_requests_total',
    help: 'Requests to the admin port, by endpoint (the path pattern as registered, "unmatched" for a path no endpoint has, "malformed" for one the HTTP parser refused), method and status code: refusals (401, 403, 404, 405, 429) are counted like answers.',
    labelNames: ['endpoint', 'method', 'code'] as const,
    registers: [this.registry]
  })

  readonly configReloads = new Counter({
    name: 'faultline_config_reloads_total',
    help: 'Config reload attempts, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry]
  })

  readonly configLoaded = new Gauge({
    name: 'faultline_config_last_reload_success_timestamp_seconds',
    help: 'Unix time of the last config that was loaded successfully.',
    registers: [this.registry]
  })

  readonly routesConfigured = new Gauge({
    name: 'faultline_routes',
    help: 'Routes in the live config.',
    registers: [this.registry]
  })

  readonly retries = new Counter({
    name: 'faultline_retries_total',
    help: 'Retries made (attempts after the first), by route and the error class that caused them.',
    labelNames: ['route', 'error_class'] as const,
    registers: [this.registry]
  })

  readonly retryBudgetExhausted = new Counter({
    name: 'faultline_retry_budget_exhausted_total',
    help: 'Retries not made because the route\'s retry budget was spent.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly breakerState = new Gauge({
    name: 'faultline_breaker_state',
    help: 'Circuit breaker state of a route\'s upstream: 1 for the current state, 0 for the others.',
    labelNames: ['route', 'upstream', 'state'] as const,
    registers: [this.registry]
  })

  readonly breakerTransitions = new Counter({
    name: 'faultline_breaker_transitions_total',
    help: 'Circuit breaker state changes, by route, upstream and the states left and entered.',
    labelNames: ['route', 'upstream', 'from', 'to'] as const,
    registers: [this.registry]
  })

  readonly authGuardTrips = new Counter({
    name: 'faultline_auth_guard_trips_total',
    help: 'Times repeated 401/403 answers made the auth guard hold requests back.',
    labelNames: ['route', 'upstream'] as const,
    registers: [this.registry]
  })

  /**
   * Each bulkhead's current figures by route, written by the policy on every
   * acquire and release (two field writes) and copied into the gauges below
   * when they are collected: four prom-client set() calls per request were
   * a measurable share of the hot path (bench/).
   */
  readonly bulkheadLevels = new Map<string, { inFlight: number, queued: number }>()

  readonly bulkheadInFlight: Gauge<'route'> = new Gauge({
    name: 'faultline_bulkhead_in_flight',
    help: 'Requests holding a bulkhead slot, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
    collect: () => { for (const [route, level] of this.bulkheadLevels) this.bulkheadInFlight.set({ route }, level.inFlight) }
  })

  readonly bulkheadQueued: Gauge<'route'> = new Gauge({
    name: 'faultline_bulkhead_queued',
    help: 'Requests waiting for a bulkhead slot, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
    collect: () => { for (const [route, level] of this.bulkheadLevels) this.bulkheadQueued.set({ route }, level.queued) }
  })

  readonly cacheLookups = new Counter({
    name: 'faultline_cache_lookups_total',
    help: 'Last-known-good cache lookups made for failed requests, by result: hit (fresh), stale (served past freshness) or miss.',
    labelNames: ['route', 'result'] as const,
    registers: [this.registry]
  })

  readonly cacheStores = new Counter({
    name: 'faultline_cache_stores_total',
    help: 'Responses stored in the last-known-good cache.',
    labelNames: ['route'] as const,
    registers: [this.registry]
  })

  readonly deferralsAccepted = new Counter({
    name: 'faultline_deferrals_accepted_total',
    help: 'Writes the defer fallback stored and answered 202, by route and whether the failure that deferred them was injected.',
    labelNames: ['route', 'injected'] as const,
    registers: [this.registry]
  })

  readonly deferralDeliveries = new Counter({
    name: 'faultline_deferral_deliveries_total',
    help: 'Delivery attempts of deferred writes, by result: delivered (the upstream answered), retry (failed, tried again later), dead (failed maxAttempts times) or expired (older than maxAgeMs).',
    labelNames: ['route', 'result'] as const,
    registers: [this.registry]
  })

  /** Queue figures per route, read from the deferral store when the gauges below are collected; the running Faultline sets it. */
  deferralStats: () => Promise<Array<{ route: string, pending: number, dead: number, oldestAgeS: number }>> = async () => []
  #deferralRead: { at: number, value: ReturnType<Metrics['deferralStats']> } | undefined

  /** One store read per scrape for the three gauges. */
  private async deferralFigures (): ReturnType<Metrics['deferralStats']> {
    const now = performance.now()
    if (this.#deferralRead === undefined || now - this.#deferralRead.at > 250) this.#deferralRead = { at: now, value: this.deferralStats().catch(() => []) }
    return await this.#deferralRead.value
  }

  readonly deferralQueueDepth: Gauge<'route'> = new Gauge({
    name: 'faultline_deferral_queue_depth',
    help: 'Deferred writes waiting for delivery, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
    collect: async () => {
      const figures = await this.deferralFigures()
      this.deferralQueueDepth.reset()
      for (const f of figures) this.deferralQueueDepth.set({ route: f.route }, f.pending)
    }
  })

  readonly deferralOldestAge: Gauge<'route'> = new Gauge({
    name: 'faultline_deferral_oldest_age_seconds',
    help: 'Age of the oldest deferred write waiting for delivery, by route (0 when none waits).',
    labelNames: ['route'] as const,
    registers: [this.registry],
    collect: async () => {
      const figures = await this.deferralFigures()
      this.deferralOldestAge.reset()
      for (const f of figures) this.deferralOldestAge.set({ route: f.route }, f.oldestAgeS)
    }
  })

  readonly deferralDeadLetters: Gauge<'route'> = new Gauge({
    name: 'faultline_deferral_dead_letters',
    help: 'Deferred writes that will not be delivered (maxAttempts or maxAgeMs reached) and are kept for an operator, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
    collect: async () => {
      const figures = await this.deferralFigures()
      this.deferralDeadLetters.reset()
      for (const f of figures) this.deferralDeadLetters.set({ route: f.route }, f.dead)
    }
  })

  readonly alerts = new Counter({
    name: 'faultline_alerts_total',
    help: 'Alerts faultline raised for its webhooks, by type and result: sent, failed (every attempt failed), deduplicated, rate_limited or dropped (queue full).',
    labelNames: ['type', 'result'] as const,
    registers: [this.registry]
  })

  readonly fleetRedisUp = new Gauge({
    name: 'faultline_fleet_redis_up',
    help: 'Whether the fleet Redis connection is connected and ready (1) or not (0), by connection (commands, subscriber, ...); while 0 the fleet features it serves use local state (docs/FLEET.md).',
    labelNames: ['connection'] as const,
    registers: [this.registry]
  })

  /** Each live intent route's part in the fleet level (src/fleet/levels.ts); the running Faultline sets it. */
  fleetRoles: () => Iterable<{ route: string, role: string }> = () => []

  readonly fleetRouteRole: Gauge<'route' | 'role'> = new Gauge({
    name: 'faultline_fleet_route_role',
    help: 'This replica\'s part in the route\'s one fleet chaos level: evaluates (holds the lease and sets the level), follows (adopts it) or local (fleet Redis unreachable: evaluates on its own). 1 for the current role.',
    labelNames: ['route', 'role'] as const,
    registers: [this.registry],
    collect: () => {
      this.fleetRouteRole.reset()
      for (const r of this.fleetRoles()) this.fleetRouteRole.set({ route: r.route, role: r.role }, 1)
    }
  })

  /**
   * What shares state through the fleet Redis, per route: a breaker with
   * `fleet: true`, a cache with `store: redis`. Added when a route's
   * policies are built and deleted when they are disposed.
   */
  readonly fleetSharing = new Set<{ route: string, feature: 'breaker' | 'cache', shared: () => boolean }>()

  readonly fleetShared: Gauge<'route' | 'feature'> = new Gauge({
    name: 'faultline_fleet_shared',
    help: 'Whether the route\'s fleet-shared state works through the fleet Redis (1) or falls back to this replica\'s own (0: Redis unreachable), by route and feature: breaker (resilience.breaker.fleet) or cache (cache store redis).',
    labelNames: ['route', 'feature'] as const,
    registers: [this.registry],
    collect: () => {
      this.fleetShared.reset()
      for (const s of this.fleetSharing) this.fleetShared.set({ route: s.route, feature: s.feature }, s.shared() ? 1 : 0)
    }
  })

  readonly fleetBudgetDenied = new Counter({
    name: 'faultline_fleet_budget_denied_total',
    help: 'Faults not injected because chaos.fleetBudget had no token, by route and reason: exhausted (the fleet spent its faults for now) or unreachable (fleet Redis down: only tokens already leased are spent).',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry]
  })

  readonly fleetRedisErrors = new Counter({
    name: 'faultline_fleet_redis_errors_total',
    help: 'Fleet Redis connection errors and failed commands, by connection; each one fell back to local state and failed no request.',
    labelNames: ['connection'] as const,
    registers: [this.registry]
  })

  constructor (options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry })
      // prom-client exports these gauges with a _total suffix, which
      // `promtool check metrics` rejects (only counters end in _total).
      // Each is the sum of its per-type sibling (nodejs_active_handles{type}, ...).
      for (const name of REDUNDANT_DEFAULT_METRICS) this.registry.removeSingleMetric(name)
    }
    this.buildInfo.labels(VERSION, process.version).set(1)
    for (const reason of EDGE_REJECTIONS) this.edgeRejections.labels(reason).inc(0)
    this.configReloads.labels('success').inc(0)
    this.configReloads.labels('failure').inc(0)
  }
}
