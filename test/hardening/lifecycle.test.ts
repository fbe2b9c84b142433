/**
 * A client that leaves, or sends too much, at any stage of its request's
 * lifecycle ends that request only: the proxy keeps serving (this process
 * runs without the CLI's exception guard, so an uncaught error fails the
 * test), nothing counts against the upstream, and an oversized chunked
 * body is answered 413 wherever the request was waiting.
 */
import { connect, type Socket } from 'node:net'
import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, within, type Teardown } from '../helpers.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Opens a raw connection and sends a chunked POST's head and a first chunk, nothing more. */
async function startChunkedPost (port: number, path: string, firstChunk = 'hello'): Promise<{ socket: Socket, received: () => string, closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1')
  let received = ''
  socket.on('data', (c: Buffer) => { received += c.toString('latin1') })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  await new Promise<void>((resolve) => socket.once('connect', () => { resolve() }))
  socket.write(`POST ${path} HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n${firstChunk.length.toString(16)}\r\n${firstChunk}\r\n`)
  return { socket, received: () => received, closed }
}

/** Sends `bytes` more as one chunk (without ending the body). */
function sendChunk (socket: Socket, bytes: number): void {
  socket.write(`${bytes.toString(16)}\r\n${'x'.repeat(bytes)}\r\n`)
}

interface Stage {
  name: string
  /** Route extras putting a request into this stage. */
  extra: (upstreamUrl: string) => Record<string, unknown>
  /** Puts the upstream into the state the stage needs (e.g. its one connection busy); returns a release. */
  occupy?: (proxyUrl: string) => Promise<void>
}

/** An upstream whose /busy requests wait until released, so the pool or bulkhead stays full. */
async function holdingUpstream (t: Teardown): Promise<{ url: string, release: () => void, hits: () => number }> {
  const held: Array<() => void> = []
  const upstream = await startUpstream(t, (req, res) => {
    if (req.url?.includes('/busy') === true) { held.push(() => { res.end('late') }); return }
    req.resume()
    req.on('end', () => { res.end('ok') })
  })
  const release = (): void => { for (const done of held.splice(0)) done() }
  t.teardown(release)
  return { url: upstream.url, release, hits: upstream.hits }
}

const STAGES: Stage[] = [
  {
    name: 'queued in the upstream pool (all connections busy)',
    extra: (url) => ({ upstream: { url, connections: 1 } }),
    occupy: async (proxyUrl) => { void fetchText(`${proxyUrl}/a/busy`).catch(() => {}); await sleep(100) }
  },
  {
    name: 'held by an upstream-side latency fault',
    extra: () => ({ chaos: { enabled: true, faults: [{ kind: 'latency', ms: 3_000, match: { methods: ['POST'] } }] } })
  },
  {
    name: 'waiting in the bulkhead queue',
    extra: () => ({ resilience: { timeoutMs: 8_000, bulkhead: { maxConcurrent: 1, maxQueue: 4 } } }),
    occupy: async (proxyUrl) => { void fetchText(`${proxyUrl}/a/busy`).catch(() => {}); await sleep(100) }
  }
]

for (const stage of STAGES) {
  t.test(`a chunked upload ${stage.name}: a client that leaves or sends too much ends only its own request`, async (t) => {
    const upstream = await holdingUpstream(t)
    const policies = {
      timeoutMs: 8_000,
      retry: { attempts: 3, on: ['reset', 'timeout', 'connect', 'http_5xx'], nonIdempotent: true },
      breaker: { failureRate: 0.5, minRequests: 1, windowMs: 10_000, openMs: 10_000 },
      fallback: [{ static: { status: 200, body: 'canned' } }]
    }
    const extra = stage.extra(upstream.url) as { resilience?: Record<string, unknown> }
    const proxy = await startProxy(t, {
      routes: [
        route('a', '/a', upstream.url, { ...extra, resilience: { ...policies, ...extra.resilience }, limits: { maxRequestBodyBytes: 1_000 } }),
        route('b', '/b', upstream.url, { resilience: { breaker: policies.breaker } })
      ]
    })
    const port = Number(new URL(proxy.url).port)
    await stage.occupy?.(proxy.url)

    // 1. The client leaves mid-upload while the request waits.
    const gone = await startChunkedPost(port, '/a/upload')
    await sleep(100)
    gone.socket.destroy()
    await gone.closed

    // 2. A body passes the route's limit while the request waits: 413, at once, not 200 from the fallback.
    const big = await startChunkedPost(port, '/a/upload')
    await sleep(50)
    const t0 = performance.now()
    sendChunk(big.socket, 2_000)
    await within(big.closed, 5_000)
    t.match(big.received(), /^HTTP\/1\.1 413 /, 'an oversized chunked body gets 413')
    t.ok(performance.now() - t0 < 2_000, 'answered while still waiting, not after the wait')
    big.socket.destroy()

    await sleep(100)
    t.equal((await fetchText(`${proxy.url}/b/after`)).body, 'ok', 'the proxy still serves, and the other route on the upstream is not short-circuited')
    const health = await fetchText(`${proxy.adminUrl}/healthz`)
    t.equal(health.status, 200)
    const m = await scrape(proxy)
    t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'a' }), 0, 'client faults are not upstream errors')
    t.equal(sumOf(m, 'faultline_retries_total', { route: 'a' }), 0, 'nor retried')
    t.equal(sumOf(m, 'faultline_breaker_state', { route: 'a', state: 'closed' }), 1, 'nor breaker failures')
    t.equal(sumOf(m, 'faultline_fallbacks_total', { route: 'a' }), 0, 'nor answered from a fallback')
    upstream.release()
  })
}

t.test('chunked bodies over the limit, mid-upload to a reading upstream: 413, and the breaker for both routes stays closed', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    req.resume()
    req.on('end', () => { res.end('ok') })
  })
  const resilience = {
    retry: { attempts: 3, on: ['reset', 'timeout', 'connect', 'http_5xx'], nonIdempotent: true },
    breaker: { failureRate: 0.5, minRequests: 2, windowMs: 10_000, openMs: 10_000 },
    fallback: [{ static: { status: 200, body: 'canned' } }]
  }
  const proxy = await startProxy(t, {
    routes: [
      route('a', '/a', upstream.url, { resilience, limits: { maxRequestBodyBytes: 1_000 } }),
      route('b', '/b', upstream.url, { resilience })
    ]
  })
  const port = Number(new URL(proxy.url).port)
  for (let i = 0; i < 3; i++) {
    const post = await startChunkedPost(port, '/a/upload')
    await sleep(30)
    sendChunk(post.socket, 600)
    await sleep(30)
    sendChunk(post.socket, 600)
    await within(post.closed, 3_000)
    t.match(post.received(), /^HTTP\/1\.1 413 /, `upload ${i + 1}: 413`)
    post.socket.destroy()
  }
  const b = await fetchText(`${proxy.url}/b/x`)
  t.equal(b.body, 'ok', 'the other route is served by the upstream')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_upstream_errors_total', {}), 0)
  t.equal(sumOf(m, 'faultline_breaker_state', { state: 'closed' }), 2, 'both routes see a closed breaker')
  t.equal(sumOf(m, 'faultline_fallbacks_total', {}), 0)
  t.equal(sumOf(m, 'faultline_retries_total', {}), 0)
})
