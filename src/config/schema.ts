/**
 * The one config schema. Every TypeScript type for configuration is derived
 * from it with z.infer, so the validator and the code cannot drift apart.
 * Objects are strict: a misspelt key is an error naming its path, not a
 * silently ignored option.
 */
import { z } from 'zod'
import { duration, parseUrl } from './units.js'
import { alertsSchema } from '../alerts/schema.js'
import { checkRouteResilience, deferStepOf, resilienceSchema, validateSchema } from '../policies/schema.js'
import { chaosSchema } from '../faults/schema.js'
import { controllerSchema, intentSchema } from '../intent/schema.js'
import { HTTP_METHODS } from './http-methods.js'
import { parseCidr } from '../proxy/trust.js'
import { upgradesSchema } from '../proxy/upgrade-schema.js'
import { fleetSchema } from '../fleet/schema.js'
import { deferralStoreSchema } from '../deferral/schema.js'

/** Route names become metric label values: keep them short and bounded. */
const routeName = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, {
    error: 'expected a route name of letters, digits, "_", "." or "-" (at most 63 characters)'
  })

const pathPrefix = z
  .string()
  .regex(/^\/[^\s?#]*$/, { error: 'expected a path starting with "/" without query or fragment' })

/** An upstream is an origin; path rewriting is explicit (rewritePrefix), never implied by the URL. */
export const upstreamUrl = z.string().superRefine((value, ctx) => {
  const url = parseUrl(value, ctx)
  if (url === undefined) return
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: `expected an http:// or https:// URL, got ${JSON.stringify(value)}` })
  } else if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
    ctx.addIssue({
      code: 'custom',
      message: `expected an origin such as http://host:port without a path, got ${JSON.stringify(value)} (use match.rewritePrefix to change paths)`
    })
  } else if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'expected no credentials in the upstream URL; send them as headers from the service' })
  }
})

const port = z.number().int().min(0).max(65535)

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost|\[::1\])$/i

export function isLoopbackHost (host: string): boolean {
  return LOOPBACK.test(host)
}

export const listenSchema = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port: port.default(8080),
  /** Idle keep-alive connections from clients are closed after this long. */
  keepAliveTimeoutMs: duration(z.number().int().positive().default(72_000)),
  /** Cap on concurrent client connections; 0 means no cap. */
  maxConnections: z.number().int().min(0).default(0),
  /** Longest request target (path + query) in bytes; longer gets 414. */
  maxUrlLength: z.number().int().min(64).default(8_192),
  /** Request line plus all headers, in bytes (Node's maxHeaderSize); more gets 431. */
  maxHeaderBytes: z.number().int().min(1_024).max(1_048_576).default(16_384),
  /** Most header fields in one request; more gets 431. */
  maxHeaders: z.number().int().min(8).max(10_000).default(100),
  /** A client must finish sending the request headers within this (slowloris): 408 and close. */
  headersTimeoutMs: duration(z.number().int().positive().default(10_000)),
  /** A client must finish sending the whole request, body included, within this: 408 and close. */
  requestTimeoutMs: duration(z.number().int().positive().default(300_000)),
  /**
   * Peers whose X-Forwarded-For/-Proto/-Host are believed (CIDRs or single
   * addresses): a load balancer in front of faultline. From anyone else
   * they are replaced (docs/SECURITY.md).
   */
  trustedProxies: z.array(z.string().refine((v) => parseCidr(v) !== undefined, {
    error: 'expected an IP address or CIDR range such as 10.0.0.0/8 or fd00::/8'
  })).max(1_000).default([])
}).refine((l) => l.headersTimeoutMs <= l.requestTimeoutMs, {
  path: ['headersTimeoutMs'],
  error: 'expected headersTimeoutMs <= requestTimeoutMs'
})

/** Per-route limits on what a client may send through the route. */
export const routeLimitsSchema = z.strictObject({
  /** Largest request body in bytes; more gets 413. 0 means no cap. */
  maxRequestBodyBytes: z.number().int().min(0).default(10 * 1024 * 1024)
})

