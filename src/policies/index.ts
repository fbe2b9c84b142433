/**
 * The resilience policies of a route. Their order is PIPELINE_ORDER
 * (./order.ts), the one place it is written; docs/POLICIES.md says why.
 * Only the configured policies are in a route's pipeline: a route without
 * retry, breaker, bulkhead or fallback pays for none of them.
 */
import type { Pool } from 'undici'
import type { Metrics } from '../metrics/metrics.js'
import type { RouteMetrics } from '../metrics/route-metrics.js'
import { PolicyMetrics } from '../metrics/policy-metrics.js'
import { composePipeline, type Policy } from '../core/pipeline.js'
import { upstreamAttempt, type AttemptOptions } from '../core/attempt.js'
import { attemptTimeoutPolicy } from './attempt-timeout.js'
import { totalTimeoutPolicy } from './total-timeout.js'
import { retryPolicy } from './retry.js'
import { RetryBudget } from './retry-budget.js'
import { CircuitBreaker, breakerPolicy } from './breaker.js'
import { AuthGuard, authGuardPolicy } from './auth-guard.js'
import { Bulkhead, bulkheadPolicy } from './bulkhead.js'
import { fallbackPolicy, type Alternate } from './fallback.js'
import { LastKnownGood } from './cache.js'
import { MemoryCacheStore } from './memory-cache-store.js'
import { optionsKey, type Lease, type PolicyRegistry } from './registry.js'
import { deferStepOf, type BreakerConfig, type CacheConfig, type ResilienceConfig } from './schema.js'
import { deferStep, type DeferContext } from '../deferral/defer-step.js'
import type { PolicyEvents } from './events.js'
import { createLogger, type Logger } from '../log.js'
import { inPipelineOrder } from './order.js'
import type { FleetRedis } from '../fleet/redis.js'
import { FleetBreakerLink, breakerId } from '../fleet/breaker.js'
import { RedisCacheStore, cacheNamespace } from '../fleet/redis-cache-store.js'
import { FleetCacheStore } from '../fleet/fleet-cache-store.js'
import type { CacheStore } from './cache-store.js'

export interface PolicyDeps {
  /** State that survives reloads (breakers, caches, bulkheads, budgets). */
  registry: PolicyRegistry
  metrics: Metrics
  routeMetrics: RouteMetrics
  /** host:port of the primary upstream. */
  upstreamLabel: string
  /** Pools of upstream.alternates, in order (empty unless the alternate fallback is used). */
  alternates: ReadonlyArray<{ label: string, pool: Pool, origin: string }>
  attemptOptions: AttemptOptions
  /** Wraps the route's policy events, e.g. to raise alerts (src/alerts/policy-watch.ts). */
  watch?: (route: string, upstream: string, events: PolicyEvents) => PolicyEvents
  /** The route's fault stage: alternates go through it too, as the primary does (containment). */
  faultStage?: Policy
  /** The route's response validation, when it has `validate`: an alternate's answer must pass it too. */
  validate?: Policy
  /** The process's deferral store and deliverers, for a `defer` step (src/deferral). */
  deferrals?: DeferContext
  /** Where breakers log opening and closing (none in unit tests). */
  logger?: Logger
  /** The fleet's Redis (config `fleet`), for a breaker with `fleet: true`; undefined when the instance works alone. */
  fleet?: FleetRedis
}

/** What the policies are built from: a route's config as the config file has it (RouteConfig), no more. */
export interface PolicyRoute {
  readonly name: string
  readonly upstream: { readonly url: string }
  readonly match: { readonly rewritePrefix?: string }
  readonly resilience: ResilienceConfig
}

