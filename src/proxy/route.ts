/**
 * A route compiled from config: its matcher fields, its upstream pool,
 * its metrics and its policy pipeline, built once per config generation.
 */
import type { Pool } from 'undici'
import type { RouteConfig } from '../config/schema.js'
import type { ChaosStatus, Metrics } from '../metrics/metrics.js'
import { RouteMetrics } from '../metrics/route-metrics.js'
import type { FailureRecorder, RouteRecord } from '../failure-report/recorder.js'
import type { UpstreamPools } from './upstreams.js'
import { countAttemptError, upstreamAttempt } from '../core/attempt.js'
import type { RequestContext } from '../core/context.js'
import type { ErrorClass } from '../core/errors.js'
import type { RouteView } from '../core/context.js'
import { composePipeline, type Policy, type UpstreamCall } from '../core/pipeline.js'
import { buildPolicies, type PolicyDeps } from '../policies/index.js'
import type { PolicyEvents } from '../policies/events.js'
import { inPipelineOrder } from '../policies/order.js'
import { validatePolicy } from '../policies/validate.js'
import type { PolicyRegistry } from '../policies/registry.js'
import { FaultSet, type FaultSetOptions } from '../faults/fault-set.js'
import { PlannedFaults } from '../faults/planned.js'
import { FaultStage } from '../faults/stage.js'
import { ChaosSwitch } from '../faults/switch.js'
import { IntentEngine, type IntentSnapshot } from '../intent/engine.js'
import { controllerSchema, intentSchema, type ControllerConfig } from '../intent/schema.js'
import type { FleetRedis } from '../fleet/redis.js'
import { FleetBudget, type FleetBudgetSnapshot } from '../fleet/budget.js'

export interface RouteDeps {
  pools: UpstreamPools
  metrics: Metrics
  /** Policy state kept across reloads (breakers, caches, bulkheads, budgets). */
  policyState: PolicyRegistry
  /** The process-wide kill switch; a route on its own gets a switch of its own. */
  chaos?: ChaosSwitch
  /** Where finished requests are recorded for GET /report (src/report); none in unit tests. */
  report?: FailureRecorder
  /** Wraps each route's policy events (alerts on breaker and auth guard events). */
  watchPolicies?: PolicyDeps['watch']
  /** How intent engines evaluate (the config's top-level `controller`). */
  controller?: ControllerConfig
  /** What fault schedules read the time from (windows, until, ttl) and where expiries are logged. */
  chaosOptions?: FaultSetOptions
  /** The fleet's Redis (config `fleet`): shared breaker transitions, cache, deferral; undefined when the instance works alone. */
  fleet?: FleetRedis
  /** The deferral store and deliverers, for routes whose fallback has `defer`. */
  deferrals?: PolicyDeps['deferrals']
  /** Where breakers log opening and closing. */
  logger?: PolicyDeps['logger']
}

/**
 * A retired route still serves its in-flight requests, but the breaker and
 * auth guard it shares with the route that replaced it report their
 * transitions through the new route only: otherwise each transition would
 * be counted (and alerted) once per generation still draining.
 */
function quietWhenRetired (events: PolicyEvents, retired: () => boolean): PolicyEvents {
  const quiet = Object.create(events) as PolicyEvents
  quiet.breakerTransition = (from, to, by) => { if (!retired()) events.breakerTransition(from, to, by) }
  quiet.authGuardTripped = () => { if (!retired()) events.authGuardTripped() }
  return quiet
}

/**
 * GET /routes' `policies` for a route: each policy's own snapshot under its
 * name (`breaker`: BreakerSnapshot, `bulkhead`: BulkheadSnapshot,
 * `authGuard`: AuthGuardSnapshot, `fallback` with a CacheSnapshot, ...),
 * the intent engine's and the fleet budget's.
 */
export interface RoutePoliciesSnapshot {
  [policy: string]: object | undefined
  intent?: IntentSnapshot
  fleetBudget?: FleetBudgetSnapshot
}