export const adminSchema = z.strictObject({
  host: z.string().default('127.0.0.1'),
  port: port.default(9901),
  /** Bearer token for state-changing calls. Usually `${FAULTLINE_ADMIN_TOKEN}`. */
  token: z.string().min(16, { error: 'expected a token of at least 16 characters' }).optional(),
  /** Read the token from a file (a mounted secret); wins over `token`. */
  tokenFile: z.string().optional(),
  /**
   * Host names the admin API answers to besides IP literals, localhost and
   * admin.host (DNS-rebinding defence, docs/SECURITY.md): e.g. the name
   * Prometheus scrapes it by.
   */
  allowedHosts: z.array(z.string().min(1)).default([]),
  /** Failed bearer-token attempts one remote address may make per window before it gets 429. */
  maxAuthFailures: z.number().int().positive().default(10),
  authFailureWindowMs: duration(z.number().int().positive().default(60_000))
})

/**
 * An optional listener that serves only GET /healthz and /readyz, for an
 * orchestrator's probes: no token, no other endpoint, so it can be opened
 * to the kubelet while the admin API stays behind its token and network
 * policy (docs/KUBERNETES.md).
 */
export const probesSchema = z.strictObject({
  host: z.string().default('0.0.0.0'),
  port
})

/**
 * What SIGTERM does to new requests. stop-accepting: the listener closes at
 * once and in-flight requests get up to drainMs. keep-accepting: new
 * requests are still served for the whole drainMs window (an application
 * beside faultline may still be shutting down and calling out), then the
 * listener closes and what is left is cut.
 */
export const SHUTDOWN_MODES = ['stop-accepting', 'keep-accepting'] as const
export type ShutdownMode = (typeof SHUTDOWN_MODES)[number]

export const shutdownSchema = z.strictObject({
  drainMs: duration(z.number().int().min(0).default(10_000)),
  mode: z.enum(SHUTDOWN_MODES).default('stop-accepting')
})

/** Reload on file change (config file and admin.tokenFile), besides SIGHUP and POST /reload. */
export const reloadSchema = z.strictObject({
  /** `faultline run` watches the files; off leaves SIGHUP and POST /reload. */
  watch: z.boolean().default(true),
  /** Quiet time after the last change before reloading: a write or a symlink swap fires several events. */
  debounceMs: duration(z.number().int().min(0).max(60_000).default(300))
})

/** TLS to an https:// upstream. Files are PEM, read when the upstream's pool is created. */
export const upstreamTlsSchema = z.strictObject({
  /** CA bundle to verify the upstream with, instead of Node's built-in roots. */
  ca: z.string().min(1).optional(),
  /** SNI name and the name the certificate must carry; defaults to the URL's host (no SNI for an IP). */
  servername: z.string().min(1).optional(),
  /** Client certificate and key for mutual TLS; both or neither. */
  cert: z.string().min(1).optional(),
  key: z.string().min(1).optional(),
  /** Off only for a throwaway test upstream: an unverified upstream can be anyone. */
  rejectUnauthorized: z.boolean().default(true)
}).refine((tls) => (tls.cert === undefined) === (tls.key === undefined), { error: 'expected both cert and key (mutual TLS) or neither' })

export const upstreamSchema = z.strictObject({
  url: upstreamUrl,
  /** Further origins, used by the `alternate` fallback in order. */
  alternates: z.array(upstreamUrl).default([]),
  /** Keep-alive connections per origin. */
  connections: z.number().int().positive().max(4096).default(128),
  connectTimeoutMs: duration(z.number().int().positive().default(2_000)),
  keepAliveTimeoutMs: duration(z.number().int().positive().default(4_000)),
  /** For https:// origins (the alternates share it). */
  tls: upstreamTlsSchema.optional()
})

export const matchSchema = z.strictObject({
  pathPrefix,
  /** Exact Host header (without port) this route answers for; any host when absent. */
  host: z.string().toLowerCase().optional(),
  methods: z.array(z.enum(HTTP_METHODS)).min(1).optional(),
  /** Replaces pathPrefix in the upstream path (e.g. /payments -> /v1). */
  rewritePrefix: pathPrefix.optional()
})

