/**
 * WebSocket upgrades are proxied to the route's upstream byte for byte,
 * counted, and can be faulted at the connection level; a route that turns
 * upgrades off answers 501, never 200. A real `ws` echo server upstream and
 * a real `ws` client through the proxy.
 */
import { connect } from 'node:net'
import t from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { closedPort, route, scrape, startProxy, startUpstream, sumOf, within, type Teardown } from '../helpers.js'

interface Echo { url: string, seen: Array<{ url: string | undefined, forwardedFor: string | undefined }> }

async function echoUpstream (t: Teardown): Promise<Echo> {
  const seen: Echo['seen'] = []
  const upstream = await startUpstream(t, (_req, res) => { res.end('plain') })
  const wss = new WebSocketServer({ server: upstream.server })
  wss.on('connection', (socket, req) => {
    seen.push({ url: req.url, forwardedFor: req.headers['x-forwarded-for'] as string | undefined })
    socket.on('message', (data, binary) => { socket.send(data, { binary }) })
  })
  t.teardown(() => { for (const c of wss.clients) c.terminate(); wss.close() })
  return { url: upstream.url, seen }
}

function wsUrl (proxyUrl: string, path: string): string {
  return proxyUrl.replace(/^http/, 'ws') + path
}

async function opened (ws: WebSocket): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => { resolve() })
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => { reject(new Error(`unexpected ${res.statusCode}`)) })
  })
}

async function refusedWith (url: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once('open', () => { ws.terminate(); reject(new Error('the upgrade was accepted')) })
    ws.once('error', () => {})
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
  })
}

async function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  return await new Promise((resolve) => { ws.once('close', (code, reason) => { resolve({ code, reason: reason.toString() }) }) })
}

t.test('a WebSocket is proxied to the route upstream, rewritten, echoed byte for byte, and counted', async (t) => {
  const echo = await echoUpstream(t)
  const proxy = await startProxy(t, { routes: [{ ...route('chat', '/chat', echo.url), match: { pathPrefix: '/chat', rewritePrefix: '/v1/chat' } }] })
  const ws = new WebSocket(wsUrl(proxy.url, '/chat/room?x=1'))
  await opened(ws)
  const got: Array<string | Buffer> = []
  const three = new Promise<void>((resolve) => {
    ws.on('message', (data: Buffer, binary) => { got.push(binary ? data : data.toString()); if (got.length === 3) resolve() })
  })
  const big = Buffer.alloc(200_000, 7)
  ws.send('hello')
  ws.send(Buffer.from([0, 1, 2, 255]))
  ws.send(big)
  await three
  t.same(got[0], 'hello')
  t.same(got[1], Buffer.from([0, 1, 2, 255]))
  t.ok(Buffer.isBuffer(got[2]) && (got[2]).equals(big), 'a 200 kB binary frame arrives intact')
  t.same(echo.seen.map((s) => s.url), ['/v1/chat/room?x=1'], 'the route\'s rewrite applies to the handshake')
  t.match(echo.seen[0]?.forwardedFor, /127\.0\.0\.1/)
  const done = closed(ws)
  ws.close(1000, 'bye')
  t.same(await done, { code: 1000, reason: 'bye' }, 'a clean close passes through both ways')
  await new Promise((resolve) => setTimeout(resolve, 100))
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_websocket_connections_total', { route: 'chat', event: 'opened' }), 1)
  t.equal(sumOf(m, 'faultline_websocket_connections_total', { route: 'chat', event: 'closed', injected: 'false' }), 1)
  t.equal(sumOf(m, 'faultline_websocket_connections_total', { route: 'chat', event: 'error' }), 0)
  t.ok(proxy.logs.lines.some((l) => l.msg === 'websocket' && l.route === 'chat' && l.status === 101), 'one log line for the connection')
})

