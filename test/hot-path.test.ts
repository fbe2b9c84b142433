/**
 * The semantics of the forwarding hot path, pinned down so it can be made
 * faster without changing what it does: header hygiene both ways,
 * X-Forwarded-*, X-Request-Id, byte-exact streaming, failures mid-body,
 * clients that leave, the attempt deadline, and exactly one log line and
 * one metrics update per request.
 */
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, type StartedProxy } from './helpers.js'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A request through node:http, which lets a test send hop-by-hop headers. */
async function raw (url: string, headers: Record<string, string>, options: { method?: string, body?: Buffer } = {}): Promise<{ res: IncomingMessage, body: Buffer }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ res, body: Buffer.concat(chunks) }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

async function requestLines (proxy: StartedProxy, count: number): Promise<Array<Record<string, unknown>>> {
  for (let i = 0; i < 100; i++) {
    const lines = proxy.logs.lines.filter((l) => l.msg === 'request')
    if (lines.length >= count) return lines
    await sleep(20)
  }
  return proxy.logs.lines.filter((l) => l.msg === 'request')
}

t.test('request headers: hop-by-hop and Connection-listed fields dropped, X-Forwarded-* and X-Request-Id set', async (t) => {
  let seen: IncomingHttpHeaders = {}
  const upstream = await startUpstream(t, (req, res) => { seen = req.headers; res.end('ok') })
  // The client is a trusted proxy here: its X-Forwarded-* are kept and appended to.
  const proxy = await startProxy(t, { listen: { trustedProxies: ['127.0.0.1'] }, routes: [route('h', '/h', upstream.url)] })
  const { res } = await raw(`${proxy.url}/h`, {
    Host: 'shop.example',
    Connection: 'keep-alive, X-Drop-Me',
    'X-Drop-Me': '1',
    'Keep-Alive': 'timeout=5',
    TE: 'trailers',
    'Proxy-Authorization': 'Basic eDp5',
    'X-Faultline-Fault': 'abort=503',
    'X-Keep': 'yes',
    'X-Forwarded-For': '10.0.0.1',
    'X-Forwarded-Proto': 'https',
    'X-Request-Id': 'abc-123'
  })
  t.equal(res.statusCode, 200)
  for (const name of ['x-drop-me', 'keep-alive', 'proxy-authorization', 'x-faultline-fault']) t.equal(seen[name], undefined, `${name} not forwarded`)
  t.equal(seen.te, 'trailers', 'TE: trailers is said to the upstream too; any other TE is dropped')
  t.equal(seen['x-keep'], 'yes')
  t.equal(seen.host, `127.0.0.1:${upstream.port}`, 'host is the upstream origin')
  t.equal(seen['x-forwarded-for'], '10.0.0.1, 127.0.0.1')
  t.equal(seen['x-forwarded-proto'], 'https')
  t.equal(seen['x-forwarded-host'], 'shop.example')
  t.equal(seen['x-request-id'], 'abc-123')
  t.equal(res.headers['x-request-id'], 'abc-123', 'the client sees the same id')
  const [line] = await requestLines(proxy, 1)
  t.equal(line?.requestId, 'abc-123')
})

t.test('an unsafe or missing x-request-id is replaced by a generated one, the same everywhere', async (t) => {
  const ids: string[] = []
  const upstream = await startUpstream(t, (req, res) => { ids.push(String(req.headers['x-request-id'])); res.end('ok') })
  const proxy = await startProxy(t, { routes: [route('h', '/h', upstream.url)] })
  const a = await raw(`${proxy.url}/h`, { 'X-Request-Id': 'has spaces and {braces}' })
  const b = await raw(`${proxy.url}/h`, {})
  t.match(ids[0], UUID)
  t.match(ids[1], UUID)
  t.not(ids[0], ids[1])
  t.equal(a.res.headers['x-request-id'], ids[0])
  t.equal(b.res.headers['x-request-id'], ids[1])
  const lines = await requestLines(proxy, 2)
  t.same(lines.map((l) => l.requestId), ids)
})

