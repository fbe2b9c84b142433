/**
 * The HTTP edge under hostile input: smuggling shapes, size limits,
 * slowloris clients, idle keep-alive and the connection cap. Everything
 * over raw sockets on 127.0.0.1, against the real listener.
 */
import t from 'tap'
import { connect, type Socket } from 'node:net'
import { fetchText, rawExchange, route, scrape, startProxy, startUpstream, sumOf, within, type Teardown } from '../helpers.js'

/** An upstream that counts requests that arrived and requests whose body arrived whole. */
async function countingUpstream (t: Teardown): Promise<{ url: string, hits: () => number, complete: () => number }> {
  let complete = 0
  const upstream = await startUpstream(t, (req, res) => {
    let size = 0
    req.on('data', (c: Buffer) => { size += c.length })
    req.on('end', () => { complete++; res.end(`got ${size}`) })
  })
  return { url: upstream.url, hits: upstream.hits, complete: () => complete }
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

function statusOf (raw: string): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(raw)
  return m ? Number(m[1]) : 0
}

/** A raw connection that records what it receives and when it closes. */
function openSocket (port: number): { socket: Socket, received: () => string, closed: Promise<number> } {
  const socket = connect(port, '127.0.0.1')
  let data = ''
  socket.on('data', (c: Buffer) => { data += c.toString('latin1') })
  socket.on('error', () => {})
  const t0 = performance.now()
  const closed = new Promise<number>((resolve) => socket.on('close', () => { resolve(performance.now() - t0) }))
  return { socket, received: () => data, closed }
}

t.test('request-smuggling shapes get 400 and never reach the upstream as a request', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, { routes: [route('a', '/', upstream.url)] })
  const port = proxy.faultline.proxyPort
  const shapes: Record<string, string> = {
    'Content-Length with Transfer-Encoding': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    'two Content-Length values': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc',
    'Content-Length list': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 30\r\n\r\nabc',
    'invalid chunk size': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n',
    'obs-fold header': 'GET /a HTTP/1.1\r\nHost: x\r\nX-Folded: one\r\n  two\r\n\r\n',
    'bare LF line endings': 'GET /a HTTP/1.1\nHost: x\n\n',
    'Transfer-Encoding not ending in chunked': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n3\r\nabc\r\n0\r\n\r\n'
  }
  for (const [name, payload] of Object.entries(shapes)) {
    const raw = await rawExchange(port, payload, 3_000)
    t.equal(statusOf(raw), 400, `${name}: 400`)
  }
  // Give any stray upstream traffic time to land before counting.
  await sleep(200)
  t.equal(upstream.complete(), 0, 'no smuggled or malformed request was delivered whole')
  t.ok(upstream.hits() <= 1, 'at most the invalid-chunk request started upstream (its headers were valid) and it was aborted')
  const ok = await fetchText(`${proxy.url}/fine`)
  t.equal(ok.status, 200, 'the listener still serves')
  const refused = sumOf(await scrape(proxy), 'faultline_edge_rejections_total', { reason: 'bad_request' })
  t.ok(refused >= Object.keys(shapes).length, `every refusal is counted as bad_request (${refused})`)
})

t.test('URL length: 414 past listen.maxUrlLength, served below it', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, { listen: { maxUrlLength: 2_048 }, routes: [route('a', '/', upstream.url)] })
  const long = await rawExchange(proxy.faultline.proxyPort, `GET /${'a'.repeat(2_100)} HTTP/1.1\r\nHost: x\r\n\r\n`, 3_000)
  t.equal(statusOf(long), 414)
  t.match(long, /uri_too_long/)
  t.equal((await fetchText(`${proxy.url}/${'a'.repeat(2_000)}`)).status, 200)
  t.equal(upstream.hits(), 1, 'the long one was never forwarded')
  t.equal(sumOf(await scrape(proxy), 'faultline_edge_rejections_total', { reason: 'uri_too_long' }), 1, 'counted')
})

t.test('header size and count: 431', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, { listen: { maxHeaderBytes: 4_096, maxHeaders: 20 }, routes: [route('a', '/', upstream.url)] })
  const port = proxy.faultline.proxyPort
  const big = await rawExchange(port, `GET /a HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(5_000)}\r\n\r\n`, 3_000)
  t.equal(statusOf(big), 431, 'too many header bytes')
  const many = Array.from({ length: 21 }, (_, i) => `X-H${i}: v\r\n`).join('')
  const counted = await rawExchange(port, `GET /a HTTP/1.1\r\nHost: x\r\n${many}\r\n`, 3_000)
  // Ours on Node 20 (too_many_headers); Node 24's parser may refuse it first as an overflow.
  t.equal(statusOf(counted), 431, 'too many header fields')
  const fine = Array.from({ length: 18 }, (_, i) => `X-H${i}: v\r\n`).join('')
  const ok = await rawExchange(port, `GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${fine}\r\n`, 3_000)
  t.equal(statusOf(ok), 200, '20 fields including Host and Connection pass')
  t.equal(upstream.hits(), 1)
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_edge_rejections_total', { reason: 'header_too_large' }) + sumOf(m, 'faultline_edge_rejections_total', { reason: 'too_many_headers' }), 2, 'both 431s counted')
})

