/**
 * The floor: the least a correct Node reverse proxy does. node:http in,
 * node:http out through a keep-alive Agent, bodies streamed both ways,
 * hop-by-hop headers (RFC 9110 §7.6.1) dropped in both directions. No
 * routing, no logging, no metrics, no timeouts beyond Node's own.
 *
 *   node bench/bare-proxy.mjs PORT UPSTREAM_URL    (listens on 127.0.0.1 only)
 */
import { Agent, createServer, request } from 'node:http'

const port = Number(process.argv[2] ?? 0)
const upstream = new URL(process.argv[3] ?? 'http://127.0.0.1:3000')

// Same pool size as faultline's and @fastify/http-proxy's default (128).
const agent = new Agent({ keepAlive: true, maxSockets: 128 })

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])

/** Copies end-to-end headers; drops hop-by-hop ones and any the Connection header names. */
function endToEnd (headers, alsoDrop) {
  const listed = headers.connection ? headers.connection.toLowerCase().split(',').map((s) => s.trim()) : []
  const out = {}
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || name === alsoDrop || listed.includes(name)) continue
    out[name] = headers[name]
  }
  return out
}

const server = createServer((req, res) => {
  const upstreamReq = request({
    agent,
    host: upstream.hostname,
    port: upstream.port,
    method: req.method,
    path: req.url,
    // `host` is re-derived by node:http from the upstream address.
    headers: endToEnd(req.headers, 'host')
  }, (upstreamRes) => {
    res.writeHead(upstreamRes.statusCode, endToEnd(upstreamRes.headers))
    upstreamRes.pipe(res)
  })
  upstreamReq.on('error', () => {
    if (res.headersSent) res.destroy()
    else { res.writeHead(502); res.end() }
  })
  // A client that leaves takes its upstream request with it.
  res.on('close', () => { if (!res.writableFinished) upstreamReq.destroy() })
  req.pipe(upstreamReq)
})
server.keepAliveTimeout = 65_000
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`bare proxy on 127.0.0.1:${server.address().port} -> ${upstream.origin}\n`)
})
process.on('SIGTERM', () => { server.closeAllConnections(); server.close(() => process.exit(0)) })