t.test('response headers: hop-by-hop and Connection-listed fields never reach the client', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => {
    res.setHeader('Connection', 'keep-alive, X-Secret')
    res.setHeader('X-Secret', 'internal')
    res.setHeader('Keep-Alive', 'timeout=5')
    res.setHeader('Proxy-Authenticate', 'Basic')
    res.setHeader('X-End-To-End', 'kept')
    res.setHeader('Set-Cookie', ['a=1', 'b=2'])
    res.end('ok')
  })
  const proxy = await startProxy(t, { routes: [route('h', '/h', upstream.url)] })
  const { res, body } = await raw(`${proxy.url}/h`, {})
  t.equal(body.toString(), 'ok')
  t.equal(res.headers['x-secret'], undefined)
  t.equal(res.headers['proxy-authenticate'], undefined)
  t.not(res.headers['keep-alive'], 'timeout=5', "the upstream's keep-alive is not passed on")
  t.equal(res.headers['x-end-to-end'], 'kept')
  t.same(res.headers['set-cookie'], ['a=1', 'b=2'], 'repeated headers survive')
})

t.test('large bodies stream byte-exact both ways', async (t) => {
  const reply = randomBytes(12 * 1024 * 1024)
  let received = ''
  const upstream = await startUpstream(t, (req, res) => {
    const hash = createHash('sha256')
    req.on('data', (c: Buffer) => hash.update(c))
    req.on('end', () => {
      received = hash.digest('hex')
      res.setHeader('content-type', 'application/octet-stream')
      // Chunked, in pieces, so nothing is one convenient buffer.
      let at = 0
      const more = (): void => {
        while (at < reply.length) {
          const piece = reply.subarray(at, at + 256 * 1024)
          at += piece.length
          if (!res.write(piece)) { res.once('drain', more); return }
        }
        res.end()
      }
      more()
    })
  })
  // 12 MiB is over the default 10 MiB request body limit: lift it for this route.
  const proxy = await startProxy(t, { routes: [route('big', '/big', upstream.url, { limits: { maxRequestBodyBytes: 0 } })] })
  const sent = randomBytes(11 * 1024 * 1024)
  const { res, body } = await raw(`${proxy.url}/big/upload?x=1&y=2`, { 'content-type': 'application/octet-stream' }, { method: 'POST', body: sent })
  t.equal(res.statusCode, 200)
  t.equal(received, createHash('sha256').update(sent).digest('hex'), 'request body intact')
  t.equal(body.length, reply.length)
  t.ok(body.equals(reply), 'response body intact')
})

t.test('a slow client holds the upstream back: the body is streamed, not buffered', async (t) => {
  let written = 0
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    const piece = Buffer.alloc(64 * 1024, 'z')
    const more = (): void => {
      while (written < 256 * 1024 * 1024) {
        written += piece.length
        if (!res.write(piece)) { res.once('drain', more); return }
      }
      res.end()
    }
    more()
  })
  // 12 MiB is over the default 10 MiB request body limit: lift it for this route.
  const proxy = await startProxy(t, { routes: [route('big', '/big', upstream.url, { limits: { maxRequestBodyBytes: 0 } })] })
  const req = httpRequest(`${proxy.url}/big`, { agent: false })
  const res = await new Promise<IncomingMessage>((resolve) => { req.on('response', resolve).end() })
  res.pause()
  await sleep(500)
  t.ok(written < 32 * 1024 * 1024, `the upstream got ${Math.round(written / 1024 / 1024)} MB ahead of a client that read nothing`)
  let received = 0
  res.on('data', (c: Buffer) => { received += c.length; if (received > 8 * 1024 * 1024) req.destroy() })
  res.resume()
  await new Promise((resolve) => res.on('close', resolve))
  t.ok(received > 8 * 1024 * 1024, 'and the stream flows again once the client reads')
})

t.test('an upstream that fails mid-body: the client response is cut, the failure is counted and logged', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => {
    // Chunked: no length was promised, so dying mid-way is a reset (with a
    // Content-Length it would be a truncated, invalid_response).
    res.writeHead(200)
    res.write(Buffer.alloc(1000, 'a'))
    setTimeout(() => { res.socket?.destroy() }, 30)
  })
  const proxy = await startProxy(t, { routes: [route('cut', '/cut', upstream.url)] })
  const outcome = await new Promise<string>((resolve) => {
    const req = httpRequest(`${proxy.url}/cut`, { agent: false }, (res) => {
      t.equal(res.statusCode, 200, 'the status line was already sent')
      res.on('data', () => {})
      res.on('end', () => { resolve('complete') })
      res.on('aborted', () => { resolve('aborted') })
      res.on('error', () => { resolve('aborted') })
    })
    req.on('error', () => { resolve('aborted') })
    req.end()
  })
  t.equal(outcome, 'aborted')
  const [line] = await requestLines(proxy, 1)
  t.equal(line?.outcome, 'failed')
  t.equal(line?.errorClass, 'reset')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'cut', error_class: 'reset' }), 1)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'cut', outcome: 'failed' }), 1)
})

