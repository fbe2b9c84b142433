/**
 * Deadlines hold everywhere: a client that does not read its response is
 * cut after bodyIdleTimeoutMs (our own timer; undici's stops while the body
 * is paused) and its upstream connection freed, and a request queued in
 * the pool behind such clients is answered 504 at its timeoutMs.
 */
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, within } from '../helpers.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** An upstream whose /huge paths answer 16 MB in 64 KB writes, with backpressure. */
async function bigUpstream (t: Parameters<typeof startUpstream>[0]): Promise<Awaited<ReturnType<typeof startUpstream>>> {
  const chunk = Buffer.alloc(64 * 1024, 'x')
  return await startUpstream(t, (req, res) => {
    if (req.url?.includes('/huge') !== true) { res.end('ok'); return }
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    let left = 256
    const more = (): void => {
      while (left > 0) {
        left--
        if (!res.write(chunk)) { res.once('drain', more); return }
      }
      res.end()
    }
    more()
  })
}

/** A raw client that sends a GET and never reads the answer. */
async function nonReader (port: number, path: string): Promise<{ socket: Socket, closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  await new Promise<void>((resolve) => socket.once('connect', () => { resolve() }))
  socket.pause()
  socket.write(`GET ${path} HTTP/1.1\r\nHost: app\r\n\r\n`)
  return { socket, closed }
}

t.test('a client that never reads is cut after bodyIdleTimeoutMs and its upstream connection freed', async (t) => {
  const upstream = await bigUpstream(t)
  const proxy = await startProxy(t, {
    routes: [route('big', '/big', upstream.url, { upstream: { url: upstream.url, connections: 1 }, resilience: { bodyIdleTimeoutMs: 400 } })]
  })
  const port = Number(new URL(proxy.url).port)
  const reader = await nonReader(port, '/big/huge')
  t.teardown(() => { reader.socket.destroy() })
  await sleep(1_200)
  // The one upstream connection is free again.
  const next = await fetchText(`${proxy.url}/big/small`, { timeoutMs: 3_000 })
  t.ok(next.body === 'ok', 'the next request gets the freed connection')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_edge_rejections_total', { reason: 'slow_reader' }), 1, 'counted as a slow reader')
  t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'big' }), 0, 'not an upstream error')
  // A paused socket sees its end only once it reads: what it gets is a cut response, then the close.
  reader.socket.resume()
  await within(reader.closed, 3_000)
  t.ok(reader.socket.destroyed, 'the non-reading client was cut')
})

t.test('a request queued behind clients that never read is answered 504 at its timeoutMs', async (t) => {
  const upstream = await bigUpstream(t)
  const proxy = await startProxy(t, {
    routes: [
      route('big', '/big', upstream.url, { upstream: { url: upstream.url, connections: 4 }, resilience: { bodyIdleTimeoutMs: 20_000 } }),
      route('other', '/other', upstream.url, { upstream: { url: upstream.url, connections: 4 }, resilience: { timeoutMs: 1_000 } })
    ]
  })
  const port = Number(new URL(proxy.url).port)
  const readers = await Promise.all([0, 1, 2, 3].map(async (i) => await nonReader(port, `/big/huge${i}`)))
  t.teardown(() => { for (const r of readers) r.socket.destroy() })
  await sleep(300)
  const res = await fetchText(`${proxy.url}/other/x`, { timeoutMs: 8_000 })
  t.equal(res.status, 504, 'answered 504, not left waiting')
  t.ok(res.ms < 4_000, `answered at its deadline (${Math.round(res.ms)} ms)`)
})
