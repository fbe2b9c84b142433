/**
 * The client-facing listener. fastify owns the socket, HTTP parsing and
 * client errors (a malformed request gets a 400 and never reaches a route);
 * one catch-all route hands every request to the route table of the live
 * config generation. Bodies are never parsed: the raw request stream is
 * forwarded as it arrives.
 */
import { randomUUID } from 'node:crypto'
import { METHODS as httpMethods, ServerResponse, type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { networkInterfaces } from 'node:os'
import Fastify, { LogController, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { RouteTable } from './router.js'
import type { RouteRuntime } from './route.js'
import { hostOf } from './router.js'
import { ClientContext } from './client-context.js'
import { hasRequestBody, upstreamRequestHeaders } from './headers.js'
import { sendFailure, sendJson, sendTooLarge, sendUpstreamResponse, settleOnClose } from './respond.js'
import { bodyLimitFor, declaredTooLarge } from './limits.js'
import { BadPathError, normalizeTarget } from '../core/path.js'
import { ForwardingTrust } from './trust.js'
import { UpgradeProxy } from './upgrade.js'
import { serveWithClientFaults } from './client-faults.js'
import { clientErrorReason, type Metrics } from '../metrics/metrics.js'
import { requestLogger } from '../log.js'
import type { Config } from '../config/schema.js'

type ListenConfig = Config['listen']

/**
 * Every method Node's parser accepts is proxied (WebDAV's PROPFIND and
 * REPORT, PURGE, SEARCH, QUERY, ...), so none meets a framework 404 that
 * nobody counts; a route's `match.methods` narrows it. CONNECT is the
 * exception: Node hands it to 'connect' (a tunnel, not a request), where
 * it is refused with a counted 501 (below).
 */
const METHODS = httpMethods.filter((m) => m !== 'CONNECT')
/** The methods fastify routes without addHttpMethod (fastify 5). */
const FASTIFY_METHODS = new Set(['GET', 'HEAD', 'TRACE', 'DELETE', 'OPTIONS', 'PATCH', 'PUT', 'POST', 'QUERY'])

/** A propagated x-request-id is kept only if it is short and plain, so logs stay clean. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

export interface ProxyServerOptions {
  logger: Logger
  metrics: Metrics
  /** Returns the live route table; read once per request. */
  routes: () => RouteTable
  /** The `listen` block as the config schema parsed it: its defaults are the only ones (docs/SECURITY.md, edge limits). */
  listen: ListenConfig
}

/** Sends the one line fastify itself logs on this listener (503 while closing) to our logger. */
class ProxyLogController extends LogController {
  private readonly logger: Logger

  constructor (logger: Logger) {
    // Per-request lines are ours (src/proxy/respond.ts), not fastify's.
    super({ disableRequestLogging: true })
    this.logger = logger
  }

  override serviceUnavailable (): void {
    this.logger.info({ res: { statusCode: 503 } }, 'request aborted - refusing to accept new requests as server is closing')
  }
}

/** The URLs fastify's "Server listening at" lines name: every IPv4 interface for 0.0.0.0. */
function listeningAt (address: AddressInfo | string | null): string[] {
  if (address === null) return []
  if (typeof address === 'string') return [address]
  if (address.address.includes(':')) return [`http://[${address.address}]:${address.port}`]
  const hosts = address.address !== '0.0.0.0'
    ? [address.address]
    : Object.values(networkInterfaces()).flatMap((list) => list ?? []).filter((i) => i.family === 'IPv4')
      .sort((a, b) => Number(b.internal) - Number(a.internal)).map((i) => i.address)
  return hosts.map((host) => `http://${host}:${address.port}`)
}

export function requestIdFor (req: IncomingMessage): string {
  const given = req.headers['x-request-id']
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID()
}

/** The route an `Expect: 100-continue` request is for, if its path is sound and a route matches. */
function routeForContinue (routes: RouteTable, req: IncomingMessage): RouteRuntime | undefined {
  try {
    return routes.match(normalizeTarget(req.url ?? '/'), req.method ?? 'GET', hostOf(req.headers.host))
  } catch {
    return undefined
  }
}

/**
 * The listener, in the order it is put together: fastify with the edge
 * limits, the refusals Node leaves to us (Expect, CONNECT), upgrades, then
 * the one catch-all route.
 */
export function createProxyServer (options: ProxyServerOptions): FastifyInstance {
  const trust = new ForwardingTrust(options.listen.trustedProxies)
  const app = newListener(options)
  countClientErrors(app, options.metrics)
  answerExpectContinue(app, options.routes)
  refuseConnect(app, options.metrics)
  proxyUpgrades(app, options, trust)
  routeEveryRequest(app, options, trust)
  return app
}

/** fastify on a node:http server with the edge limits of `listen` (docs/SECURITY.md). */
function newListener ({ listen, logger }: ProxyServerOptions): FastifyInstance {
  const app = Fastify({
    http: {
      // Request line + headers; llhttp stops parsing past it and fastify answers 431.
      maxHeaderSize: listen.maxHeaderBytes,
      // Node checks header/request timeouts on this interval (30 s by default,
      // which would let a slowloris client hold a socket 4x the configured time).
      connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(listen.headersTimeoutMs / 4)))
    },
    requestTimeout: listen.requestTimeoutMs,
    // No logger for fastify itself on this listener. With one, fastify adds
    // per-request work we never use (a child logger, 'finish' and 'error'
    // listeners and timestamps for its disabled request-completed line):
    // 1-5% of the proxy's CPU per request (bench/). The one line per request
    // is ours (src/proxy/respond.ts); the few lines fastify wrote here are
    // written by us, unchanged.
    logger: false,
    logController: new ProxyLogController(logger),
    keepAliveTimeout: listen.keepAliveTimeoutMs,
    // Request ids are ours (x-request-id); fastify's own counter is never shown.
    genReqId: () => '',
    return503OnClosing: true,
    forceCloseConnections: 'idle'
  })
  if (listen.maxConnections > 0) app.server.maxConnections = listen.maxConnections
  app.addHook('onListen', (done) => {
    for (const address of listeningAt(app.server.address())) logger.info(`Server listening at ${address}`)
    done()
  })
  app.server.headersTimeout = listen.headersTimeoutMs
  // Node silently drops headers past maxHeadersCount; keep one more than the
  // limit so an over-limit request is seen (rawHeaders) and refused, not truncated.
  app.server.maxHeadersCount = listen.maxHeaders + 1
  for (const method of METHODS) if (!FASTIFY_METHODS.has(method)) app.addHttpMethod(method, { hasBody: true })
  // Bodies stream through untouched: accept every content type, read nothing.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => { done(null) })
  return app
}

