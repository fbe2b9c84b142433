import t from 'tap'
import { request } from 'undici'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'

t.test('a saturated route A does not slow route B (same upstream, shared pool)', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    if (req.url?.startsWith('/a')) return // hangs until the attempt timeout
    res.end('b')
  })
  const proxy = await startProxy(t, {
    routes: [
      route('a', '/a', upstream.url, { upstream: { url: upstream.url, connections: 4 }, resilience: { timeoutMs: 2000, bulkhead: { maxConcurrent: 2, maxQueue: 0, retryAfterS: 2 } } }),
      route('b', '/b', upstream.url, { upstream: { url: upstream.url, connections: 4 } })
    ]
  })
  const hanging = Array.from({ length: 6 }, async () => await fetchText(`${proxy.url}/a`, { timeoutMs: 5000 }))
  await new Promise((resolve) => setTimeout(resolve, 100))
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_bulkhead_in_flight', { route: 'a' }), 2, 'A holds its 2 slots')
  const bLatencies: number[] = []
  for (let i = 0; i < 5; i++) {
    const res = await fetchText(`${proxy.url}/b`)
    t.equal(res.status, 200)
    bLatencies.push(res.ms)
  }
  t.ok(Math.max(...bLatencies) < 1000, `B answered while A was saturated (max ${Math.round(Math.max(...bLatencies))} ms; A hangs for 2000 ms)`)
  const results = await Promise.all(hanging)
  const rejected = results.filter((r) => r.status === 503)
  t.equal(rejected.length, 4, 'A\'s excess was rejected')
  t.ok(rejected.every((r) => r.headers['x-faultline-outcome'] === 'rejected_bulkhead' && r.headers['retry-after'] === '2'))
  t.equal(JSON.parse(rejected[0]!.body).message, 'the route is at its limit of 2 concurrent requests', 'says why, with no queue to mention')
  t.ok(rejected.every((r) => r.ms < 1500), 'rejections come well before A\'s admitted requests time out at 2000 ms')
  t.equal(results.filter((r) => r.status === 504).length, 2, 'the admitted two timed out')
  const after = await scrape(proxy)
  t.equal(sumOf(after, 'faultline_requests_total', { route: 'a', outcome: 'rejected_bulkhead' }), 4)
  t.equal(sumOf(after, 'faultline_bulkhead_in_flight', { route: 'a' }), 0, 'slots are released')
})

t.test('the queue holds up to maxQueue and hands freed slots over in order', async (t) => {
  const pending: Array<() => void> = []
  const upstream = await startUpstream(t, (_req, res) => { pending.push(() => res.end('done')) })
  const proxy = await startProxy(t, {
    routes: [route('q', '/q', upstream.url, { resilience: { timeoutMs: 3000, bulkhead: { maxConcurrent: 1, maxQueue: 1 } } })]
  })
  const first = fetchText(`${proxy.url}/q`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const second = fetchText(`${proxy.url}/q`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_bulkhead_queued', { route: 'q' }), 1)
  const state = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body).routes[0].state.bulkhead
  t.same(state, { inFlight: 1, queued: 1, maxConcurrent: 1, maxQueue: 1 }, 'visible in GET /routes')
  const third = await fetchText(`${proxy.url}/q`)
  t.equal(third.status, 503, 'the queue is full')
  t.equal(JSON.parse(third.body).message, 'the route is at its limit of 1 concurrent requests and 1 queued')
  t.equal(upstream.hits(), 1)
  pending.shift()!()
  t.equal((await first).status, 200)
  for (let i = 0; i < 50 && pending.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(upstream.hits(), 2, 'the queued request took the freed slot')
  pending.shift()!()
  t.equal((await second).status, 200)
})

t.test('a slot is held until the body is done; a queued request gives up at its deadline with a 504', async (t) => {
  // Headers at once, then a body that never ends: the holder keeps its slot.
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(200); res.write('start') })
  const proxy = await startProxy(t, {
    routes: [route('q', '/q', upstream.url, { resilience: { timeoutMs: 300, bulkhead: { maxConcurrent: 1, maxQueue: 5 } } })]
  })
  const holder = await request(`${proxy.url}/q`)
  t.equal(holder.statusCode, 200)
  const queued = await fetchText(`${proxy.url}/q`)
  t.equal(queued.status, 504)
  t.match(JSON.parse(queued.body).message, /bulkhead queue/)
  t.equal(upstream.hits(), 1, 'the queued one never reached the upstream')
  let m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_bulkhead_queued', { route: 'q' }), 0)
  t.equal(sumOf(m, 'faultline_bulkhead_in_flight', { route: 'q' }), 1, 'still held by the streaming body')
  holder.body.destroy()
  for (let i = 0; i < 100; i++) {
    m = await scrape(proxy)
    if (sumOf(m, 'faultline_bulkhead_in_flight', { route: 'q' }) === 0) break
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  t.equal(sumOf(m, 'faultline_bulkhead_in_flight', { route: 'q' }), 0, 'released once the client left and the body closed')
})

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('a request that leaves the middle of the queue gives up its place; the others keep theirs', async (t) => {
  const pending: Array<() => void> = []
  const upstream = await startUpstream(t, (_req, res) => { pending.push(() => res.end('done')) })
  const proxy = await startProxy(t, {
    routes: [route('q', '/q', upstream.url, { resilience: { timeoutMs: 5000, bulkhead: { maxConcurrent: 1, maxQueue: 2 } } })]
  })
  const queued = async (): Promise<number> => sumOf(await scrape(proxy), 'faultline_bulkhead_queued', { route: 'q' })
  const holder = fetchText(`${proxy.url}/q/holder`)
  for (let i = 0; i < 100 && pending.length === 0; i++) await sleep(10)
  const first = fetchText(`${proxy.url}/q/first`)
  for (let i = 0; i < 100 && await queued() < 1; i++) await sleep(10)
  const leaving = new AbortController()
  const second = request(`${proxy.url}/q/second`, { signal: leaving.signal }).catch(() => 'aborted')
  for (let i = 0; i < 100 && await queued() < 2; i++) await sleep(10)
  t.equal(await queued(), 2)
  leaving.abort()
  t.equal(await second, 'aborted')
  for (let i = 0; i < 100 && await queued() > 1; i++) await sleep(10)
  t.equal(await queued(), 1, 'the second, behind the first, left the queue')
  pending.shift()!()
  t.equal((await holder).status, 200)
  for (let i = 0; i < 100 && pending.length === 0; i++) await sleep(10)
  pending.shift()!()
  t.equal((await first).status, 200, 'the first got the slot')
  const third = fetchText(`${proxy.url}/q/third`)
  for (let i = 0; i < 100 && pending.length === 0; i++) await sleep(10)
  t.equal(pending.length, 1, 'the slot the first freed went to a new request, not to the one that left')
  pending.shift()!()
  t.equal((await third).status, 200)
  t.equal(upstream.hits(), 3)
})