export const routeSchema = z.strictObject({
  name: routeName,
  match: matchSchema,
  upstream: upstreamSchema,
  resilience: resilienceSchema.prefault({}),
  chaos: chaosSchema.prefault({}),
  /** Opt-in response validation: a 2xx body that is not valid JSON (or not the schema) is an invalid_response failure. */
  validate: validateSchema.optional(),
  /** What the route must protect and the thresholds it must hold; drives planned chaos (docs/INTENT.md). */
  intent: intentSchema.optional(),
  limits: routeLimitsSchema.prefault({}),
  /** HTTP/1.1 upgrades (WebSocket): on by default; connection-level faults (docs/FAULTS.md). */
  upgrades: upgradesSchema.prefault({})
}).superRefine(checkRouteResilience)

export const configSchema = z
  .strictObject({
    listen: listenSchema.prefault({}),
    admin: adminSchema.prefault({}),
    log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).prefault({}),
    shutdown: shutdownSchema.prefault({}),
    reload: reloadSchema.prefault({}),
    probes: probesSchema.optional(),
    controller: controllerSchema.prefault({}),
    routes: z.array(routeSchema).min(1, { error: 'expected at least one route' }),
    alerts: alertsSchema.prefault({}),
    /** Shared state across the replicas of a service, in Redis (docs/FLEET.md); absent: this instance works alone. */
    fleet: fleetSchema.optional(),
    /** Where deferred writes are kept (the `defer` fallback; docs/POLICIES.md). */
    deferral: deferralStoreSchema.prefault({})
  })
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>()
    config.routes.forEach((route, index) => {
      const first = seen.get(route.name)
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['routes', index, 'name'], message: `expected a unique route name, "${route.name}" is also routes[${first}]` })
      } else {
        seen.set(route.name, index)
      }
    })
    // Here, not only at start-up, so `faultline check` refuses what `run` would.
    if (!isLoopbackHost(config.admin.host) && config.admin.token === undefined && config.admin.tokenFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['admin', 'host'],
        message: `expected a loopback address when no admin token is set, got "${config.admin.host}" (set admin.token or admin.tokenFile to expose the admin API)`
      })
    }
    if (config.listen.port !== 0 && config.listen.port === config.admin.port) {
      ctx.addIssue({ code: 'custom', path: ['admin', 'port'], message: `expected a port different from listen.port (${config.listen.port})` })
    }
    const defers = config.routes.findIndex((r) => deferStepOf(r.resilience) !== undefined)
    if (defers !== -1 && config.deferral.store === 'journal' && config.deferral.dir === undefined) {
      ctx.addIssue({ code: 'custom', path: ['deferral', 'dir'], message: `expected a directory for the deferral journal: routes[${defers}] defers writes, and they must outlive a restart (or set deferral.store: redis)` })
    }
    if (config.fleet === undefined) {
      config.routes.forEach((route, index) => {
        if (route.resilience.breaker?.fleet === true) {
          ctx.addIssue({ code: 'custom', path: ['routes', index, 'resilience', 'breaker', 'fleet'], message: 'expected fleet.redis to be configured: a breaker shared with the fleet tells its transitions through the fleet\'s Redis (or set fleet: false)' })
        }
        route.resilience.fallback.forEach((step, at) => {
          if (step.kind === 'cache' && step.store === 'redis') {
            ctx.addIssue({ code: 'custom', path: ['routes', index, 'resilience', 'fallback', at, 'cache', 'store'], message: 'expected fleet.redis to be configured: the redis cache store keeps its entries on the fleet\'s Redis (or store: memory)' })
          }
        })
      })
    }
    if (config.deferral.store === 'redis' && config.fleet === undefined) {
      ctx.addIssue({ code: 'custom', path: ['deferral', 'store'], message: 'expected fleet.redis to be configured: the redis deferral store keeps its streams on the fleet\'s Redis' })
    }
    const probePort = config.probes?.port
    if (probePort !== undefined && probePort !== 0 && (probePort === config.listen.port || probePort === config.admin.port)) {
      ctx.addIssue({ code: 'custom', path: ['probes', 'port'], message: `expected a port different from listen.port (${config.listen.port}) and admin.port (${config.admin.port})` })
    }
  })

export type Config = z.infer<typeof configSchema>
export type ConfigInput = z.input<typeof configSchema>
export type RouteConfig = z.infer<typeof routeSchema>
export type UpstreamConfig = z.infer<typeof upstreamSchema>
export type { HttpMethod } from './http-methods.js'