t.test('a client that leaves mid-body cancels the upstream response', async (t) => {
  let upstreamClosedEarly: (value: boolean) => void = () => {}
  const closed = new Promise<boolean>((resolve) => { upstreamClosedEarly = resolve })
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    const timer = setInterval(() => res.write('x'.repeat(1024)), 10)
    res.on('close', () => { clearInterval(timer); upstreamClosedEarly(!res.writableFinished) })
  })
  const proxy = await startProxy(t, { routes: [route('slow', '/slow', upstream.url)] })
  const req = httpRequest(`${proxy.url}/slow`, { agent: false }, (res) => {
    res.once('data', () => { req.destroy() })
  })
  req.on('error', () => {})
  req.end()
  t.equal(await closed, true, 'the upstream response was abandoned, not read to the end')
  const [line] = await requestLines(proxy, 1)
  t.equal(line?.outcome, 'cancelled')
  t.equal(line?.status, 200)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'slow', outcome: 'cancelled' }), 1)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'slow' }), 0, 'a client leaving is not an upstream error')
})

t.test('the attempt deadline is precise: 250 ms means 250 ms', async (t) => {
  // Measured at the upstream, from the request's arrival to the proxy
  // giving up on it: the client's side would add the proxy's warm-up,
  // hundreds of ms on a loaded machine.
  let heldMs: number | undefined
  const upstream = await startUpstream(t, (req, res) => {
    if (req.url === '/slow/warm-up') { res.end('ok'); return }
    const arrived = performance.now()
    res.on('close', () => { heldMs = performance.now() - arrived })
    setTimeout(() => res.end('late'), 2_000).unref()
  })
  const proxy = await startProxy(t, { routes: [route('slow', '/slow', upstream.url, { resilience: { timeoutMs: 5_000, attemptTimeoutMs: 250 } })] })
  await fetchText(`${proxy.url}/slow/warm-up`)
  const res = await fetchText(`${proxy.url}/slow`)
  t.equal(res.status, 504)
  t.ok(res.ms >= 240, `answered after ${Math.round(res.ms)} ms, not before the deadline`)
  for (let i = 0; i < 100 && heldMs === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.ok(heldMs !== undefined && heldMs >= 200 && heldMs < 450, `the upstream's request was abandoned after ${Math.round(heldMs ?? -1)} ms (twice the deadline would be 500)`)
  t.equal(JSON.parse(res.body).class, 'timeout')
  t.match(res.headers['x-request-id'], UUID)
  const line = (await requestLines(proxy, 2))[1]
  t.equal(line?.errorClass, 'timeout')
  t.equal(line?.outcome, 'failed')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'slow', error_class: 'timeout' }), 1)
})

t.test('exactly one log line and one count per request, with the documented fields', async (t) => {
  const upstream = await startUpstream(t, (req, res) => { res.statusCode = req.url?.includes('fail') === true ? 503 : 200; res.end('x') })
  const proxy = await startProxy(t, { routes: [route('one', '/one', upstream.url)] })
  for (let i = 0; i < 4; i++) await fetchText(`${proxy.url}/one/${i}?secret=token`)
  await fetchText(`${proxy.url}/one/fail`, { method: 'POST', body: 'payload' })
  const lines = await requestLines(proxy, 5)
  await sleep(100)
  t.equal(proxy.logs.lines.filter((l) => l.msg === 'request').length, 5)
  t.match(lines[0], { route: 'one', method: 'GET', path: '/one/0', status: 200, outcome: 'ok', attempts: 1, requestId: UUID, durationMs: Number })
  t.notOk(JSON.stringify(lines).includes('secret=token'), 'query strings are not logged')
  t.match(lines[4], { method: 'POST', status: 503, outcome: 'failed', errorClass: 'http_5xx' })
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'one' }), 5)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'one', method: 'GET', status_class: '2xx', outcome: 'ok', upstream: `127.0.0.1:${upstream.port}` }), 4)
  t.equal(sumOf(samples, 'faultline_request_duration_seconds_count', { route: 'one' }), 5)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'one', error_class: 'http_5xx' }), 1)
})
