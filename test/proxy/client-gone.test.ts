/**
 * A client that leaves before its answer: the proxy stops working for
 * nobody. The attempt in flight is aborted (the upstream sees its request
 * cancelled), nothing is retried or answered from a fallback, nothing
 * counts against the upstream, and the request's bulkhead slot is free at
 * once for the next caller.
 */
import { request as httpRequest } from 'node:http'
import t from 'tap'
import { route, scrape, startProxy, startUpstream, sumOf, fetchText } from '../helpers.js'

/** Sends a GET and destroys the connection after `ms`, before any answer. */
function leaveAfter (url: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const req = httpRequest(url)
    req.on('error', () => { resolve() })
    req.on('response', () => { resolve() })
    req.end()
    setTimeout(() => { req.destroy(); resolve() }, ms)
  })
}

t.test('a client that leaves before the answer cancels the upstream attempt and frees its slot', async (t) => {
  let cancelled = 0
  const upstream = await startUpstream(t, (req, res) => {
    // /hold never answers on its own: only a cancelled request ends it.
    if (req.url?.startsWith('/g/hold') === true) {
      res.on('close', () => { if (!res.writableFinished) cancelled++ })
      return
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok')
  })
  const proxy = await startProxy(t, {
    routes: [route('g', '/g', upstream.url, {
      resilience: {
        timeoutMs: 10_000,
        attemptTimeoutMs: 5_000,
        retry: { attempts: 3, on: ['timeout', 'reset', 'connect', 'http_5xx'] },
        breaker: { failureRate: 0.5, minRequests: 1, windowMs: 10_000, openMs: 10_000 },
        bulkhead: { maxConcurrent: 1, maxQueue: 0 },
        fallback: [{ static: { status: 200, body: 'canned' } }]
      }
    })]
  })
  const started = performance.now()
  await leaveAfter(`${proxy.url}/g/hold`, 150)
  // The upstream sees its request cancelled promptly, not after the 5 s attempt timeout.
  for (let i = 0; i < 100 && cancelled === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(cancelled, 1, 'the upstream request was cancelled')
  t.ok(performance.now() - started < 2_500, 'cancelled well before the attempt timeout')
  t.equal(upstream.hits(), 1, 'no retry was made for a client that left')

  // The one bulkhead slot is free again: a new caller is served, not rejected.
  const next = await fetchText(`${proxy.url}/g/fine`)
  t.equal(next.status, 200)
  t.equal(next.body, 'ok', 'the upstream answered (not the static fallback)')

  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'g', outcome: 'cancelled' }), 1)
  t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'g' }), 0, 'a client leaving is not an upstream error')
  t.equal(sumOf(m, 'faultline_retries_total', { route: 'g' }), 0)
  t.equal(sumOf(m, 'faultline_breaker_state', { route: 'g', state: 'closed' }), 1, 'the breaker did not count it as a failure')
})

t.test('a client that leaves while queued in the upstream pool never reaches the upstream', async (t) => {
  const held: Array<() => void> = []
  const upstream = await startUpstream(t, (_req, res) => {
    held.push(() => { res.writeHead(200).end('late') })
  })
  t.teardown(() => { for (const release of held) release() })
  const proxy = await startProxy(t, {
    // One upstream connection: the second request waits in undici's queue.
    routes: [route('q', '/q', upstream.url, { upstream: { url: upstream.url, connections: 1 } })]
  })
  const first = fetchText(`${proxy.url}/q/one`)
  for (let i = 0; i < 100 && upstream.hits() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await leaveAfter(`${proxy.url}/q/two`, 100)
  await new Promise((resolve) => setTimeout(resolve, 100))
  held.shift()?.()
  t.equal((await first).body, 'late')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(upstream.hits(), 1, 'the abandoned request was dropped from the queue, never sent')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'q', outcome: 'cancelled' }), 1)
  t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'q' }), 0)
})