/** Counted only: fastify's own clientError handler answers (400, 408, 431) and closes. */
function countClientErrors (app: FastifyInstance, metrics: Metrics): void {
  app.server.on('clientError', (err: NodeJS.ErrnoException) => {
    const reason = clientErrorReason(err.code)
    if (reason !== undefined) metrics.edgeRejections.labels(reason).inc()
  })
}

/**
 * Node answers `Expect: 100-continue` itself unless someone listens. A
 * declared body over the route's limit is refused before the client is
 * told to send it; anything else is told to go on and handled as usual.
 */
function answerExpectContinue (app: FastifyInstance, routes: () => RouteTable): void {
  app.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const route = routeForContinue(routes(), req)
    if (route !== undefined) {
      const maxBody = route.config.limits.maxRequestBodyBytes
      if (maxBody > 0 && declaredTooLarge(req, maxBody)) {
        sendTooLarge(res, maxBody, requestIdFor(req), route)
        return
      }
      res.writeContinue()
    }
    // No route or a bad path: no 100, the handler's 404 or 400 comes without the body being sent.
    app.server.emit('request', req, res)
  })
}

/** CONNECT asks for a tunnel, which a reverse proxy does not offer: a counted 501, not a silently closed socket. */
function refuseConnect (app: FastifyInstance, metrics: Metrics): void {
  app.server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    metrics.edgeRejections.labels('method_not_supported').inc()
    const body = JSON.stringify({ error: 'method_not_supported', message: 'CONNECT is not supported: faultline is a reverse proxy, not a tunnel' })
    socket.on('error', () => {})
    socket.end(`HTTP/1.1 501 Not Implemented\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
  })
}

/**
 * HTTP/1.1 upgrades (src/proxy/upgrade.ts). With an 'upgrade' listener Node
 * hands over every request that asks for one; one for anything but
 * WebSocket (h2c, say) is served as a plain request with the Upgrade
 * ignored (RFC 9110 §7.8), on a connection that closes after the answer.
 */
function proxyUpgrades (app: FastifyInstance, { routes, metrics, logger, listen }: ProxyServerOptions, trust: ForwardingTrust): void {
  const upgrades = new UpgradeProxy({
    routes,
    metrics,
    logger,
    trust,
    requestId: requestIdFor,
    maxUrlLength: listen.maxUrlLength,
    plain: (req, socket, head) => {
      if (head.length > 0) socket.unshift(head)
      const res = new ServerResponse(req)
      res.shouldKeepAlive = false
      res.assignSocket(socket)
      res.once('finish', () => { socket.end() })
      app.server.emit('request', req, res)
    }
  })
  app.server.on('upgrade', upgrades.handle)
  // Open tunnels would hold the listener's close forever: they end first.
  app.addHook('preClose', (done) => { upgrades.closeAll(); done() })
}

/** The one catch-all route: every request goes to the live route table, its body unread. */
function routeEveryRequest (app: FastifyInstance, options: ProxyServerOptions, trust: ForwardingTrust): void {
  const { logger, metrics } = options
  const requestLog = requestLogger(logger)
  const maxUrlLength = options.listen.maxUrlLength
  const maxHeaders = options.listen.maxHeaders
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const startedAt = performance.now()
    const url = req.url ?? '/'
    const method = req.method ?? 'GET'
    // Two comparisons on the hot path; both answers close the connection.
    if (url.length > maxUrlLength) {
      metrics.edgeRejections.labels('uri_too_long').inc()
      sendJson(res, 414, { error: 'uri_too_long', message: `the request target is longer than ${maxUrlLength} bytes` }, { connection: 'close' })
      return
    }
    if (req.rawHeaders.length > maxHeaders * 2) {
      metrics.edgeRejections.labels('too_many_headers').inc()
      sendJson(res, 431, { error: 'too_many_headers', message: `the request has more than ${maxHeaders} header fields` }, { connection: 'close' })
      return
    }
    // Dot-segments resolved before matching (docs/SECURITY.md): the route and the upstream see the same path.
    let target: string
    try {
      target = normalizeTarget(url)
    } catch (err) {
      if (!(err instanceof BadPathError)) throw err
      metrics.edgeRejections.labels('bad_request').inc()
      sendJson(res, 400, { error: 'bad_path', message: err.message }, { connection: 'close' })
      return
    }
    const route = options.routes().match(target, method, hostOf(req.headers.host))
    if (route === undefined) {
      metrics.unmatched.inc()
      sendJson(res, 404, { error: 'no_route', message: `no route matches ${method} ${url.split('?')[0]}`, path: url.split('?')[0] })
      return
    }
    const requestId = requestIdFor(req)
    const maxBody = route.config.limits.maxRequestBodyBytes
    const hasBody = hasRequestBody(req)
    // A declared length over the limit is refused before anything is read or forwarded.
    if (hasBody && maxBody > 0 && declaredTooLarge(req, maxBody)) {
      sendTooLarge(res, maxBody, requestId, route)
      return
    }
    // A chunked body, or a large declared one, is counted on its way, its tiny pieces gathered, a flood of them refused.
    const limit = hasBody ? bodyLimitFor(req, maxBody > 0 ? maxBody : Infinity) : undefined
    const ctx = new ClientContext(
      route,
      req,
      res,
      requestId,
      route.upstreamPath(target),
      upstreamRequestHeaders(req, requestId, trust),
      hasBody ? (limit?.body ?? req) : null,
      startedAt
    )
    // A body that fails the limit or is cut by the client ends this request, wherever it waits.
    limit?.attach(ctx)
    // From the start, so a client that leaves before any answer is still counted and logged.
    settleOnClose(ctx, res, requestLog)
    // Client-side faults and trigger headers wrap the whole exchange; without them this is one property read.
    if (route.faultStage.clientSide) {
      serveWithClientFaults(route, ctx, res)
      return
    }
    route.call(ctx).then(
      (upstream) => { sendUpstreamResponse(ctx, res, upstream) },
      (err: unknown) => { sendFailure(ctx, res, err) }
    )
  }

  app.route({
    method: METHODS,
    url: '*',
    exposeHeadRoute: false,
    handler: (request, reply) => {
      reply.hijack()
      try {
        handle(request.raw, reply.raw)
      } catch (err) {
        // A bug, not an upstream failure; fastify has no logger here to report it.
        logger.error({ err }, 'the proxy handler failed')
        if (reply.raw.headersSent) reply.raw.destroy()
        else sendJson(reply.raw, 500, { error: 'internal', message: 'faultline failed to handle the request' })
      }
    }
  })
}