t.test('a close fault ends the connection after N messages with its close code', async (t) => {
  const echo = await echoUpstream(t)
  const proxy = await startProxy(t, {
    routes: [route('n', '/n', echo.url, {
      chaos: { enabled: true },
      upgrades: { faults: [{ kind: 'close', afterMessages: 4, code: 4001, reason: 'injected bye' }] }
    })]
  })
  const ws = new WebSocket(wsUrl(proxy.url, '/n'))
  await opened(ws)
  const got: string[] = []
  ws.on('message', (data: Buffer) => { got.push(data.toString()) })
  const done = closed(ws)
  ws.send('a')
  await new Promise((resolve) => setTimeout(resolve, 100))
  ws.send('b')
  await new Promise((resolve) => setTimeout(resolve, 100))
  ws.send('c')
  t.same(await done, { code: 4001, reason: 'injected bye' })
  t.same(got, ['a', 'b'], 'two round trips (four messages), then the close')
  await new Promise((resolve) => setTimeout(resolve, 100))
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_websocket_connections_total', { route: 'n', event: 'closed', injected: 'true' }), 1, 'counted as injected')
  t.equal(sumOf(m, 'faultline_faults_injected_total', { route: 'n', fault: 'upgrade_close' }), 1)
})

t.test('a close fault after a time; a refused and a delayed handshake', async (t) => {
  const echo = await echoUpstream(t)
  const proxy = await startProxy(t, {
    routes: [
      route('timed', '/timed', echo.url, { chaos: { enabled: true }, upgrades: { faults: [{ kind: 'close', afterMs: 300 }] } }),
      route('refused', '/refused', echo.url, { chaos: { enabled: true }, upgrades: { faults: [{ kind: 'refuse', status: 503 }] } }),
      route('slow', '/slow', echo.url, { chaos: { enabled: true }, upgrades: { faults: [{ kind: 'delay', ms: 400 }] } }),
      route('off', '/off', echo.url, { upgrades: { faults: [{ kind: 'refuse' }] } })
    ]
  })
  const started = performance.now()
  const timed = new WebSocket(wsUrl(proxy.url, '/timed'))
  await opened(timed)
  const ended = await closed(timed)
  t.equal(ended.code, 1001, 'going away, the default code')
  t.ok(performance.now() - started >= 280, 'not before afterMs')

  const refused = await refusedWith(wsUrl(proxy.url, '/refused'))
  t.equal(refused.status, 503)
  t.match(refused.body, /injected/)

  const t0 = performance.now()
  const slow = new WebSocket(wsUrl(proxy.url, '/slow'))
  await opened(slow)
  t.ok(performance.now() - t0 >= 380, 'the handshake was held')
  slow.close()

  const calm = new WebSocket(wsUrl(proxy.url, '/off'))
  await opened(calm)
  t.pass('with chaos off on the route, its upgrade faults do not fire')
  calm.close()
  t.equal(echo.seen.length, 3, 'the refused handshake never reached the upstream')
})

t.test('a route with upgrades off answers 501, never 200; other upgrades are plain requests', async (t) => {
  const echo = await echoUpstream(t)
  const proxy = await startProxy(t, { routes: [route('plain', '/plain', echo.url, { upgrades: { enabled: false } })] })
  const refused = await refusedWith(wsUrl(proxy.url, '/plain/x'))
  t.equal(refused.status, 501)
  t.match(refused.body, /upgrade_disabled/)
  t.equal(echo.seen.length, 0)

  // curl --http2 on http:// asks for h2c this way: the Upgrade is ignored (RFC 9110 §7.8), the request served.
  const port = Number(new URL(proxy.url).port)
  const answer = await new Promise<string>((resolve) => {
    const socket = connect(port, '127.0.0.1')
    let text = ''
    socket.on('data', (c: Buffer) => { text += c.toString('latin1') })
    // The safety cut is cleared on close: a pending timer keeps the test process alive (docs/TESTING.md, "CI time").
    const cut = setTimeout(() => { socket.destroy() }, 3_000)
    socket.on('close', () => { clearTimeout(cut); resolve(text) })
    socket.write('GET /plain/page HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n')
  })
  t.match(answer, /^HTTP\/1\.1 200 /)
  t.match(answer, /plain$/)
})

