/**
 * The admin API, on its own port (loopback by default). Reads are open so
 * Prometheus and probes need no secret; every state-changing call needs the
 * bearer token, compared in constant time. All errors go through one
 * funnel so every refusal has the same JSON shape.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { isIP } from 'node:net'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import FindMyWay, { type HTTPMethod } from 'find-my-way'
import type { Logger } from 'pino'
import type { Metrics } from '../metrics/metrics.js'
import { ConfigError } from '../config/errors.js'
import type { RouteTable } from '../proxy/router.js'
import { LRUCache } from 'lru-cache'
import { redactSecrets } from './redact.js'

export interface AdminControl {
  isReady: () => boolean
  /** Config and live state of every route, with credentials redacted. */
  routes: () => unknown
  /** Re-reads the config file; throws ConfigError when it is invalid. */
  reload: () => Promise<{ generation: number, routes: string[] }>
  /** The live route table (read it per call: a reload replaces it). */
  table: () => RouteTable
}

/**
 * A feature's admin endpoints (chaos control, breaker control, ...), kept
 * in the feature's own file and registered here. Mutating endpoints are
 * already behind the bearer token when they run; they should call audit().
 */
export type AdminExtension = (app: FastifyInstance, control: AdminControl) => void

export interface AdminServerOptions {
  logger: Logger
  metrics: Metrics
  control: AdminControl
  /** Returns the current token, or undefined when none is configured. */
  token: () => string | undefined
  extensions?: AdminExtension[]
  /** Failed token attempts allowed per remote address per window (default 10 per minute). */
  authFailures?: { max: number, windowMs: number }
  /** Host names answered besides IP literals and localhost (admin.host, admin.allowedHosts); read per request. */
  allowedHosts?: () => readonly string[]
}

/** The host name of a Host header, lowercased, without port or IPv6 brackets; '' when absent. */
function hostName (header: string | undefined): string {
  if (header === undefined) return ''
  const host = header.trim().toLowerCase()
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']') === -1 ? undefined : host.indexOf(']'))
  const colon = host.lastIndexOf(':')
  return colon === -1 ? host : host.slice(0, colon)
}

/**
 * DNS rebinding defence: a page whose name was rebound to this address
 * still sends its own name as Host. IP literals cannot be rebound, so they
 * pass, as do localhost and the names the config lists.
 */
export function hostAllowed (header: string | undefined, names: readonly string[]): boolean {
  const host = hostName(header)
  if (host === '') return false
  if (isIP(host) !== 0 || host === 'localhost') return true
  return names.some((name) => name.toLowerCase() === host)
}

/**
 * Failed bearer-token attempts per remote address in a fixed window. A
 * remote past the limit gets 429 for every wrong token for the rest of its
 * window (less noise, less log). The right token is always accepted: on a
 * pod every container shares 127.0.0.1, so refusing it would let anyone
 * there lock the operator out of the emergency stop. Guessing is defeated
 * by the token's length (16 characters at least), not by this. Bounded
 * (LRU) so a flood from many addresses cannot grow memory.
 */
export class AuthThrottle {
  private readonly failures: LRUCache<string, { count: number, resetAt: number }>
  constructor (private readonly max: number, private readonly windowMs: number) {
    this.failures = new LRUCache({ max: 4096 })
  }

  /** Milliseconds until this remote may try again, or 0 when it may now. */
  blockedFor (remote: string, now = Date.now()): number {
    const entry = this.failures.get(remote)
    if (entry === undefined || entry.resetAt <= now) return 0
    return entry.count >= this.max ? entry.resetAt - now : 0
  }

  /** Records a failure; returns the count in the current window. */
  fail (remote: string, now = Date.now()): number {
    let entry = this.failures.get(remote)
    if (entry === undefined || entry.resetAt <= now) {
      entry = { count: 0, resetAt: now + this.windowMs }
      this.failures.set(remote, entry)
    }
    return ++entry.count
  }

  succeed (remote: string): void {
    this.failures.delete(remote)
  }
}

const READ_METHODS = new Set(['GET', 'HEAD'])
/** Reads that need the token too: deferred writes are customers' requests (src/admin/deferrals.ts). */
const PRIVATE_READS = ['/deferrals']

function privateRead (url: string): boolean {
  return PRIVATE_READS.some((prefix) => url === prefix || url.startsWith(prefix + '/') || url.startsWith(prefix + '?'))
}

function noop (): void {}

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Constant-time comparison: hashing first makes both sides the same length. */
export function tokenMatches (presented: string, expected: string): boolean {
  return timingSafeEqual(digest(presented), digest(expected))
}

