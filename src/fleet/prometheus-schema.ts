/**
 * Config of the fleet SLO source: where the controller reads the fleet's
 * client-visible figures when `controller.source` is `prometheus`, and the
 * PromQL it asks (docs/FLEET.md). The default queries read the recording
 * rules shipped in docker/prometheus/fleet-rules.yml.
 */
import { z } from 'zod'
import { duration, parseUrl } from '../config/units.js'

export const CONTROLLER_SOURCES = ['local', 'prometheus'] as const
export type ControllerSource = (typeof CONTROLLER_SOURCES)[number]

/**
 * One PromQL instant query per figure. `$labels` becomes the route's label
 * matchers (`route="payments"` plus `prometheus.selector`), so a template
 * reads as `sum(route:faultline_client_requests:rate1m{$labels})`. Each
 * must return one series.
 */
export const fleetQueriesSchema = z.strictObject({
  /** Client requests per second across the fleet (times evaluationMs: the window's requests, compared with minRequests). */
  requests: z.string().min(1).optional(),
  /** Share of client requests that failed as the client saw them (0..1). */
  errorRate: z.string().min(1).optional(),
  /** Client-visible p99 latency, in seconds. */
  p99: z.string().min(1).optional(),
  /** Client requests per second an injected fault shaped (tells a chaos breach from the upstream's own). */
  injected: z.string().min(1).optional(),
  /**
   * Age in seconds of the newest scrape behind the figures, on Prometheus' own clock (stale above
   * staleAfterMs). Over the last 5 minutes: a failed scrape marks a replica's series stale at once,
   * and the age must keep growing then, not vanish.
   */
  age: z.string().min(1).optional()
})
export type FleetQueries = z.infer<typeof fleetQueriesSchema>
export type FleetQueryName = keyof FleetQueries

export const DEFAULT_FLEET_QUERIES: Required<FleetQueries> = {
  requests: 'sum(route:faultline_client_requests:rate1m{$labels})',
  errorRate: '(sum(route:faultline_client_errors:rate1m{$labels}) or vector(0)) / sum(route:faultline_client_requests:rate1m{$labels})',
  p99: 'histogram_quantile(0.99, sum by (le) (route:faultline_client_request_duration_seconds_bucket:rate1m{$labels}))',
  injected: 'sum(route:faultline_client_requests_injected:rate1m{$labels}) or vector(0)',
  age: 'time() - max(max_over_time(route:faultline_requests:last_scrape_timestamp_seconds{$labels}[5m]))'
}

const prometheusUrl = z.string().superRefine((value, ctx) => {
  const url = parseUrl(value, ctx)
  if (url === undefined) return
  if (url.protocol !== 'http:' && url.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `expected an http:// or https:// URL, got ${JSON.stringify(value)}` })
  if (url.search !== '' || url.hash !== '') ctx.addIssue({ code: 'custom', message: `expected a URL without a query or fragment, got ${JSON.stringify(value)}` })
})

/** PromQL label matchers, without braces: `namespace="shop",job="checkout"`. */
const selector = z.string().regex(/^\s*([a-zA-Z_][a-zA-Z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\]|\\.)*"\s*(,\s*|$))*$/, {
  error: 'expected PromQL label matchers without braces, e.g. namespace="shop",job="checkout"'
})

export const prometheusSourceSchema = z.strictObject({
  /** Prometheus' base URL (the HTTP API is under /api/v1). */
  url: prometheusUrl,
  /** A file holding a bearer token for Prometheus; re-read every evaluation, so a rotated token is picked up. */
  bearerTokenFile: z.string().min(1).optional(),
  /** Label matchers that pick this service's fleet out of everything Prometheus scrapes (route names repeat across services). */
  selector: selector.default(''),
  /** A query slower than this (or than 80% of evaluationMs) counts as Prometheus unreachable. */
  timeoutMs: duration(z.number().int().min(10).default(2_000)),
  /** Figures whose newest scrape is older than this are stale: planned injection stops. */
  staleAfterMs: duration(z.number().int().min(100).default(30_000)),
  /** Replaces the default query of each figure named, for every route (a route's intent.queries wins). */
  queries: fleetQueriesSchema.prefault({})
})
export type PrometheusSourceConfig = z.infer<typeof prometheusSourceSchema>
