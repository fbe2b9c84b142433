import t from 'tap'
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { fetchText, rawExchange, route, startProxy, startUpstream } from '../helpers.js'

const MB = 1024 * 1024

/** Deterministic bytes, produced in chunks so neither side holds the whole body. */
function * pattern (total: number, chunk = 64 * 1024): Generator<Buffer> {
  let sent = 0
  let n = 0
  while (sent < total) {
    const size = Math.min(chunk, total - sent)
    const buf = Buffer.allocUnsafe(size)
    for (let i = 0; i < size; i++) buf[i] = (n + i * 31) & 0xff
    n += 7
    sent += size
    yield buf
  }
}

function sha256Of (total: number): string {
  const hash = createHash('sha256')
  for (const b of pattern(total)) hash.update(b)
  return hash.digest('hex')
}

t.test('GET streams a 12 MB body byte-exact', async (t) => {
  const size = 12 * MB
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })
    Readable.from(pattern(size)).pipe(res)
  })
  const proxy = await startProxy(t, { routes: [route('blob', '/blob', upstream.url)] })
  const res = await request(`${proxy.url}/blob/file.bin`)
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-length'], String(size), 'Content-Length passes through')
  const hash = createHash('sha256')
  let received = 0
  for await (const chunk of res.body) { hash.update(chunk as Buffer); received += (chunk as Buffer).length }
  t.equal(received, size)
  t.equal(hash.digest('hex'), sha256Of(size))
})

t.test('POST streams a 10 MB chunked request body byte-exact, and the response back', async (t) => {
  const size = 10 * MB
  const upstream = await startUpstream(t, (req, res) => {
    const hash = createHash('sha256')
    let received = 0
    req.on('data', (c: Buffer) => { hash.update(c); received += c.length })
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ received, sha256: hash.digest('hex'), te: req.headers['transfer-encoding'] ?? null }))
    })
  })
  const proxy = await startProxy(t, { routes: [route('upload', '/upload', upstream.url)] })
  const res = await request(`${proxy.url}/upload`, { method: 'POST', body: Readable.from(pattern(size)), headers: { 'content-type': 'application/octet-stream' } })
  t.equal(res.statusCode, 200)
  const echoed = await res.body.json() as { received: number, sha256: string, te: string | null }
  t.equal(echoed.received, size)
  t.equal(echoed.sha256, sha256Of(size))
  t.equal(echoed.te, 'chunked', 'an unknown-length body is streamed chunked, not buffered to compute a length')
})

t.test('headers and query strings: end-to-end headers kept, hop-by-hop dropped, forwarding headers added', async (t) => {
  let seen: { url?: string, headers: Record<string, unknown> } = { headers: {} }
  const upstream = await startUpstream(t, (req, res) => {
    seen = { url: req.url, headers: req.headers }
    res.writeHead(200, [
      'content-type', 'text/plain',
      'x-upstream', 'yes',
      'set-cookie', 'a=1',
      'set-cookie', 'b=2',
      'connection', 'x-hop-response',
      'x-hop-response', 'secret',
      'keep-alive', 'timeout=5'
    ])
    res.end('ok')
  })
  const proxy = await startProxy(t, { routes: [route('h', '/h', upstream.url)] })
  const res = await fetchText(`${proxy.url}/h/a%20b?x=1&y=%2F&x=2`, {
    headers: {
      'x-custom': 'v1',
      te: 'trailers',
      'proxy-authorization': 'Basic c2VjcmV0',
      authorization: 'Bearer end-to-end',
      'x-request-id': 'req-123',
      'x-forwarded-for': '10.1.2.3',
      host: 'service.local:8080'
    }
  })
  t.equal(res.status, 200)
  t.equal(seen.url, '/h/a%20b?x=1&y=%2F&x=2', 'path and query reach the upstream untouched')
  t.equal(seen.headers['x-custom'], 'v1')
  t.equal(seen.headers.authorization, 'Bearer end-to-end', 'end-to-end credentials are the service\'s business')
  t.equal(seen.headers.te, 'trailers', 'TE is hop-by-hop, but this hop takes trailers too when the client does (issue 14)')
  t.equal(seen.headers['proxy-authorization'], undefined)
  t.equal(seen.headers.host, `127.0.0.1:${upstream.port}`, 'Host is the upstream\'s')
  t.equal(seen.headers['x-forwarded-host'], 'service.local:8080')
  t.equal(seen.headers['x-forwarded-proto'], 'http')
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'an untrusted client\'s own X-Forwarded-For is replaced (listen.trustedProxies)')
  t.equal(seen.headers['x-request-id'], 'req-123', 'a well-formed request id is propagated')
  t.equal(res.headers['x-request-id'], 'req-123')
  t.equal(res.headers['x-upstream'], 'yes')
  t.same(res.headers['set-cookie'], ['a=1', 'b=2'], 'repeated response headers survive')
  t.equal(res.headers['x-hop-response'], undefined, 'a response header named in Connection is dropped')
  t.not(res.headers['keep-alive'], 'timeout=5', 'the upstream\'s keep-alive parameters are not relayed')
})