/** One audit line per accepted state-changing call: who (remote), what, to what. */
export function audit (request: FastifyRequest, action: string, details: Record<string, unknown> = {}): void {
  // Audited details can be config (a fault matching on Authorization): redacted like GET /routes.
  request.log.info({ audit: action, remote: request.ip, ...redactSecrets(details) }, `admin: ${action}`)
}

/**
 * Every `error` code the admin API answers with, and its status: one table,
 * so one condition has one code on every endpoint (toxiproxy's sentinel
 * errors in api.go). `bad_request` also carries the status of fastify's own
 * 4xx (a body too large, a bad content type).
 */
export const ADMIN_ERRORS = {
  bad_request: 400,
  invalid_config: 400,
  invalid_experiment: 400,
  invalid_fault: 400,
  unauthorized: 401,
  admin_token_not_configured: 403,
  cross_origin_refused: 403,
  host_not_allowed: 403,
  not_found: 404,
  no_route: 404,
  no_fault: 404,
  no_experiment: 404,
  no_intent: 404,
  no_report: 404,
  no_deferral: 404,
  method_not_allowed: 405,
  deferral_not_configured: 409,
  duplicate_fault: 409,
  experiment_running: 409,
  no_breaker: 409,
  not_cancellable: 409,
  not_retryable: 409,
  too_many_auth_failures: 429,
  internal_error: 500
} as const

export type AdminErrorCode = keyof typeof ADMIN_ERRORS

/**
 * The single error funnel for the admin API; `error` is a code of
 * ADMIN_ERRORS, which gives the status. `status` only for fastify's own
 * refusals answered as `bad_request` (413, 415, ...).
 */
export function adminError (reply: FastifyReply, error: AdminErrorCode, message: string, extra: Record<string, unknown> = {}, status: number = ADMIN_ERRORS[error]): FastifyReply {
  return reply.code(status).header('cache-control', 'no-store').send({ error, message, ...extra })
}

