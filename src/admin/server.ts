/**
 * The admin API, on its own port (loopback by default). Reads are open so
 * Prometheus and probes need no secret; every state-changing call needs the
 * bearer token, compared in constant time. All errors go through one
 * funnel so every refusal has the same JSON shape.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
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
}

/**
 * Failed bearer-token attempts per remote address in a fixed window. A
 * remote past the limit gets 429 for the rest of its window, even with
 * the right token, so guessing costs a window per `max` guesses. Bounded
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

/** The single error funnel for the admin API. */
export function adminError (reply: FastifyReply, status: number, error: string, message: string, extra: Record<string, unknown> = {}): FastifyReply {
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

  const throttle = new AuthThrottle(options.authFailures?.max ?? 10, options.authFailures?.windowMs ?? 60_000)

  app.addHook('onRequest', async (request, reply) => {
    // No CORS, and no browser at all: a page (including one that rebinds its
    // DNS name to 127.0.0.1) sends Origin; Prometheus, probes and curl do not.
    if (request.headers.origin !== undefined) {
      request.log.warn({ method: request.method, url: request.url, remote: request.ip, origin: request.headers.origin }, 'admin call refused: browser origin')
      return adminError(reply, 403, 'cross_origin_refused', 'the admin API does not serve browsers (a request with an Origin header)')
    }
    if (READ_METHODS.has(request.method)) return
    const expected = options.token()
    if (expected === undefined) {
      return adminError(reply, 403, 'admin_token_not_configured', 'state-changing admin calls are disabled until admin.token or admin.tokenFile is set')
    }
    const remote = request.ip
    const waitMs = throttle.blockedFor(remote)
    if (waitMs > 0) {
      request.log.warn({ method: request.method, url: request.url, remote }, 'admin call refused: too many failed token attempts')
      return adminError(reply.header('retry-after', String(Math.ceil(waitMs / 1000))), 429, 'too_many_auth_failures', 'too many failed token attempts from this address; try again later')
    }
    const header = request.headers.authorization
    const presented = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : ''
    if (!tokenMatches(presented, expected)) {
      const failures = throttle.fail(remote)
      request.log.warn({ method: request.method, url: request.url, remote, failures }, 'admin call refused: missing or wrong bearer token')
      return adminError(reply.header('www-authenticate', 'Bearer realm="faultline-admin"'), 401, 'unauthorized', 'a valid "Authorization: Bearer <token>" header is required')
    }
    throttle.succeed(remote)
  })

  app.setErrorHandler((err: { statusCode?: number, message: string }, request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500
    if (status === 500) request.log.error({ err }, 'admin call failed')
    return adminError(reply, status, status === 500 ? 'internal_error' : 'bad_request', err.message)
  })
  app.setNotFoundHandler((request, reply) => adminError(reply, 404, 'not_found', `no admin endpoint ${request.method} ${request.url.split('?')[0]}`))

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
        return adminError(reply, 400, 'invalid_config', err.message, { problems: err.problems.map((p) => ({ file: err.file, ...p })) })
      }
      throw err
    }
  })

  for (const extend of options.extensions ?? []) extend(app, control)
  return app
}
