/**
 * HTTP/1.1 upgrades (WebSocket): the handshake goes to the route's
 * upstream with the route's connect timeout; on 101 the two sockets are
 * joined and every byte is relayed as it is. Any other answer is passed
 * back and the connection closed. Routing, path normalisation and the
 * forwarding headers are the same as for a plain request. A route with
 * `upgrades.enabled: false` answers 501; an upgrade to anything but
 * WebSocket (h2c, say) is served as a plain request with the Upgrade
 * ignored (RFC 9110 §7.8).
 *
 * Connection-level faults (src/proxy/upgrade-schema.ts) act only while
 * the route's chaos is on and the kill switch armed. Every tunnel is
 * counted (faultline_websocket_connections_total), logged once when it
 * ends, and owned: closeAll() ends them at shutdown.
 */
import { request as httpRequest, type IncomingMessage, type ClientRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Metrics } from '../metrics/metrics.js'
import type { RouteTable } from './router.js'
import type { RouteRuntime } from './route.js'
import { hostOf } from './router.js'
import { BadPathError, normalizeTarget } from '../core/path.js'
import { upstreamRequestHeaders } from './headers.js'
import type { ForwardingTrust } from './trust.js'
import { tlsConnect } from './upstreams.js'
import { FrameTracker, closeFrame } from './ws-frames.js'
import type { UpgradeFault } from './upgrade-schema.js'

export interface UpgradeOptions {
  routes: () => RouteTable
  metrics: Metrics
  logger: Logger
  trust: ForwardingTrust
  requestId: (req: IncomingMessage) => string
  /** listen.maxUrlLength: the same edge limit as for a plain request. */
  maxUrlLength: number
  /** Serves a non-WebSocket upgrade request as a plain request (the listener's handler). */
  plain: (req: IncomingMessage, socket: Socket, head: Buffer) => void
}

type Event = 'opened' | 'closed' | 'refused' | 'error'

function noop (): void {}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 404: 'Not Found', 414: 'URI Too Long', 501: 'Not Implemented', 502: 'Bad Gateway', 504: 'Gateway Timeout' }