t.test('a request header named in Connection is hop-by-hop and not forwarded', async (t) => {
  let seen: Record<string, unknown> = {}
  const upstream = await startUpstream(t, (req, res) => { seen = req.headers; res.end('ok') })
  const proxy = await startProxy(t, { routes: [route('h', '/h', upstream.url)] })
  const reply = await rawExchange(proxy.faultline.proxyPort,
    'GET /h HTTP/1.1\r\nHost: x\r\nConnection: close, X-Hop-Request\r\nX-Hop-Request: secret\r\nX-Kept: yes\r\nKeep-Alive: timeout=9\r\n\r\n')
  t.match(reply, /^HTTP\/1\.1 200 /)
  t.equal(seen['x-kept'], 'yes')
  t.equal(seen['x-hop-request'], undefined)
  t.not(seen['keep-alive'], 'timeout=9')
})

t.test('x-request-id is generated when absent or malformed', async (t) => {
  const ids: string[] = []
  const upstream = await startUpstream(t, (req, res) => { ids.push(String(req.headers['x-request-id'])); res.end() })
  const proxy = await startProxy(t, { routes: [route('r', '/', upstream.url)] })
  const a = await fetchText(`${proxy.url}/`)
  const b = await fetchText(`${proxy.url}/`, { headers: { 'x-request-id': 'bad id with spaces {}' } })
  t.match(ids[0], /^[0-9a-f-]{36}$/)
  t.match(ids[1], /^[0-9a-f-]{36}$/)
  t.not(ids[0], ids[1])
  t.equal(a.headers['x-request-id'], ids[0])
  t.equal(b.headers['x-request-id'], ids[1])
})

t.test('HEAD and 204/304 responses carry no body', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    if (req.url === '/r/empty') { res.writeHead(204); res.end(); return }
    if (req.headers['if-none-match'] === '"v1"') { res.writeHead(304, { etag: '"v1"' }); res.end(); return }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5', etag: '"v1"' })
    res.end(req.method === 'HEAD' ? undefined : 'hello')
  })
  const proxy = await startProxy(t, { routes: [route('r', '/r', upstream.url)] })
  const head = await fetchText(`${proxy.url}/r/x`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers['content-length'], '5')
  t.equal(head.body, '')
  const empty = await fetchText(`${proxy.url}/r/empty`)
  t.equal(empty.status, 204)
  t.equal(empty.body, '')
  const notModified = await fetchText(`${proxy.url}/r/x`, { headers: { 'if-none-match': '"v1"' } })
  t.equal(notModified.status, 304, 'the conditional request reached the upstream and its 304 came back')
  t.equal(notModified.headers.etag, '"v1"')
  t.equal(notModified.body, '')
  // On the wire: nothing after the head, and no chunked framing that would promise a body.
  const raw = await rawExchange(proxy.faultline.proxyPort, 'GET /r/x HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v1"\r\nConnection: close\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 304 /)
  t.notMatch(raw, /transfer-encoding/i)
  t.equal(raw.slice(raw.indexOf('\r\n\r\n') + 4), '', 'no body bytes after a 304')
})
