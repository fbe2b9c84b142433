/**
 * The attempt timeout and the route's deadline (docs/POLICIES.md,
 * "Timeouts"): which limit ran out is said in the 504, the last attempt
 * gets only the time left, and the attempt timeout bounds the wait for
 * headers, not a body that streams. The total timeout with retry is in
 * retry.test.ts.
 */
import t from 'tap'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

t.test('one attempt and no retry: cut at timeoutMs, and the 504 says the route\'s deadline ran out', async (t) => {
  const upstream = await startUpstream(t, () => {})
  const proxy = await startProxy(t, { routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 300 } })] })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 504)
  const body = JSON.parse(res.body)
  t.equal(body.class, 'timeout')
  t.match(body.message, /^no response within the route's timeoutMs \(the last attempt waited \d+ ms\)$/)
  t.ok(res.ms >= 290, `not before the deadline (${Math.round(res.ms)} ms)`)
})

t.test('an attemptTimeoutMs shorter than the deadline: the 504 names the attempt limit', async (t) => {
  const upstream = await startUpstream(t, () => {})
  const proxy = await startProxy(t, { routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 5000, attemptTimeoutMs: 200 } })] })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 504)
  t.equal(JSON.parse(res.body).message, 'the upstream did not send response headers within 200 ms')
  t.ok(res.ms < 2500, `cut at the attempt limit, not the deadline (${Math.round(res.ms)} ms)`)
})

t.test('the last attempt gets only the time left before the deadline, not a whole attemptTimeoutMs', async (t) => {
  // Measured at the upstream: how long each attempt stayed open before the proxy gave up on it.
  const lived: number[] = []
  const upstream = await startUpstream(t, (req) => {
    const since = performance.now()
    req.socket.once('close', () => { lived.push(performance.now() - since) })
  })
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 1600, attemptTimeoutMs: 1000, retry: { attempts: 2, on: ['timeout'], backoff: { baseMs: 10, maxMs: 10, jitter: 'none' } } } })]
  })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 504)
  t.match(JSON.parse(res.body).message, /timeoutMs \(1600 ms\) after 2 attempt/)
  for (let i = 0; i < 100 && lived.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(lived.length, 2, 'two attempts')
  t.ok(lived[0]! >= 500, `the first waited its attemptTimeoutMs (${Math.round(lived[0]!)} ms)`)
  // About 590 ms left for it; a whole attemptTimeoutMs would be 1000.
  t.ok(lived[1]! < 850, `the second only what was left of the 1600 ms (${Math.round(lived[1]!)} ms), not 1000`)
})

t.test('the attempt timeout bounds the wait for headers: a body streaming for longer arrives whole', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    let n = 0
    const tick = setInterval(() => {
      res.write(`part ${n} `)
      if (++n === 5) { clearInterval(tick); res.end('end') }
    }, 100)
    res.on('close', () => { clearInterval(tick) })
  })
  const proxy = await startProxy(t, { routes: [route('r', '/r', upstream.url, { resilience: { timeoutMs: 5000, attemptTimeoutMs: 200 } })] })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 200)
  t.equal(res.body, 'part 0 part 1 part 2 part 3 part 4 end', 'the whole body, though it took about 500 ms')
  t.ok(res.ms >= 400, `it did stream past the attempt timeout (${Math.round(res.ms)} ms)`)
})