export function createAdminServer (options: AdminServerOptions): FastifyInstance {
  const { logger, metrics, control } = options
  const app = Fastify({
    loggerInstance: logger.child({ component: 'admin' }) as FastifyBaseLogger,
    // One log line per request is ours (src/proxy/respond.ts), not fastify's.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
    forceCloseConnections: true
  })

  // Every GET path, as registered (tests scan each one for a planted secret).
  const readPaths: string[] = []
  // The same paths in fastify's own router library, to tell "no such path" (404) from "not with
  // this method" (405 with Allow): fastify answers both 404.
  const known = FindMyWay()
  const registered = new Set<string>()
  const routedMethods = new Set<string>()
  app.addHook('onRoute', (r) => {
    const methods = Array.isArray(r.method) ? r.method : [r.method]
    if (methods.includes('GET')) readPaths.push(r.url)
    for (const method of methods) {
      if (registered.has(`${method} ${r.url}`)) continue
      registered.add(`${method} ${r.url}`)
      routedMethods.add(method)
      known.on(method as HTTPMethod, r.url, noop)
    }
  })
  app.decorate('readPaths', readPaths)
  /** The methods some endpoint answers on this path, sorted; empty when no endpoint has the path. */
  const allowedOn = (path: string): string[] =>
    [...routedMethods].filter((method) => known.find(method as HTTPMethod, path) !== null).sort()

  // Every answer counted, refusals too (by the pattern, never the raw path, so the label set stays bounded).
  app.addHook('onResponse', async (request, reply) => {
    metrics.adminRequests.labels(request.is404 ? 'unmatched' : request.routeOptions.url ?? 'unmatched', request.method, String(reply.statusCode)).inc()
  })
  // A request Node's parser refused never reaches fastify's hooks (fastify answers 400/408/431 and closes).
  app.server.on('clientError', (err: NodeJS.ErrnoException & { statusCode?: number }) => {
    const code = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400
    metrics.adminRequests.labels('malformed', 'unknown', String(code)).inc()
  })

  const throttle = new AuthThrottle(options.authFailures?.max ?? 10, options.authFailures?.windowMs ?? 60_000)

  app.addHook('onRequest', async (request, reply) => {
    if (!hostAllowed(request.headers.host, options.allowedHosts?.() ?? [])) {
      request.log.warn({ method: request.method, url: request.url, remote: request.ip, host: request.headers.host }, 'admin call refused: Host not allowed')
      return adminError(reply, 'host_not_allowed', 'the admin API answers only to its own address, localhost or a name in admin.allowedHosts')
    }
    // No CORS, and no browser at all: a page (including one that rebinds its
    // DNS name to 127.0.0.1) sends Origin; Prometheus, probes and curl do not.
    if (request.headers.origin !== undefined) {
      request.log.warn({ method: request.method, url: request.url, remote: request.ip, origin: request.headers.origin }, 'admin call refused: browser origin')
      return adminError(reply, 'cross_origin_refused', 'the admin API does not serve browsers (a request with an Origin header)')
    }
    if (READ_METHODS.has(request.method) && !privateRead(request.url)) return
    const expected = options.token()
    if (expected === undefined) {
      return adminError(reply, 'admin_token_not_configured', 'state-changing admin calls are disabled until admin.token or admin.tokenFile is set')
    }
    const remote = request.ip
    const header = request.headers.authorization
    // The auth scheme is case-insensitive (RFC 9110 §11.1): "bearer x" is the same credential as "Bearer x".
    const scheme = typeof header === 'string' ? /^bearer +(\S.*)$/i.exec(header) : null
    const presented = scheme?.[1] ?? ''
    // The right token is never refused, throttled or not: anyone on the pod could otherwise lock the
    // operator out of POST /chaos/off by sending wrong tokens from the same address (containment).
    // Only wrong tokens are throttled; guessing is defeated by the token's length, not by the throttle.
    if (!tokenMatches(presented, expected)) {
      const waitMs = throttle.blockedFor(remote)
      if (waitMs > 0) {
        request.log.warn({ method: request.method, url: request.url, remote }, 'admin call refused: too many failed token attempts')
        return adminError(reply.header('retry-after', String(Math.ceil(waitMs / 1000))), 'too_many_auth_failures', 'too many failed token attempts from this address; try again later')
      }
      const failures = throttle.fail(remote)
      request.log.warn({ method: request.method, url: request.url, remote, failures }, 'admin call refused: missing or wrong bearer token')
      return adminError(reply.header('www-authenticate', 'Bearer realm="faultline-admin"'), 'unauthorized', 'a valid "Authorization: Bearer <token>" header is required')
    }
    throttle.succeed(remote)
  })

  // A path no endpoint has, or a method its endpoints do not take: answered here, before fastify
  // reads a body (a QUERY without Content-Type got fastify's 400 even on a path that does not exist).
  app.addHook('onRequest', async (request, reply) => {
    if (!request.is404) return
    const path = request.url.split('?')[0] ?? '/'
    const allowed = allowedOn(path)
    if (allowed.length === 0) return adminError(reply, 'not_found', `no admin endpoint ${request.method} ${path}`)
    return adminError(reply.header('allow', allowed.join(', ')), 'method_not_allowed', `${path} answers ${allowed.join(', ')}, not ${request.method}`, { allowed })
  })

  // Every admin answer that shows config goes through the one redaction (a fault matching on
  // Authorization, a static fallback setting a cookie), whichever endpoint it comes from.
  app.addHook('preSerialization', async (_request, _reply, payload) => redactSecrets(payload))

  app.setErrorHandler((err: { statusCode?: number, message: string }, request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) request.log.error({ err }, 'admin call failed')
    return adminError(reply, status === 500 ? 'internal_error' : 'bad_request', err.message, {}, status)
  })
  app.setNotFoundHandler((request, reply) => adminError(reply, 'not_found', `no admin endpoint ${request.method} ${request.url.split('?')[0]}`))

  app.get('/healthz', async () => ({ status: 'ok' }))

  app.get('/readyz', async (_request, reply) => {
    if (control.isReady()) return { status: 'ready' }
    return await reply.code(503).send({ status: 'not_ready' })
  })

  app.get('/metrics', async (_request, reply) => {
    const body = await metrics.registry.metrics()
    return await reply.header('content-type', metrics.registry.contentType).send(body)
  })

  app.get('/routes', async () => control.routes())

  app.post('/reload', async (request, reply) => {
    try {
      const result = await control.reload()
      audit(request, 'reload', { generation: result.generation })
      return result
    } catch (err) {
      if (err instanceof ConfigError) {
        request.log.warn({ audit: 'reload', problems: err.problems }, 'admin: reload refused, the old config stays live')
        return adminError(reply, 'invalid_config', err.message, { problems: err.problems.map((p) => ({ file: err.file, ...p })) })
      }
      throw err
    }
  })

  for (const extend of options.extensions ?? []) extend(app, control)
  return app
}
