/**
 * The client-facing listener. fastify owns the socket, HTTP parsing and
 * client errors (a malformed request gets a 400 and never reaches a route);
 * one catch-all route hands every request to the route table of the live
 * config generation. Bodies are never parsed: the raw request stream is
 * forwarded as it arrives.
 */
import { randomUUID } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { RouteTable } from './router.js'
import { hostOf } from './router.js'
import { RequestContext } from './context.js'
import { hasRequestBody, upstreamRequestHeaders } from './headers.js'
import { sendFailure, sendJson, sendUpstreamResponse } from './respond.js'
import type { Metrics } from '../metrics/metrics.js'

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE']

/** A propagated x-request-id is kept only if it is short and plain, so logs stay clean. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export interface ProxyServerOptions {
  logger: Logger
  metrics: Metrics
  /** Returns the live route table; read once per request. */
  routes: () => RouteTable
  keepAliveTimeoutMs: number
  maxConnections: number
}

export function requestIdFor (req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID()
}

export function createProxyServer (options: ProxyServerOptions): FastifyInstance {
  const { logger, metrics } = options
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // One log line per request is ours (src/proxy/respond.ts), not fastify's.
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: options.keepAliveTimeoutMs,
    // Request ids are ours (x-request-id); fastify's own counter is never shown.
    genReqId: () => '',
    // fastify would build a pino child per request to bind its (empty) reqId;
    // nothing logs through request.log, so every request shares the root logger.
    childLoggerFactory: (root) => root,
    return503OnClosing: true,
    forceCloseConnections: 'idle'
  })
  if (options.maxConnections > 0) app.server.maxConnections = options.maxConnections

  // Bodies stream through untouched: accept every content type, read nothing.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => { done(null) })

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const startedAt = performance.now()
    const url = req.url ?? '/'
    const method = req.method ?? 'GET'
    const route = options.routes().match(url, method, hostOf(req.headers.host))
    if (route === undefined) {
      metrics.unmatched.inc()
      sendJson(res, 404, { error: 'no_route', message: `no route matches ${method} ${url.split('?')[0]}`, path: url.split('?')[0] })
      return
    }
    const requestId = requestIdFor(req)
    const ctx = new RequestContext(
      route,
      req,
      requestId,
      route.upstreamPath(url),
      upstreamRequestHeaders(req, requestId),
      hasRequestBody(req) ? req : null,
      startedAt
    )
    route.call(ctx).then(
      (upstream) => { sendUpstreamResponse(ctx, res, upstream, logger) },
      (err: unknown) => { sendFailure(ctx, res, err, logger) }
    )
  }

  app.route({
    method: METHODS,
    url: '*',
    exposeHeadRoute: false,
    handler: (request, reply) => {
      reply.hijack()
      handle(request.raw, reply.raw)
    }
  })
  return app
}
