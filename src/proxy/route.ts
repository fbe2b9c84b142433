/**
 * A route compiled from config: its matcher fields, its upstream pool,
 * its metrics and its policy pipeline, built once per config generation.
 */
import type { Pool } from 'undici'
import type { RouteConfig } from '../config/schema.js'
import type { Metrics } from '../metrics/metrics.js'
import { RouteMetrics } from '../metrics/route-metrics.js'
import type { UpstreamPools } from './upstreams.js'
import { upstreamAttempt } from './attempt.js'
import { composePipeline, type Policy, type UpstreamCall } from './pipeline.js'
import { buildPolicies } from '../policies/index.js'

export interface RouteDeps {
  pools: UpstreamPools
  metrics: Metrics
}

export class RouteRuntime {
  readonly name: string
  readonly config: RouteConfig
  readonly prefix: string
  readonly host: string | undefined
  readonly methods: ReadonlySet<string> | undefined
  readonly rewritePrefix: string | undefined
  readonly pool: Pool
  /** Bounded label for the primary upstream: its host:port. */
  readonly upstreamLabel: string
  readonly metrics: RouteMetrics
  readonly policies: readonly Policy[]
  /** The whole pipeline: policies around one upstream attempt. */
  readonly call: UpstreamCall

  constructor (config: RouteConfig, deps: RouteDeps) {
    this.name = config.name
    this.config = config
    this.prefix = config.match.pathPrefix
    this.host = config.match.host
    this.methods = config.match.methods ? new Set(config.match.methods) : undefined
    this.rewritePrefix = config.match.rewritePrefix
    this.pool = deps.pools.forUpstream(config.upstream)
    this.upstreamLabel = new URL(config.upstream.url).host
    this.metrics = new RouteMetrics(deps.metrics, config.name)
    const resilience = config.resilience
    const attempt = upstreamAttempt(this.pool, {
      bodyIdleTimeoutMs: resilience.bodyIdleTimeoutMs,
      backstopMs: resilience.timeoutMs + 1_000
    }, this.metrics)
    this.policies = buildPolicies(resilience)
    this.call = composePipeline(this.policies, attempt)
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

  state (): Record<string, unknown> {
    const policies: Record<string, unknown> = {}
    for (const p of this.policies) if (p.state) policies[p.name] = p.state()
    return policies
  }

  dispose (): void {
    for (const p of this.policies) p.dispose?.()
  }
}