export function buildPolicies (route: PolicyRoute, deps: PolicyDeps): Policy[] {
  const r = route.resilience
  const { registry } = deps
  const origin = new URL(route.upstream.url).origin
  const cacheConfig = r.fallback.find((f): f is CacheConfig => f.kind === 'cache')
  const metricEvents = new PolicyMetrics(deps.metrics, route.name, deps.upstreamLabel, {
    retry: r.retry !== undefined,
    breaker: r.breaker !== undefined,
    authGuard: r.authGuard !== undefined,
    bulkhead: r.bulkhead !== undefined,
    cache: cacheConfig !== undefined
  })
  const events = deps.watch?.(route.name, deps.upstreamLabel, metricEvents) ?? metricEvents
  const perAttempt = attemptTimeoutPolicy(r.attemptTimeoutMs ?? r.timeoutMs)
  const policies: Policy[] = []
  /**
   * An upstream's breaker (real outcomes of every route to it); with
   * `fleet: true` and a fleet, linked to the other replicas' (src/fleet/breaker.ts).
   * Keyed by the fleet's connections too: a reload that replaces them links anew.
   */
  const upstreamBreaker = (breakerOrigin: string, label: string, config: BreakerConfig): Lease<CircuitBreaker> => {
    const fleet = config.fleet ? deps.fleet : undefined
    if (fleet === undefined) return registry.acquire(`breaker|${breakerOrigin}|${optionsKey(config)}`, () => new CircuitBreaker(label, config))
    return registry.acquire(`breaker|${breakerOrigin}|${optionsKey(config)}|fleet${fleet.serial}`, () => {
      const breaker = new CircuitBreaker(label, config)
      breaker.peer = new FleetBreakerLink(breaker, { redis: fleet, id: breakerId(label, breakerOrigin, config), config, pollMs: fleet.config.pollMs, logger: deps.logger ?? createLogger('silent') })
      return breaker
    }, (breaker) => { breaker.peer?.stop() })
  }

  if (r.fallback.length > 0) {
    const cacheFleet = cacheConfig?.store === 'redis' ? deps.fleet : undefined
    const cacheId = `${route.name}|${origin}|${route.match.rewritePrefix ?? ''}|${optionsKey(cacheConfig)}`
    const lease = cacheConfig === undefined
      ? undefined
      : cacheFleet === undefined
        ? registry.acquire<CacheStore>(`cache|${cacheId}`, () => new MemoryCacheStore(cacheConfig))
        : registry.acquire<CacheStore>(`cache|${cacheId}|fleet${cacheFleet.serial}`, () => {
          // One namespace per route and cache identity: two routes never share entries, replicas with one config do.
          const namespace = cacheNamespace(route.name, cacheId)
          return new FleetCacheStore(new MemoryCacheStore(cacheConfig), new RedisCacheStore(cacheFleet, namespace, cacheConfig), { redis: cacheFleet, namespace })
        }, (store) => { if (store instanceof FleetCacheStore) store.stop() })
    const cacheSharing = lease !== undefined && lease.value instanceof FleetCacheStore
      ? { route: route.name, feature: 'cache' as const, shared: () => (lease.value as FleetCacheStore).shared }
      : undefined
    if (cacheSharing !== undefined) deps.metrics.fleetSharing.add(cacheSharing)
    // An alternate gets the primary's rules: its own breaker (per alternate origin, plus this route's own for
    // injected failures), the route's validation and its fault stage inside the attempt timeout.
    const leases: Array<{ release: () => void }> = []
    const alternates: Alternate[] = deps.alternates.map(({ label, pool, origin: altOrigin }) => {
      const stages: Policy[] = []
      if (r.breaker !== undefined) {
        const config = r.breaker
        const shared = upstreamBreaker(altOrigin, label, config)
        const own = registry.acquire(`breaker|route|${route.name}|${altOrigin}|${optionsKey(config)}`,
          () => new CircuitBreaker(`${label} (as injected on route ${route.name})`, config))
        const metrics = new PolicyMetrics(deps.metrics, route.name, label, { retry: false, breaker: true, authGuard: false, bulkhead: false, cache: false })
        const altEvents = deps.watch?.(route.name, label, metrics) ?? metrics
        const log = deps.logger === undefined ? undefined : { logger: deps.logger, route: route.name, upstream: label }
        const policy = breakerPolicy(shared.value, config, altEvents, () => { shared.release(); own.release() }, own.value, log)
        leases.push({ release: () => { policy.dispose?.() } })
        stages.push(policy)
      }
      stages.push(perAttempt)
      // The route's response contract holds whichever upstream answers: an invalid alternate answer fails like the primary's.
      if (deps.validate !== undefined) stages.push(deps.validate)
      if (deps.faultStage !== undefined) stages.push(deps.faultStage)
      return { label, call: composePipeline(inPipelineOrder(stages), upstreamAttempt(pool, deps.attemptOptions, deps.routeMetrics)) }
    })
    const deferConfig = deferStepOf(r)
    policies.push(fallbackPolicy({
      steps: r.fallback,
      defer: deferConfig !== undefined && deps.deferrals !== undefined ? deferStep(route.name, deferConfig, deps.deferrals) : undefined,
      cache: lease !== undefined && cacheConfig !== undefined ? new LastKnownGood(lease.value, cacheConfig, events) : undefined,
      alternates,
      maxReplayBytes: r.maxReplayBytes,
      nonIdempotent: r.retry?.nonIdempotent ?? false,
      origin: new URL(origin),
      release: () => {
        lease?.release()
        if (cacheSharing !== undefined) deps.metrics.fleetSharing.delete(cacheSharing)
        for (const l of leases) l.release()
      }
    }))
  }

  if (r.bulkhead !== undefined) {
    const config = r.bulkhead
    const lease = registry.acquire(`bulkhead|${route.name}|${optionsKey(config)}`, () => new Bulkhead(config))
    policies.push(bulkheadPolicy(lease.value, events, lease.release))
  }

  if (r.retry !== undefined) {
    const config = r.retry
    const budgetOptions = { ratio: config.budgetRatio, windowMs: config.budgetWindowMs, minRetries: config.budgetMinRetries }
    const lease = registry.acquire(`budget|${route.name}|${optionsKey(budgetOptions)}`, () => new RetryBudget(budgetOptions))
    policies.push(totalTimeoutPolicy())
    policies.push({ ...retryPolicy({ config, budget: lease.value, maxReplayBytes: r.maxReplayBytes, events }), dispose: lease.release })
  }

  if (r.authGuard !== undefined) {
    const config = r.authGuard
    const lease = registry.acquire(`authGuard|${origin}|${optionsKey(config)}`, () => new AuthGuard(deps.upstreamLabel, config))
    // Containment: the route's own guard for its injected 401/403s (see auth-guard.ts).
    const shadow = registry.acquire(`authGuard|route|${route.name}|${origin}|${optionsKey(config)}`,
      () => new AuthGuard(`${deps.upstreamLabel} (as injected on route ${route.name})`, config))
    policies.push(authGuardPolicy(lease.value, events, () => { lease.release(); shadow.release() }, shadow.value))
  }

  if (r.breaker !== undefined) {
    const config = r.breaker
    const lease = upstreamBreaker(origin, deps.upstreamLabel, config)
    // Containment: the route's own breaker for its injected failures (see breaker.ts); never shared with the fleet.
    const shadow = registry.acquire(`breaker|route|${route.name}|${origin}|${optionsKey(config)}`,
      () => new CircuitBreaker(`${deps.upstreamLabel} (as injected on route ${route.name})`, config))
    const log = deps.logger === undefined ? undefined : { logger: deps.logger, route: route.name, upstream: deps.upstreamLabel }
    const peer = lease.value.peer
    const sharing = peer === undefined ? undefined : { route: route.name, feature: 'breaker' as const, shared: () => peer.shared }
    if (sharing !== undefined) deps.metrics.fleetSharing.add(sharing)
    policies.push(breakerPolicy(lease.value, config, events, () => {
      lease.release()
      shadow.release()
      if (sharing !== undefined) deps.metrics.fleetSharing.delete(sharing)
    }, shadow.value, log))
  }

  policies.push(perAttempt)
  return inPipelineOrder(policies)
}
