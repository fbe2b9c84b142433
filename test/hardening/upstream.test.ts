/**
 * Upstreams that misbehave at the byte level, from a raw TCP server:
 * malformed HTTP and oversized headers are 502 invalid_response; one that
 * never answers, or answers and never finishes, is bounded by the route's
 * timeouts. (An upstream dying mid-body: test/proxy/routing.test.ts.)
 */
import t from 'tap'
import { createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { fetchText, route, scrape, startProxy, sumOf } from '../helpers.js'

async function rawUpstream (t: { teardown: (fn: () => unknown) => void }, onRequest: (socket: Socket, path: string) => void): Promise<string> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let head = ''
    socket.on('data', (c: Buffer) => {
      head += c.toString('latin1')
      if (head.includes('\r\n\r\n')) { onRequest(socket, head.split(' ')[1] ?? '/'); head = '' }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { for (const s of sockets) s.destroy(); await new Promise((resolve) => server.close(resolve)) })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('malformed HTTP, oversized headers, silence and endless bodies from upstream', async (t) => {
  const url = await rawUpstream(t, (socket, path) => {
    if (path === '/u/garbage') socket.end('HTTP/1.1 2OO Okay\r\nwhat is this\r\n\r\n')
    else if (path === '/u/bigheaders') socket.write(`HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(70_000)}\r\nContent-Length: 2\r\n\r\nok`)
    else if (path === '/u/silent') { /* never answers, never closes */ } else if (path === '/u/endless') socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
  })
  const proxy = await startProxy(t, { routes: [route('u', '/u', url, { resilience: { timeoutMs: 800, bodyIdleTimeoutMs: 800 } })] })
  const garbage = await fetchText(`${proxy.url}/u/garbage`)
  t.equal(garbage.status, 502)
  t.match(garbage.body, /"class":"invalid_response"/)
  const big = await fetchText(`${proxy.url}/u/bigheaders`)
  t.equal(big.status, 502)
  t.match(big.body, /"class":"invalid_response"/)
  const silent = await fetchText(`${proxy.url}/u/silent`)
  t.equal(silent.status, 504, 'an upstream that never answers is bounded by timeoutMs')
  t.ok(silent.ms < 3_000, `in ${Math.round(silent.ms)} ms`)
  const t0 = performance.now()
  const endless = await fetchText(`${proxy.url}/u/endless`).then((r) => `answered ${r.status}`, (err: Error) => `cut: ${err.message}`)
  t.match(endless, /^cut/, 'a body that never ends is cut, the client is not left hanging')
  t.ok(performance.now() - t0 < 4_000, 'within the body idle timeout')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'u', error_class: 'invalid_response' }), 2)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'u', error_class: 'timeout' }), 2)
})

t.test('a client that leaves before the upstream answers: nothing thrown, the proxy serves on', async (t) => {
  const { startUpstream } = await import('../helpers.js')
  const { connect } = await import('node:net')
  const upstream = await startUpstream(t, (_req, res) => { setTimeout(() => res.end('late'), 300) })
  const proxy = await startProxy(t, { routes: [route('late', '/', upstream.url)] })
  for (let i = 0; i < 5; i++) {
    const socket = connect(proxy.faultline.proxyPort, '127.0.0.1')
    socket.on('error', () => {})
    socket.write('GET /gone HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((resolve) => setTimeout(resolve, 100))
    socket.destroy()
  }
  // The upstream answers after the clients left; on Node 24 writing to them threw.
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal((await fetchText(`${proxy.url}/ok`)).body, 'late')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'late', outcome: 'cancelled' }), 5, 'counted as cancelled')
})
