/**
 * Framing passes through: 304, 204 and HEAD answers keep the upstream's
 * headers and carry no body whatever Content-Length says; a body on a 204
 * is dropped, not fatal; trailers reach a client that sent TE: trailers;
 * 103 Early Hints are passed on; Expect: 100-continue over the route's
 * limit is refused before 100 Continue. The upstreams here are raw
 * sockets, so they can send what node:http would not.
 */
import { createServer as createNetServer, connect, type Socket } from 'node:net'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, type Teardown } from '../helpers.js'

/** A keep-alive upstream speaking raw HTTP/1.1: `answer(path, method)` returns the bytes for each request (GET/HEAD, no bodies). */
async function rawUpstream (t: Teardown, answer: (path: string, method: string) => string): Promise<{ url: string, seen: string[] }> {
  const seen: string[] = []
  const sockets = new Set<Socket>()
  const server = createNetServer((socket) => {
    sockets.add(socket)
    let pending = ''
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1')
      let end: number
      while ((end = pending.indexOf('\r\n\r\n')) !== -1) {
        const head = pending.slice(0, end)
        pending = pending.slice(end + 4)
        const [method = '', path = ''] = head.split(' ')
        seen.push(head)
        socket.write(answer(path, method))
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen }
}

function get (url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ res: IncomingMessage, body: string, info: Array<{ statusCode: number, headers: Record<string, unknown> }> }> {
  return new Promise((resolve, reject) => {
    const info: Array<{ statusCode: number, headers: Record<string, unknown> }> = []
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('latin1')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve({ res, body, info }) })
    })
    req.on('information', (i) => { info.push({ statusCode: i.statusCode, headers: i.headers }) })
    req.on('error', reject)
    req.setTimeout(5_000, () => { req.destroy(new Error('timed out')) })
    req.end()
  })
}

t.test('304 and HEAD keep their Content-Length, 204 drops a body, and the exchange is not a failure', async (t) => {
  const upstream = await rawUpstream(t, (path, method) => {
    if (path.endsWith('/304')) return 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 5\r\nCache-Control: max-age=60\r\n\r\n'
    if (path.endsWith('/204')) return 'HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-Kind: empty\r\n\r\nhello'
    if (method === 'HEAD') return 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\n\r\n'
    return 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
  })
  const proxy = await startProxy(t, {
    routes: [
      route('f', '/f', upstream.url),
      route('h', '/h', upstream.url, { chaos: { enabled: true, faults: [{ kind: 'truncate', bytes: 1, clean: true }] } })
    ]
  })
  const notModified = await get(`${proxy.url}/f/304`, { 'if-none-match': '"v1"' })
  t.equal(notModified.res.statusCode, 304)
  t.equal(notModified.res.headers.etag, '"v1"')
  t.equal(notModified.res.headers['content-length'], '5', 'the representation length is passed on')
  t.equal(notModified.res.headers['cache-control'], 'max-age=60')
  t.equal(notModified.body, '')

  const noContent = await get(`${proxy.url}/f/204`)
  t.equal(noContent.res.statusCode, 204)
  t.equal(noContent.res.headers['x-kind'], 'empty')
  t.equal(noContent.res.headers['content-length'], undefined, 'a 204 carries no Content-Length (RFC 9110 §8.6)')
  t.equal(noContent.body, '')

  const head = await get(`${proxy.url}/f/thing`, {}, 'HEAD')
  t.equal(head.res.statusCode, 200)
  t.equal(head.res.headers['content-length'], '1234')
  const faulted = await get(`${proxy.url}/h/thing`, {}, 'HEAD')
  t.equal(faulted.res.statusCode, 200)
  t.equal(faulted.res.headers['content-length'], '1234', 'a body fault leaves a HEAD answer its Content-Length')

  const after = await fetchText(`${proxy.url}/f/plain`)
  t.equal(after.body, 'ok', 'the route still works')
  const lines = proxy.logs.lines.filter((l) => l.msg === 'request' && l.route === 'f')
  t.same(lines.map((l) => [l.status, l.outcome, l.errorClass]), [[304, 'ok', undefined], [204, 'ok', undefined], [200, 'ok', undefined], [200, 'ok', undefined]],
    'nothing was logged as a failure')
  t.equal(sumOf(await scrape(proxy), 'faultline_upstream_errors_total', { route: 'f' }), 0, 'nor counted as an upstream error')
})

t.test('trailers reach a client that sent TE: trailers, and only that client', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' })
    res.write('body')
    res.addTrailers({ 'x-checksum': req.headers.te === 'trailers' ? 'asked' : 'unasked' })
    res.end()
  })
  const proxy = await startProxy(t, { routes: [route('t', '/t', upstream.url)] })
  const asked = await get(`${proxy.url}/t/x`, { te: 'trailers' })
  t.equal(asked.body, 'body')
  t.equal(asked.res.headers.trailer, 'x-checksum')
  t.same(asked.res.trailers, { 'x-checksum': 'asked' }, 'forwarded, and the upstream was told the client takes them')
  const plain = await get(`${proxy.url}/t/x`)
  t.equal(plain.body, 'body')
  t.same(plain.res.trailers, {}, 'no trailers for a client that did not ask')
})

t.test('103 Early Hints from the upstream are passed on before the answer', async (t) => {
  const upstream = await rawUpstream(t, () =>
    'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n' +
    'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
  const proxy = await startProxy(t, { routes: [route('e', '/e', upstream.url)] })
  const answer = await get(`${proxy.url}/e/page`)
  t.equal(answer.res.statusCode, 200)
  t.equal(answer.body, 'ok')
  t.equal(answer.info.length, 1, 'one interim answer')
  t.equal(answer.info[0]?.statusCode, 103)
  t.equal(answer.info[0]?.headers.link, '</style.css>; rel=preload; as=style')
})

/** Sends request headers only, returns what arrives within `ms`, then (optionally) the rest after sending `body`. */
async function expectExchange (port: number, head: string, body?: string): Promise<{ first: string, rest: string }> {
  const socket = connect(port, '127.0.0.1')
  let received = ''
  socket.on('data', (c: Buffer) => { received += c.toString('latin1') })
  socket.on('error', () => {})
  socket.write(head)
  await new Promise((resolve) => setTimeout(resolve, 400))
  const first = received
  if (body !== undefined && !socket.destroyed) socket.write(body)
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 3_000)
    socket.on('close', () => { clearTimeout(timer); resolve() })
  })
  socket.destroy()
  return { first, rest: received.slice(first.length) }
}

t.test('Expect: 100-continue over the route limit gets 413 before any 100 Continue', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    let n = 0
    req.on('data', (c: Buffer) => { n += c.length })
    req.on('end', () => { res.end(`got ${n}`) })
  })
  const proxy = await startProxy(t, { routes: [route('u', '/u', upstream.url, { limits: { maxRequestBodyBytes: 100 } })] })
  const port = Number(new URL(proxy.url).port)
  const big = await expectExchange(port, 'POST /u/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n')
  t.match(big.first, /^HTTP\/1\.1 413 /, 'the first thing the client hears is 413')
  t.notMatch(big.first, /100 Continue/)
  t.equal(upstream.hits(), 0)

  const small = await expectExchange(port, 'POST /u/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n', 'hello')
  t.match(small.first, /^HTTP\/1\.1 100 Continue\r\n\r\n/, 'within the limit: told to go on')
  t.match(small.rest, /^HTTP\/1\.1 200 [\s\S]*got 5$/)
})
