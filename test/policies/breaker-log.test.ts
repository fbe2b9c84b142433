/**
 * A breaker that opens writes one warn line (route, upstream, which
 * breaker: the shared one or the route's own for injected failures, why,
 * for how long); one that closes writes one info line. Two routes sharing
 * the breaker still write each transition once.
 */
import t from 'tap'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

const breaker = { consecutiveFailures: 2, openMs: 200 }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('the shared breaker: one warn line when it opens, one info line when it closes, once for two routes', async (t) => {
  let down = true
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(down ? 503 : 200, { 'content-length': '2' }); res.end('ok') })
  const proxy = await startProxy(t, {
    routes: [
      route('a', '/a', upstream.url, { resilience: { breaker } }),
      route('b', '/b', upstream.url, { resilience: { breaker } })
    ]
  })
  const lines = (): Array<Record<string, unknown>> => proxy.logs.lines.filter((l) => String(l.msg).startsWith('circuit breaker'))
  t.equal((await fetchText(`${proxy.url}/a/1`)).status, 503)
  t.same(lines(), [], 'no line before the breaker opens')
  t.equal((await fetchText(`${proxy.url}/b/1`)).status, 503)
  t.match((await fetchText(`${proxy.url}/a/2`)).body, /short_circuited/, 'open for both routes')
  const opened = lines()
  t.equal(opened.length, 1, 'one line, though two routes share the breaker')
  t.match(opened[0], {
    level: 40,
    route: 'b',
    upstream: `127.0.0.1:${upstream.port}`,
    breaker: 'shared',
    injected: false,
    openMs: 200,
    reason: '2 failures in a row (consecutiveFailures 2)'
  }, 'warn, naming the route whose request tripped it, the upstream, the shared breaker, why and for how long')
  t.match(opened[0]!.msg, /^circuit breaker opened for 127\.0\.0\.1:\d+, the shared breaker \(real failures\), for 0\.2 s: 2 failures in a row/)

  down = false
  await sleep(250)
  t.equal((await fetchText(`${proxy.url}/a/3`)).status, 200, 'the trial request passes')
  const closed = lines().slice(1)
  t.equal(closed.length, 1, 'one line when it closes')
  t.match(closed[0], { level: 30, route: 'a', breaker: 'shared', injected: false, reason: '1 trial request(s) succeeded while half-open' })
  t.match(closed[0]!.msg, /^circuit breaker closed for 127\.0\.0\.1:\d+, the shared breaker/)
})

t.test('a route\'s own breaker, opened by injected failures, says so; a failed trial logs the doubled open time', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'content-length': '2' }); res.end('ok') })
  const proxy = await startProxy(t, {
    routes: [route('canary', '/canary', upstream.url, { resilience: { breaker }, chaos: { enabled: true, allowHeaderTriggers: true } })]
  })
  const fail = { headers: { 'x-faultline-fault': 'abort=503' } }
  for (let i = 0; i < 2; i++) t.equal((await fetchText(`${proxy.url}/canary/x`, fail)).status, 503)
  await sleep(250)
  t.equal((await fetchText(`${proxy.url}/canary/x`, fail)).status, 503, 'the trial request fails (injected)')
  const lines = proxy.logs.lines.filter((l) => String(l.msg).startsWith('circuit breaker'))
  t.equal(lines.length, 2, 'two openings, no closing')
  t.match(lines[0], { level: 40, route: 'canary', breaker: 'route', injected: true, openMs: 200, reason: '2 failures in a row (consecutiveFailures 2)' })
  t.match(lines[0]!.msg, /route canary's own breaker \(injected failures\)/)
  t.match(lines[1], { level: 40, breaker: 'route', injected: true, openMs: 400, reason: 'a trial request failed while half-open (trip 2 in a row)' })
})