export class RouteRuntime implements RouteView {
  readonly name: string
  readonly config: RouteConfig
  readonly prefix: string
  readonly host: string | undefined
  readonly methods: ReadonlySet<string> | undefined
  readonly rewritePrefix: string | undefined
  readonly pool: Pool
  /** Every pool this route may use: the primary, then the alternates its fallback may call. */
  readonly pools: readonly Pool[]
  /** Bounded label for the primary upstream: its host:port. */
  readonly upstreamLabel: string
  readonly timeoutMs: number
  readonly bodyIdleTimeoutMs: number
  readonly maxReplayBytes: number
  readonly exposeFaultHeaders: boolean
  readonly metrics: RouteMetrics
  /** This route's failure-pattern record (GET /report), when the proxy keeps one. */
  readonly report: RouteRecord | undefined
  readonly policies: readonly Policy[]
  /** The route's hand-written faults (the admin API's), its planned faults (the intent engine's) and the stage that applies both. */
  readonly faultSet: FaultSet
  readonly planned: PlannedFaults
  readonly faultStage: FaultStage
  /** Present when the route declares an intent or has chaos enabled (uniform experiments need one). */
  readonly intent: IntentEngine | undefined
  /** The whole pipeline: policies around one upstream attempt. Recomposed when chaos is switched on or off here. */
  call: UpstreamCall
  /** Requests of this route not settled yet (a retired route keeps its pools and policies until this is 0). */
  private inflight = 0
  private retired = false
  /** chaos.fleetBudget's tokens (src/fleet/budget.ts), when configured. */
  readonly fleetBudget: FleetBudget | undefined
  private disposed = false
  private readonly releasePools: () => void

  constructor (config: RouteConfig, deps: RouteDeps) {
    // Built first: it can fail (a schema that does not compile) before anything is acquired.
    const validate = config.validate !== undefined ? validatePolicy(config.validate, config.name) : undefined
    this.name = config.name
    this.config = config
    this.prefix = config.match.pathPrefix
    this.host = config.match.host
    this.methods = config.match.methods ? new Set(config.match.methods) : undefined
    this.rewritePrefix = config.match.rewritePrefix
    this.pool = deps.pools.forUpstream(config.upstream)
    this.upstreamLabel = new URL(config.upstream.url).host
    this.timeoutMs = config.resilience.timeoutMs
    this.bodyIdleTimeoutMs = config.resilience.bodyIdleTimeoutMs
    this.maxReplayBytes = config.resilience.maxReplayBytes
    this.metrics = new RouteMetrics(deps.metrics, config.name)
    this.report = deps.report?.forRoute(config.name)
    if (this.report !== undefined) this.report.retryConfigured = config.resilience.retry !== undefined
    const resilience = config.resilience
    const attemptOptions = {
      bodyIdleTimeoutMs: resilience.bodyIdleTimeoutMs,
      backstopMs: resilience.timeoutMs + 1_000
    }
    const attempt = upstreamAttempt(this.pool, attemptOptions, this.metrics)
    const alternates = resilience.fallback.some((f) => f.kind === 'alternate')
      ? config.upstream.alternates.map((url) => ({ label: new URL(url).host, origin: new URL(url).origin, pool: deps.pools.forUpstream(config.upstream, url) }))
      : []
    this.pools = [this.pool, ...alternates.map((a) => a.pool)]
    this.releasePools = () => { for (const pool of this.pools) deps.pools.release(pool) }
    const chaosSwitch = deps.chaos ?? new ChaosSwitch()
    this.faultSet = new FaultSet(config.name, config.chaos, this.metrics, deps.chaosOptions)
    const faultSet = this.faultSet
    this.planned = new PlannedFaults({ arm: (fault) => faultSet.arm(fault, undefined, false), injecting: () => faultSet.isEnabled && chaosSwitch.enabled })
    this.faultStage = new FaultStage(this.faultSet, this.planned, config.chaos, chaosSwitch, this.metrics)
    this.exposeFaultHeaders = this.faultStage.exposeHeaders
    if (config.chaos.fleetBudget !== undefined) {
      this.fleetBudget = new FleetBudget(config.name, config.chaos.fleetBudget, { redis: deps.fleet, metrics: deps.metrics, logger: deps.chaosOptions?.logger })
      this.faultStage.fleetBudget = this.fleetBudget
    }
    const policies = buildPolicies(config, {
      registry: deps.policyState,
      metrics: deps.metrics,
      routeMetrics: this.metrics,
      upstreamLabel: this.upstreamLabel,
      alternates,
      attemptOptions,
      watch: (name, upstream, events) => quietWhenRetired(deps.watchPolicies?.(name, upstream, events) ?? events, () => this.retired),
      faultStage: this.faultStage.policy,
      validate,
      deferrals: deps.deferrals,
      logger: deps.logger,
      fleet: deps.fleet
    })
    // In PIPELINE_ORDER (src/policies/order.ts): faults innermost, just inside the attempt timeout (every
    // attempt re-rolls, an injected hang is cut by the attempt timeout, the policies see an injected failure
    // exactly like a real one); validation just outside the faults, judging the body a fault produced.
    this.policies = inPipelineOrder([...policies, validate, this.faultStage.policy])
    // With nothing to inject upstream-side the stage is left out of the chain: it costs nothing per request.
    const withoutFaults = this.policies.filter((p) => p !== this.faultStage.policy)
    const compose = (): UpstreamCall => composePipeline(this.faultStage.active ? this.policies : withoutFaults, attempt)
    this.call = compose()
    this.faultStage.onActiveChange(() => { this.call = compose() })
    this.intent = config.intent !== undefined || config.chaos.enabled
      ? new IntentEngine(config.name, config.intent ?? intentSchema.parse({}), config.intent !== undefined, config.chaos.budget,
        this.planned, deps.metrics, deps.controller ?? controllerSchema.parse({}), config.intent !== undefined && config.chaos.enabled ? 'intent' : 'off')
      : undefined
  }