t.test('request body limit per route: 413 up front with Content-Length, while streaming without', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, {
    routes: [
      route('small', '/small', upstream.url, { limits: { maxRequestBodyBytes: 1_000 } }),
      route('big', '/big', upstream.url),
      // Header triggers put the route on the client-fault path: the limit must hold there too.
      route('trig', '/trig', upstream.url, { limits: { maxRequestBodyBytes: 1_000 }, chaos: { enabled: true, allowHeaderTriggers: true } })
    ]
  })
  const port = proxy.faultline.proxyPort
  const declared = await rawExchange(port, `POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n${'x'.repeat(5_000)}`, 3_000)
  t.equal(statusOf(declared), 413)
  t.match(declared, /request_body_too_large/)
  t.match(declared.toLowerCase(), /connection: close/)
  t.equal(upstream.hits(), 0, 'a declared oversize body is refused before anything is forwarded')

  const chunk = (s: string): string => `${s.length.toString(16)}\r\n${s}\r\n`
  const chunked = await rawExchange(port, `POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk('y'.repeat(600))}${chunk('y'.repeat(600))}0\r\n\r\n`, 3_000)
  t.equal(statusOf(chunked), 413, 'a chunked body is cut when it passes the limit')
  await sleep(100)
  t.equal(upstream.complete(), 0, 'the upstream never got it whole')

  const viaClientSeam = await rawExchange(port, `POST /trig HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunk('y'.repeat(600))}${chunk('y'.repeat(600))}0\r\n\r\n`, 3_000)
  t.equal(statusOf(viaClientSeam), 413, 'on a route with client-side faults too')
  const under = await fetchText(`${proxy.url}/small`, { method: 'POST', body: 'z'.repeat(900) })
  t.equal(under.body, 'got 900')
  const underChunked = await rawExchange(port, `POST /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n${chunk('y'.repeat(500))}${chunk('y'.repeat(400))}0\r\n\r\n`, 3_000)
  t.equal(statusOf(underChunked), 200)
  t.match(underChunked, /got 900/)
  const other = await fetchText(`${proxy.url}/big`, { method: 'POST', body: 'w'.repeat(50_000) })
  t.equal(other.body, 'got 50000', 'the limit is per route')
  t.equal(sumOf(await scrape(proxy), 'faultline_edge_rejections_total', { reason: 'body_too_large' }), 3, 'the three 413s counted')
})

t.test('slowloris: trickled headers and bodies are cut by the timeouts, others are served meanwhile', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, { listen: { headersTimeoutMs: 500, requestTimeoutMs: 1_000 }, routes: [route('a', '/', upstream.url)] })
  const port = proxy.faultline.proxyPort
  const headers = openSocket(port)
  const body = openSocket(port)
  body.socket.write('POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n')
  let stop = false
  const trickle = (async () => {
    headers.socket.write('GET /a HTTP/1.1\r\n')
    for (let i = 0; !stop && i < 100; i++) {
      await sleep(100)
      if (!headers.socket.destroyed) headers.socket.write(`X-Slow-${i}: 1\r\n`)
      if (!body.socket.destroyed) body.socket.write('b')
    }
  })()
  // Meanwhile ordinary requests are answered at once.
  let worst = 0
  for (let i = 0; i < 10; i++) {
    const res = await fetchText(`${proxy.url}/ok`)
    t.equal(res.status, 200)
    worst = Math.max(worst, res.ms)
    await sleep(50)
  }
  const headerMs = await headers.closed
  const bodyMs = await body.closed
  stop = true
  await trickle
  t.ok(worst < 1_000, `ordinary requests stay fast while slow clients hang on (worst ${Math.round(worst)} ms)`)
  t.ok(headerMs < 3_000, `the header trickler is cut (${Math.round(headerMs)} ms)`)
  t.equal(statusOf(headers.received()), 408, 'with a 408')
  t.ok(bodyMs < 4_000, `the body trickler is cut (${Math.round(bodyMs)} ms)`)
  t.equal(upstream.complete(), 10, 'only the ordinary requests completed upstream')
  t.ok(sumOf(await scrape(proxy), 'faultline_edge_rejections_total', { reason: 'request_timeout' }) >= 1, 'the cut-offs are counted')
})

t.test('keep-alive: an idle client connection is closed after listen.keepAliveTimeoutMs', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, { listen: { keepAliveTimeoutMs: 300 }, routes: [route('a', '/', upstream.url)] })
  const conn = openSocket(proxy.faultline.proxyPort)
  conn.socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n')
  while (!conn.received().includes('got 0')) await sleep(10)
  const answeredAt = performance.now()
  await conn.closed
  const idle = performance.now() - answeredAt
  t.equal(statusOf(conn.received()), 200)
  t.ok(idle >= 200 && idle < 3_000, `closed after ${Math.round(idle)} ms idle`)
})

t.test('listen.maxConnections caps concurrent client connections', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, { listen: { maxConnections: 3 }, routes: [route('a', '/', upstream.url)] })
  const port = proxy.faultline.proxyPort
  const held = [openSocket(port), openSocket(port), openSocket(port)]
  await Promise.all(held.map(async (h) => { await new Promise((resolve) => h.socket.once('connect', resolve)) }))
  await sleep(100)
  const extra = openSocket(port)
  extra.socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n')
  const extraMs = await within(extra.closed, 2_000, -1)
  t.not(extraMs, -1, 'the fourth connection is closed')
  t.equal(extra.received(), '', 'without being served')
  held[0]!.socket.destroy()
  await held[0]!.closed
  await sleep(100)
  const res = await rawExchange(port, 'GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 3_000)
  t.equal(statusOf(res), 200, 'a freed slot serves again')
  for (const h of held) h.socket.destroy()
})