t.test('the listener\'s edge limits and path rules hold for upgrades too', async (t) => {
  const echo = await echoUpstream(t)
  const proxy = await startProxy(t, { listen: { maxUrlLength: 64 }, routes: [route('e', '/e', echo.url)] })
  t.equal((await refusedWith(wsUrl(proxy.url, '/e/' + 'x'.repeat(100)))).status, 414)
  t.equal((await refusedWith(wsUrl(proxy.url, '/e/..%2fadmin'))).status, 400)
  t.equal(echo.seen.length, 0)
})

t.test('an unreachable upstream: 502, counted as an error', async (t) => {
  const port = await closedPort()
  const proxy = await startProxy(t, { routes: [route('down', '/down', `http://127.0.0.1:${port}`)] })
  const refused = await refusedWith(wsUrl(proxy.url, '/down'))
  t.equal(refused.status, 502)
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_websocket_connections_total', { route: 'down', event: 'error' }), 1)
})

t.test('shutdown ends open tunnels instead of waiting for them', async (t) => {
  const echo = await echoUpstream(t)
  const proxy = await startProxy(t, { routes: [route('s', '/s', echo.url)] })
  const ws = new WebSocket(wsUrl(proxy.url, '/s'))
  await opened(ws)
  const ended = closed(ws)
  const started = performance.now()
  await proxy.faultline.close()
  await ended
  t.ok(performance.now() - started < 3_000, 'closed promptly, the tunnel did not hold the listener open')
})

t.test('unit: the frame tracker finds message ends across split chunks, extended lengths and masks', async (t) => {
  const { FrameTracker, closeFrame } = await import('../../src/proxy/ws-frames.js')
  const long = Buffer.alloc(300, 1)
  const frames = Buffer.concat([
    Buffer.from([0x01, 0x01, 0x61]), // text, not final
    Buffer.from([0x89, 0x00]), // ping in between: not a message
    Buffer.from([0x80, 0x01, 0x62]), // final continuation: message 1 ends
    Buffer.from([0x82, 0xfe, 0x01, 0x2c, 1, 2, 3, 4]), long, // masked binary, 16-bit length: message 2
    Buffer.from([0x81, 0x80, 9, 9, 9, 9]) // masked empty text: message 3
  ])
  const ends: number[] = []
  const tracker = new FrameTracker()
  let offset = 0
  for (const byte of frames) {
    tracker.feed(Buffer.from([byte]), (end) => { ends.push(offset + end); return false })
    offset++
  }
  t.same(ends, [8, 8 + 8 + 300, frames.length], 'three messages, found one byte at a time')
  t.ok(tracker.atBoundary)
  const whole = new FrameTracker()
  t.equal(whole.feed(frames, () => true), 8, 'asked to stop: stops just past the first message')
  t.same([...closeFrame(4001, 'x', false)], [0x88, 3, 0x0f, 0xa1, 0x78])
  const masked = closeFrame(1001, '', true)
  t.equal(masked[1], 0x82, 'masked, two bytes of payload')
  t.equal(((masked[6]! ^ masked[2]!) << 8) | (masked[7]! ^ masked[3]!), 1001)
})

t.test('the kill switch cuts an injected handshake delay short', async (t) => {
  const echo = await echoUpstream(t)
  const proxy = await startProxy(t, { routes: [route('slow', '/slow', echo.url, { chaos: { enabled: true }, upgrades: { faults: [{ kind: 'delay', ms: 60_000 }] } })] })
  const ws = new WebSocket(wsUrl(proxy.url, '/slow'))
  t.teardown(() => { ws.terminate() })
  const open = opened(ws).then(() => 'open', (err: Error) => err.message)
  // The handshake is being held once the delay is counted.
  for (let i = 0; i < 200 && sumOf(await scrape(proxy), 'faultline_faults_injected_total', { route: 'slow', fault: 'upgrade_delay' }) === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const t0 = performance.now()
  t.equal(proxy.faultline.chaos.turnOff(), true, 'the kill switch goes off')
  const result = await within(open, 5_000, 'still held after 5 s')
  t.equal(result, 'open', 'the handshake completed at once, not after the 60 s delay')
  t.ok(performance.now() - t0 < 5_000)
})
