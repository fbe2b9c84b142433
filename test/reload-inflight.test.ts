import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from './helpers.js'

const TOKEN = 'reload-token-0123456789abcdef'
const auth = { authorization: `Bearer ${TOKEN}` }

// issue 13: a reload closed the old pool under requests still queued, backing off or delayed,
// and disposed a removed route under its in-flight requests (502 "client is closed").
t.test('a SIGHUP-style reload loses no queued, backing-off, delayed or removed-route request', async (t) => {
  let slowSeen = 0
  let plainSeen = 0
  const slow = await startUpstream(t, (_req, res) => { slowSeen++; setTimeout(() => { res.end('slow') }, 150) })
  let flaky = 0
  const retried = await startUpstream(t, (_req, res) => {
    // The first attempt fails; the retry (after a 400 ms back-off, across the reload) succeeds.
    if (flaky++ === 0) { res.statusCode = 503; res.end('no'); return }
    res.end('retried')
  })
  const other = await startUpstream(t, (_req, res) => { res.end('other') })
  const plain = await startUpstream(t, (_req, res) => { plainSeen++; setTimeout(() => { res.end('plain') }, 300) })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const v1 = {
    admin: { token: TOKEN },
    routes: [
      route('queued', '/queued', slow.url, { upstream: { url: slow.url, connections: 2 }, resilience: { bulkhead: { maxConcurrent: 2, maxQueue: 30 } } }),
      route('backoff', '/backoff', retried.url, { resilience: { retry: { attempts: 2, backoff: { baseMs: 400, maxMs: 400, jitter: 'none' }, on: [503] } } }),
      route('delayed', '/delayed', plain.url, { chaos: { enabled: true, faults: [{ kind: 'latency', ms: 400 }] } }),
      route('removed', '/removed', plain.url)
    ]
  }
  await writeFile(file, JSON.stringify(v1))
  const proxy = await startProxy(t, v1, { configFile: file })

  const queued = Array.from({ length: 12 }, async () => await fetchText(`${proxy.url}/queued/x`))
  const inFlight = [
    ...queued,
    fetchText(`${proxy.url}/backoff/x`),
    fetchText(`${proxy.url}/delayed/x`),
    fetchText(`${proxy.url}/removed/x`)
  ]
  // Every kind is in flight: two queued requests reached the upstream, the retry is in its back-off, the removed route's request is upstream.
  for (let i = 0; i < 100 && (slowSeen < 2 || flaky < 1 || plainSeen < 1); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await new Promise((resolve) => setTimeout(resolve, 20))
  // Only pool options change (a new pool per route), the back-off route's URL changes, and one route goes.
  const v2 = {
    ...v1,
    routes: [
      route('queued', '/queued', slow.url, { upstream: { url: slow.url, connections: 3 }, resilience: { bulkhead: { maxConcurrent: 2, maxQueue: 30 } } }),
      route('backoff', '/backoff', other.url, { resilience: { retry: { attempts: 2, backoff: { baseMs: 400, maxMs: 400, jitter: 'none' }, on: [503] } } }),
      route('delayed', '/delayed', other.url, { chaos: { enabled: true, faults: [{ kind: 'latency', ms: 400 }] } })
    ]
  }
  await writeFile(file, JSON.stringify(v2))
  t.equal((await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })).status, 200)

  const answers = await Promise.all(inFlight)
  t.same(answers.map((a) => a.status), answers.map(() => 200), 'every request in flight across the reload is answered 2xx')
  t.same(answers.slice(0, 12).map((a) => a.body), Array(12).fill('slow'))
  t.equal(answers[12]!.body, 'retried', 'the retry went to the upstream the request started with')
  t.equal(answers[13]!.body, 'plain', 'the delayed request kept its route and pool')
  t.equal(answers[14]!.body, 'plain', 'the removed route finished its request')

  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { error_class: 'http_5xx' }), 1, 'only the planned 503 is an upstream error')
  t.equal(sumOf(samples, 'faultline_upstream_errors_total'), 1, 'no "client is closed" error was counted')
  // After the old generation drained, only the new generation's pools remain.
  t.equal((await fetchText(`${proxy.url}/queued/y`)).body, 'slow')
})

t.test('a breaker shared across generations counts each transition once while the old generation drains', async (t) => {
  let release: (() => void) | undefined
  const up = await startUpstream(t, (req, res) => {
    if (req.url === '/svc/hold') { release = () => { res.end('held') }; return }
    res.end('ok')
  })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const svc = route('svc', '/svc', up.url, { resilience: { breaker: { consecutiveFailures: 5 } } })
  const v1 = { admin: { token: TOKEN }, routes: [svc] }
  await writeFile(file, JSON.stringify(v1))
  const proxy = await startProxy(t, v1, { configFile: file })
  const held = fetchText(`${proxy.url}/svc/hold`)
  for (let i = 0; i < 100 && release === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  await writeFile(file, JSON.stringify({ ...v1, routes: [svc, route('other', '/other', up.url)] }))
  t.equal((await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })).status, 200)
  t.equal((await fetchText(`${proxy.adminUrl}/routes/svc/breaker/force-open`, { method: 'POST', headers: auth })).status, 200)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_breaker_transitions_total', { route: 'svc', to: 'forced_open' }) + sumOf(samples, 'faultline_breaker_transitions_total', { route: 'svc', to: 'open' }), 1, 'one transition, counted once')
  release?.()
  t.equal((await held).body, 'held', 'the old generation\'s request finished')
})