  /** The upstream path for a client URL that matched this route (prefix rewrite, query kept). */
  upstreamPath (url: string): string {
    const rewrite = this.rewritePrefix
    if (rewrite === undefined) return url
    let rest = url.slice(this.prefix.length)
    // With prefix "/api/", "/api/x" leaves "x": restore the separator the prefix consumed.
    if (rest !== '' && rest[0] !== '/' && rest[0] !== '?') rest = '/' + rest
    const joined = rewrite.endsWith('/') && rest[0] === '/' ? rewrite + rest.slice(1) : rewrite + rest
    return joined[0] === '/' ? joined : '/' + joined
  }

  snapshot (): RoutePoliciesSnapshot {
    const policies: RoutePoliciesSnapshot = {}
    for (const p of this.policies) if (p.snapshot) policies[p.name] = p.snapshot()
    if (this.intent !== undefined) policies.intent = this.intent.snapshot(performance.now())
    if (this.fleetBudget !== undefined) policies.fleetBudget = this.fleetBudget.snapshot()
    return policies
  }

  /** For faultline_chaos_active: is chaos injecting here, and why (not). */
  chaosStatus (now: number): ChaosStatus {
    const status = this.faultStage.status(this.intent?.controllerReport(now).halted ?? false)
    // Planned injection stopped for want of fleet figures: say so rather than "idle".
    if (status.reason === 'idle' && this.intent?.sourceDown !== undefined) return { active: false, reason: 'source_down' }
    return status
  }

  attemptFailed (ctx: RequestContext, errorClass: ErrorClass, injected = false): void {
    countAttemptError(ctx, this.metrics, errorClass, injected)
  }

  slowReader (): void { this.metrics.slowReader() }

  bodyTooLarge (): void { this.metrics.bodyTooLarge() }

  bodyFragmented (): void { this.metrics.bodyFragmented() }

  finished (ctx: RequestContext, status: number, ms: number, callerSawFailure: boolean): void {
    this.metrics.request(ctx.upstream, ctx.method, status, ctx.outcome, ms / 1000, ctx.injected)
    this.report?.record(ctx, status)
    // The SLO is what the caller saw; a caller that left saw nothing, so it is not counted.
    if (this.intent !== undefined && ctx.outcome !== 'cancelled') this.intent.record(ms, callerSawFailure, ctx.fault)
  }

  /** A request of this route started (RequestContext): the route stays whole until leave(). */
  enter (): void {
    this.inflight++
  }

  /** A request of this route settled (its response closed). */
  leave (): void {
    this.inflight--
    if (this.retired && this.inflight === 0) this.dispose()
  }

  get inFlight (): number { return this.inflight }

  /**
   * A reload replaced this route (or removed it): new requests go to the new
   * generation, and this one's pools, policy leases and intent engine are
   * released once its last in-flight request settles, so nothing it holds
   * is closed under a request that is queued, backing off or delayed.
   */
  retire (): void {
    this.retired = true
    if (this.inflight === 0) this.dispose()
  }

  /** Releases everything at once (shutdown, or a build that failed). Idempotent. */
  dispose (): void {
    if (this.disposed) return
    this.disposed = true
    for (const p of this.policies) p.dispose?.()
    this.intent?.dispose()
    this.fleetBudget?.dispose()
    this.releasePools()
  }
}
