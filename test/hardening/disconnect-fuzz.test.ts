/**
 * Random disconnect points across the request lifecycle (fast-check). This
 * process has no exception guard (the CLI's lives in src/cli.ts): tap fails
 * the test on any uncaught exception or unhandled rejection, so a stream
 * error nobody handles anywhere in the proxy shows up here. After every
 * run the proxy must still serve other requests.
 */
import { connect } from 'node:net'
import fc from 'fast-check'
import t from 'tap'
import { fetchText, route, startProxy, startUpstream, within } from '../helpers.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface Visit {
  /** Which route: each puts the request in a different stage. */
  path: string
  chunked: boolean
  /** Body chunks the client sends before it stops (some routes' limit is 2 KB). */
  chunks: number[]
  /** Where the client leaves: before the body ends, after the body, or after reading part of the answer. */
  leave: 'mid-body' | 'after-body' | 'mid-response'
  how: 'close' | 'reset'
  pauseMs: number
}

const visit = fc.record<Visit>({
  path: fc.constantFrom('/pool/x', '/delay/x', '/bulk/x', '/retry/x', '/big/x'),
  chunked: fc.boolean(),
  chunks: fc.array(fc.integer({ min: 1, max: 1_500 }), { minLength: 0, maxLength: 4 }),
  leave: fc.constantFrom('mid-body', 'after-body', 'mid-response'),
  how: fc.constantFrom('close', 'reset'),
  pauseMs: fc.integer({ min: 0, max: 40 })
})

async function play (port: number, v: Visit): Promise<void> {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise<void>((resolve) => socket.once('connect', () => { resolve() }))
  const total = v.chunks.reduce((a, b) => a + b, 0)
  // A declared length one byte longer than what is sent keeps a "mid-body" client mid-body.
  const declared = v.leave === 'mid-body' ? total + 1 : total
  socket.write(`POST ${v.path} HTTP/1.1\r\nHost: app\r\n${v.chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${declared}`}\r\n\r\n`)
  for (const size of v.chunks) {
    await sleep(v.pauseMs)
    socket.write(v.chunked ? `${size.toString(16)}\r\n${'x'.repeat(size)}\r\n` : 'x'.repeat(size))
  }
  if (v.leave !== 'mid-body' && v.chunked) socket.write('0\r\n\r\n')
  if (v.leave === 'mid-response') {
    await within(new Promise((resolve) => socket.once('data', resolve)), 300)
  } else {
    await sleep(v.pauseMs)
  }
  if (v.how === 'reset') socket.resetAndDestroy()
  else socket.destroy()
}

t.test('random client disconnects at every stage never crash the proxy or stall other routes', async (t) => {
  const held: Array<() => void> = []
  const big = Buffer.alloc(256 * 1024, 'y')
  const upstream = await startUpstream(t, (req, res) => {
    req.resume()
    req.on('error', () => {})
    res.on('error', () => {})
    req.on('end', () => {
      if (req.url?.startsWith('/big') === true) { res.end(big); return }
      if (req.url?.startsWith('/busy') === true) { held.push(() => { res.end('late') }); return }
      setTimeout(() => { res.end('ok') }, 20)
    })
  })
  const limits = { maxRequestBodyBytes: 2_048 }
  const proxy = await startProxy(t, {
    routes: [
      route('pool', '/pool', upstream.url, { upstream: { url: upstream.url, connections: 1 }, limits, resilience: { timeoutMs: 2_000 } }),
      route('delay', '/delay', upstream.url, { limits, chaos: { enabled: true, faults: [{ kind: 'latency', ms: 100, probability: 0.7 }] } }),
      route('bulk', '/bulk', upstream.url, { limits, resilience: { timeoutMs: 2_000, bulkhead: { maxConcurrent: 1, maxQueue: 8 } } }),
      route('retry', '/retry', upstream.url, {
        limits,
        resilience: {
          retry: { attempts: 2, on: ['reset', 'timeout', 'http_5xx'], nonIdempotent: true },
          breaker: { failureRate: 0.5, minRequests: 1, windowMs: 10_000, openMs: 10_000 },
          fallback: [{ static: { status: 200, body: 'canned' } }]
        }
      }),
      route('big', '/big', upstream.url, { limits, resilience: { bodyIdleTimeoutMs: 500 } }),
      route('busy', '/busy', upstream.url, { upstream: { url: upstream.url, connections: 1 } }),
      route('other', '/other', upstream.url)
    ]
  })
  // Registered after the proxy's own teardown, so it runs first (tap runs teardowns last-in first-out):
  // the held answer ends before the proxy drains, instead of holding the drain for drainMs.
  t.teardown(() => { for (const release of held.splice(0)) release() })
  const port = Number(new URL(proxy.url).port)
  // Keep the pool route's one connection busy, so its requests queue in undici.
  void fetchText(`${proxy.url}/busy/hold`, { timeoutMs: 20_000 }).catch(() => {})

  const started = performance.now()
  await fc.assert(fc.asyncProperty(fc.array(visit, { minLength: 1, maxLength: 3 }), async (visits) => {
    await Promise.all(visits.map(async (v) => { await play(port, v) }))
  }), { numRuns: 30, seed: Number(process.env.FUZZ_SEED ?? 11), interruptAfterTimeLimit: 8_000 })
  await sleep(300)
  const other = await fetchText(`${proxy.url}/other/x`)
  t.equal(other.body, 'ok', 'another route is served after every disconnect')
  t.equal((await fetchText(`${proxy.adminUrl}/healthz`)).status, 200)
  t.ok(performance.now() - started < 20_000, 'bounded in time')
})