/** A JSON answer written straight to a socket that has left HTTP parsing behind, then closed. */
function answer (socket: Socket, status: number, body: Record<string, unknown>): void {
  if (socket.destroyed) return
  const payload = JSON.stringify(body)
  socket.end(`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `content-length: ${Buffer.byteLength(payload)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${payload}`)
}

/** The faults of `kind` that fire for this connection (each rolls its own probability). */
function chosen (route: RouteRuntime, kind: UpgradeFault['kind']): UpgradeFault | undefined {
  return route.config.upgrades.faults.find((f) => f.kind === kind && route.faultStage.rollConnectionFault(f.probability))
}

export class UpgradeProxy {
  private readonly options: UpgradeOptions
  private readonly open = new Set<Socket>()

  constructor (options: UpgradeOptions) {
    this.options = options
  }

  /** The listener's 'upgrade' handler. */
  readonly handle = (req: IncomingMessage, socket: Socket, head: Buffer): void => {
    socket.on('error', noop)
    const protocol = String(req.headers.upgrade ?? '').toLowerCase()
    if (protocol !== 'websocket') {
      this.options.plain(req, socket, head)
      return
    }
    const url = req.url ?? '/'
    if (url.length > this.options.maxUrlLength) {
      this.options.metrics.edgeRejections.labels('uri_too_long').inc()
      answer(socket, 414, { error: 'uri_too_long', message: `the request target is longer than ${this.options.maxUrlLength} bytes` })
      return
    }
    let target: string
    try {
      target = normalizeTarget(url)
    } catch (err) {
      if (!(err instanceof BadPathError)) throw err
      this.options.metrics.edgeRejections.labels('bad_request').inc()
      answer(socket, 400, { error: 'bad_path', message: err.message })
      return
    }
    const method = req.method ?? 'GET'
    const route = this.options.routes().match(target, method, hostOf(req.headers.host))
    if (route === undefined) {
      this.options.metrics.unmatched.inc()
      answer(socket, 404, { error: 'no_route', message: `no route matches ${method} ${target.split('?')[0]}` })
      return
    }
    if (!route.config.upgrades.enabled) {
      answer(socket, 501, { error: 'upgrade_disabled', message: `route ${route.name} does not proxy WebSocket upgrades (upgrades.enabled is false)`, route: route.name })
      return
    }
    void this.connect(route, req, socket, head, target)
  }

  private count (route: RouteRuntime, event: Event, injected: boolean): void {
    this.options.metrics.websockets.labels(route.name, event, injected ? 'true' : 'false').inc()
  }

  private async connect (route: RouteRuntime, req: IncomingMessage, client: Socket, head: Buffer, target: string): Promise<void> {
    const started = performance.now()
    const requestId = this.options.requestId(req)
    const log = (fields: Record<string, unknown>): void => {
      this.options.logger.info({ route: route.name, path: target.split('?')[0], requestId, durationMs: Math.round(performance.now() - started), ...fields }, 'websocket')
    }
    const refuse = chosen(route, 'refuse')
    if (refuse !== undefined && refuse.kind === 'refuse') {
      route.metrics.faultInjected('upgrade_refuse')
      this.count(route, 'refused', true)
      answer(client, refuse.status, { error: 'injected', message: `injected fault: the WebSocket handshake was refused with ${refuse.status}`, route: route.name, requestId })
      log({ status: refuse.status, fault: 'upgrade_refuse' })
      return
    }
    const delay = chosen(route, 'delay')
    if (delay !== undefined && delay.kind === 'delay') {
      route.metrics.faultInjected('upgrade_delay')
      // Cut short by the kill switch (or chaos switched off on the route): the handshake goes on at once.
      const releases = route.faultStage.chaosOffSignals
      const waited = releases.some((s) => s.aborted) || await new Promise<boolean>((resolve) => {
        const settle = (): void => {
          clearTimeout(timer)
          client.off('close', gone)
          for (const s of releases) s.removeEventListener('abort', released)
        }
        const timer = setTimeout(() => { settle(); resolve(true) }, delay.ms)
        const gone = (): void => { settle(); resolve(false) }
        const released = (): void => { settle(); resolve(true) }
        client.once('close', gone)
        for (const s of releases) s.addEventListener('abort', released, { once: true })
      })
      if (!waited) return
    }
    if (client.destroyed) return
    const upstream = new URL(route.config.upstream.url)
    const headers = upstreamRequestHeaders(req, requestId, this.options.trust)
    headers.push('connection', 'Upgrade', 'upgrade', String(req.headers.upgrade))
    const tls = upstream.protocol === 'https:' ? tlsConnect(upstream.origin, route.config.upstream.tls) : undefined
    const upReq: ClientRequest = (upstream.protocol === 'https:' ? httpsRequest : httpRequest)({
      host: upstream.hostname.replace(/^\[|\]$/g, ''),
      port: upstream.port === '' ? (upstream.protocol === 'https:' ? 443 : 80) : Number(upstream.port),
      method: req.method,
      path: route.upstreamPath(target),
      headers: headerObject(headers, upstream.host),
      agent: false,
      ...(tls ?? {})
    })
    let settled = false
    const fail = (status: number, error: string, message: string): void => {
      if (settled) return
      settled = true
      clearTimeout(connectTimer)
      clearTimeout(handshakeTimer)
      upReq.destroy()
      this.count(route, 'error', false)
      answer(client, status, { error, message, route: route.name, requestId })
      log({ status, error })
    }
    const connectMs = route.config.upstream.connectTimeoutMs
    const connectTimer = setTimeout(() => { fail(504, 'upstream_timeout', `no connection to the upstream within ${connectMs} ms`) }, connectMs)
    const handshakeMs = route.config.resilience.timeoutMs
    const handshakeTimer = setTimeout(() => { fail(504, 'upstream_timeout', `no answer to the WebSocket handshake within ${handshakeMs} ms`) }, handshakeMs)
    upReq.once('socket', (s: Socket) => {
      s.once(tls === undefined ? 'connect' : 'secureConnect', () => { clearTimeout(connectTimer) })
    })
    const onClientGone = (): void => {
      if (settled) return
      settled = true
      clearTimeout(connectTimer)
      clearTimeout(handshakeTimer)
      upReq.destroy()
      log({ status: 0, outcome: 'cancelled' })
    }
    client.once('close', onClientGone)
    upReq.on('error', (err: NodeJS.ErrnoException) => { fail(502, 'upstream_unavailable', `the WebSocket handshake to the upstream failed: ${err.code ?? err.message}`) })
    upReq.on('response', (res) => {
      // The upstream declined to switch: its answer goes back as it is, then the connection closes.
      if (settled) { res.destroy(); return }
      settled = true
      clearTimeout(connectTimer)
      clearTimeout(handshakeTimer)
      client.off('close', onClientGone)
      this.count(route, 'refused', false)
      log({ status: res.statusCode })
      client.write(statusLine(res) + rawHeaderLines(res.rawHeaders, true) + 'connection: close\r\n\r\n')
      res.pipe(client)
      res.on('error', () => { client.destroy() })
      client.once('close', () => { res.destroy() })
    })
    upReq.on('upgrade', (res, upSocket: Socket, upHead: Buffer) => {
      if (settled) { upSocket.destroy(); return }
      settled = true
      clearTimeout(connectTimer)
      clearTimeout(handshakeTimer)
      client.off('close', onClientGone)
      if (client.destroyed) { upSocket.destroy(); return }
      client.write(statusLine(res) + rawHeaderLines(res.rawHeaders, false) + '\r\n')
      this.tunnel(route, client, head, upSocket, upHead, log)
    })
    upReq.end()
  }

  /** Joins the two sockets; counts and logs the connection once, when either side ends it. */
  private tunnel (route: RouteRuntime, client: Socket, head: Buffer, upstream: Socket, upHead: Buffer, log: (fields: Record<string, unknown>) => void): void {
    this.count(route, 'opened', false)
    this.open.add(client)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    client.setTimeout(0)
    upstream.on('error', noop)
    let failure: string | undefined
    let closedBy: 'client' | 'upstream' | 'fault' | 'shutdown' | undefined
    let injected: string | undefined
    const end = (by: typeof closedBy, err?: NodeJS.ErrnoException): void => {
      closedBy ??= by
      if (err !== undefined && failure === undefined && err.code !== 'ECONNRESET' && err.code !== 'EPIPE') failure = err.code ?? err.message
      client.destroy()
      upstream.destroy()
    }
    let counted = false
    const done = (): void => {
      if (counted) return
      counted = true
      clearTimeout(timer)
      this.open.delete(client)
      this.count(route, failure !== undefined ? 'error' : 'closed', closedBy === 'fault')
      log({ status: 101, closedBy, ...(failure !== undefined ? { error: failure } : {}), ...(injected !== undefined ? { fault: injected } : {}) })
    }
    client.once('error', (err) => { end('client', err) })
    upstream.once('error', (err) => { end('upstream', err) })
    client.once('close', () => { end('client'); done() })
    upstream.once('close', () => { end('upstream'); done() })
    client.once('end', () => { closedBy ??= 'client'; upstream.end() })
    upstream.once('end', () => { closedBy ??= 'upstream'; client.end() })
    this.closers.set(client, () => { end('shutdown') })

    const close = chosen(route, 'close')
    let timer: NodeJS.Timeout | undefined
    if (close === undefined || close.kind !== 'close') {
      if (upHead.length > 0) client.write(upHead)
      if (head.length > 0) upstream.write(head)
      client.pipe(upstream, { end: false })
      upstream.pipe(client, { end: false })
      return
    }
    // A close fault: both directions go through frame trackers so the close frame lands between frames.
    route.metrics.faultInjected('upgrade_close')
    const toClient = new FrameTracker()
    const toUpstream = new FrameTracker()
    let messages = 0
    let closing = false
    const shut = (): void => {
      if (closing || client.destroyed) return
      // The kill switch went off (or chaos was switched off) since the handshake: the fault does not fire.
      if (!route.faultStage.rollConnectionFault(1)) return
      closing = true
      injected = 'upgrade_close'
      closedBy = 'fault'
      const fault = close
      client.write(closeFrame(fault.code, fault.reason, false))
      if (toUpstream.atBoundary) upstream.write(closeFrame(fault.code, fault.reason, true))
      client.end()
      upstream.end()
      // A peer that never answers the close is not waited for.
      setTimeout(() => { client.destroy(); upstream.destroy() }, 1_000).unref()
    }
    const limit = close.afterMessages
    const onMessage = limit === undefined ? () => false : (): boolean => ++messages >= limit && route.faultStage.rollConnectionFault(1)
    const relay = (from: Socket, to: Socket, tracker: FrameTracker, chunk: Buffer): void => {
      if (closing) return
      const upTo = tracker.feed(chunk, onMessage)
      const ok = to.write(upTo === chunk.length ? chunk : chunk.subarray(0, upTo))
      if (upTo < chunk.length || (limit !== undefined && messages >= limit)) { shut(); return }
      if (pendingTimeout && toClient.atBoundary) { shut(); return }
      if (!ok) {
        from.pause()
        to.once('drain', () => { from.resume() })
      }
    }
    let pendingTimeout = false
    if (close.afterMs !== undefined) {
      timer = setTimeout(() => {
        pendingTimeout = true
        if (toClient.atBoundary) shut()
      }, close.afterMs)
    }
    if (upHead.length > 0) relay(upstream, client, toClient, upHead)
    if (head.length > 0) relay(client, upstream, toUpstream, head)
    upstream.on('data', (chunk: Buffer) => { relay(upstream, client, toClient, chunk) })
    client.on('data', (chunk: Buffer) => { relay(client, upstream, toUpstream, chunk) })
  }

  private readonly closers = new Map<Socket, () => void>()

  /** Ends every open tunnel (shutdown). */
  closeAll (): void {
    for (const socket of this.open) this.closers.get(socket)?.()
    this.closers.clear()
  }

  get openCount (): number {
    return this.open.size
  }
}

function statusLine (res: IncomingMessage): string {
  return `HTTP/1.1 ${res.statusCode ?? 502} ${res.statusMessage ?? ''}\r\n`
}

const FRAMING = new Set(['connection', 'transfer-encoding', 'keep-alive'])

/** The upstream's header lines as it sent them; `reframe` drops its framing for a close-delimited answer. */
function rawHeaderLines (raw: string[], reframe: boolean): string {
  let out = ''
  for (let i = 0; i < raw.length; i += 2) {
    if (reframe && FRAMING.has(raw[i]!.toLowerCase())) continue
    out += `${raw[i]}: ${raw[i + 1]}\r\n`
  }
  return out
}

/** node:http wants an object; duplicates become lists, and Host is the upstream's. */
function headerObject (flat: string[], host: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = { host }
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase()
    const value = flat[i + 1]!
    const prior = out[name]
    out[name] = prior === undefined ? value : Array.isArray(prior) ? [...prior, value] : [prior, value]
  }
  return out
}
