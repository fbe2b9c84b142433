/**
 * The proxy listener runs fastify without a logger of its own (for speed);
 * what fastify used to log there must still reach ours.
 */
import { connect } from 'node:net'
import t from 'tap'
import { createProxyServer } from '../src/proxy/server.js'
import { createLogger } from '../src/log.js'
import { Metrics } from '../src/metrics/metrics.js'
import type { RouteTable } from '../src/proxy/router.js'
import { LogCapture, fetchText, route, startProxy, startUpstream } from './helpers.js'

t.test('"Server listening at" is logged for the proxy listener', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { routes: [route('a', '/a', upstream.url)] })
  const listening = proxy.logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening at '))
  t.ok(listening.some((l) => l.msg === `Server listening at ${proxy.url}` && l.component === undefined), 'the proxy listener')
  t.ok(listening.some((l) => l.component === 'admin'), 'the admin listener, as before')
})

t.test('a request refused while closing gets a 503 and fastify\'s log line', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { setTimeout(() => res.end('slow'), 300) })
  const proxy = await startProxy(t, { routes: [route('a', '/a', upstream.url)], shutdown: { drainMs: 5_000 } })
  const { port } = new URL(proxy.url)
  // A slow request keeps the connection busy (not idle, so not closed at
  // once); a second one on it arrives after the close has begun.
  const socket = connect(Number(port), '127.0.0.1')
  let text = ''
  socket.on('data', (c: Buffer) => { text += c.toString('latin1') })
  socket.write('GET /a/1 HTTP/1.1\r\nHost: x\r\n\r\n')
  setTimeout(() => { void proxy.faultline.close() }, 100)
  setTimeout(() => { socket.write('GET /a/2 HTTP/1.1\r\nHost: x\r\n\r\n') }, 150)
  await new Promise((resolve) => socket.on('close', resolve))
  t.match(text, /^HTTP\/1.1 200 /)
  t.match(text, /HTTP\/1.1 503 /)
  t.ok(proxy.logs.lines.some((l) => l.msg === 'request aborted - refusing to accept new requests as server is closing'))
})

t.test('a bug in the handler is logged and answered with a 500, not left hanging', async (t) => {
  const logs = new LogCapture()
  const app = createProxyServer({
    logger: createLogger('info', logs),
    metrics: new Metrics({ defaultMetrics: false }),
    routes: (): RouteTable => { throw new Error('boom') },
    keepAliveTimeoutMs: 5_000,
    maxConnections: 0
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(async () => { await app.close() })
  const { port } = app.server.address() as { port: number }
  const res = await fetchText(`http://127.0.0.1:${port}/x`, { timeoutMs: 2_000 })
  t.equal(res.status, 500)
  t.equal(JSON.parse(res.body).error, 'internal')
  t.ok(logs.lines.some((l) => l.level === 50 && l.msg === 'the proxy handler failed'))
})
