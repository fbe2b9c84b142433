/**
 * A request body sent in tiny pieces is forwarded in reasonably sized
 * writes: one byte per chunk (chunked) or a body written a little at a
 * time (Content-Length) must not become one upstream write per piece. A
 * flood of tiny chunks is refused with 400 before it costs the proxy a
 * body event per byte (src/proxy/limits.ts).
 */
import { connect } from 'node:net'
import t from 'tap'
import { request } from 'undici'
import { route, scrape, startProxy, startUpstream, sumOf, type Teardown } from '../helpers.js'

/** Sends `head`, then `pieces` as separate writes (a turn of the event loop between them); resolves with the whole answer. */
async function rawExchange (port: number, head: string, pieces: Iterable<string>): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  let answer = ''
  socket.on('data', (c: Buffer) => { answer += c.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  await new Promise<void>((resolve) => socket.once('connect', () => { resolve() }))
  socket.write(head)
  for (const piece of pieces) {
    if (socket.destroyed) break
    socket.write(piece)
    await new Promise((resolve) => setImmediate(resolve))
  }
  await closed
  return answer
}

async function countingUpstream (t: Teardown): Promise<{ url: string, writes: () => number }> {
  let writes = 0
  const upstream = await startUpstream(t, (req, res) => {
    let bytes = 0
    req.on('data', (c: Buffer) => { writes++; bytes += c.length })
    req.on('end', () => { res.end(`got ${bytes}`) })
  })
  return { url: upstream.url, writes: () => writes }
}

t.test('tiny request chunks are coalesced before they go upstream', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, { routes: [route('up', '/up', upstream.url)] })
  const oneByteChunks = '1\r\nx\r\n'.repeat(5_000)
  const answer = await rawExchange(Number(new URL(proxy.url).port), `POST /up/x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${oneByteChunks}0\r\n\r\n`, [])
  t.match(answer, /got 5000$/, 'the whole body arrived')
  t.ok(upstream.writes() < 100, `5,000 one-byte chunks reached the upstream in ${upstream.writes()} writes`)
})

t.test('a Content-Length body written a little at a time reaches the upstream in few writes', async (t) => {
  const upstream = await countingUpstream(t)
  const proxy = await startProxy(t, { routes: [route('up', '/up', upstream.url)] })
  const PIECES = 4_000
  const SIZE = 100
  // 100-byte writes with a turn between them: each arrives in its own socket read, none is a flood.
  const answer = await rawExchange(Number(new URL(proxy.url).port),
    `POST /up/x HTTP/1.1\r\nHost: app\r\nContent-Length: ${PIECES * SIZE}\r\nConnection: close\r\n\r\n`,
    Array.from({ length: PIECES }, () => 'y'.repeat(SIZE)))
  t.match(answer, new RegExp(`got ${PIECES * SIZE}$`), 'the whole body arrived')
  // Forwarded as read, this was one upstream write per proxy read or two: about a thousand and more.
  t.ok(upstream.writes() < PIECES / 10, `${PIECES} writes of ${SIZE} bytes reached the upstream in ${upstream.writes()} writes`)
})

t.test('a flood of one-byte chunks is refused with 400, counted, and never reaches the upstream whole', async (t) => {
  const upstream = await countingUpstream(t)
  let completed = 0
  const seen = await startUpstream(t, (req, res) => { req.resume(); req.on('end', () => { completed++; res.end('ok') }) })
  const proxy = await startProxy(t, { routes: [route('up', '/up', upstream.url), route('other', '/other', seen.url)] })
  const flood = '1\r\nx\r\n'.repeat(60_000)
  const answer = await rawExchange(Number(new URL(proxy.url).port), `POST /up/x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${flood}0\r\n\r\n`, [])
  t.match(answer, /^HTTP\/1\.1 400 /, 'refused with 400')
  t.match(answer, /"error":"request_body_fragmented"/, 'saying why')
  t.notMatch(answer, /got 60000/, 'the upstream never got the whole body')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_edge_rejections_total', { reason: 'body_fragmented' }), 1, 'counted as an edge rejection')
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'up' }), 0, 'never against the upstream')
  const res = await request(`${proxy.url}/other/x`, { method: 'POST', body: 'fine' })
  t.equal(res.statusCode, 200, 'another request is served')
  await res.body.dump()
  t.equal(completed, 1)
})
