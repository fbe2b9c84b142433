// The shared last-known-good cache (cache.store: redis) across three faultline instances on a real
// redis-server: an answer one replica stored serves the others when the upstream fails; users stay apart
// per credential; an answer a fault shaped is never stored; another route never sees it; an invalidation on
// one replica reaches all; Redis killed: requests keep flowing, the local copy answers, the metric says so.
// (Instances in one test process, as levels.test.ts.)
import t from 'tap'
import { Redis } from 'ioredis'
import { fetchText, needTool, route, scrape, startProxy, startUpstream, sumOf, type StartedProxy } from '../helpers.js'
import { startRedis } from '../redis-server.js'
import { until } from './fleet.js'
import { parseConfig } from '../../src/config/load.js'

const { path: redisServer, skip } = needTool('redis-server')

t.test('cache.store redis needs a fleet: the file, the path, what was expected', async (t) => {
  const routes = [route('a', '/', 'http://127.0.0.1:1', { resilience: { fallback: [{ cache: { store: 'redis' } }] } })]
  t.throws(() => parseConfig({ routes }, 'f.yaml'), /f\.yaml: routes\[0\]\.resilience\.fallback\[0\]\.cache\.store: expected fleet\.redis to be configured/)
  t.equal(parseConfig({ routes: [route('a', '/', 'http://127.0.0.1:1', { resilience: { fallback: ['cache'] } })] }, 'f.yaml').routes[0]?.resilience.fallback[0]?.kind, 'cache')
})

t.test('a last-known-good cache shared by the fleet', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const check = new Redis(redis.url)
  check.on('error', () => {})
  t.teardown(() => { check.disconnect() })
  let down = false
  const upstream = await startUpstream(t, (req, res) => {
    if (down) { res.writeHead(503, { 'content-length': '4' }); res.end('down'); return }
    if (req.method === 'POST') { res.writeHead(204); res.end(); return }
    const who = /session=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? 'anonymous'
    const body = req.url?.endsWith('/me') === true ? `hello ${who}` : `page ${req.url ?? ''}`
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  const cache = { cache: { store: 'redis', credentials: 'perCredential', refreshMs: 0 } }
  const config = (id: string): Parameters<typeof startProxy>[1] => ({
    log: { level: 'silent' },
    fleet: { redis: { url: redis.url, maxReconnectDelayMs: 200 }, instanceId: id },
    routes: [
      route('c', '/c', upstream.url, { resilience: { fallback: [cache] }, chaos: { enabled: true, allowHeaderTriggers: true } }),
      route('d', '/d', upstream.url, { match: { pathPrefix: '/d', rewritePrefix: '/c' }, resilience: { fallback: [cache] } })
    ]
  })
  const fleet = await Promise.all(['r0', 'r1', 'r2'].map(async (id) => await startProxy(t, config(id))))
  const [r0, r1, r2] = fleet as [StartedProxy, StartedProxy, StartedProxy]
  const shared = async (p: StartedProxy): Promise<number> => sumOf(await scrape(p), 'faultline_fleet_shared', { route: 'c', feature: 'cache' })
  t.ok(await until(async () => (await Promise.all(fleet.map(shared))).every((v) => v === 1), 5000), 'faultline_fleet_shared{feature="cache"} is 1 on all three')
  const entries = async (): Promise<number> => (await check.keys('faultline:cache:{c:*:e:*')).length

  // r0 sees the real answers: anonymous, alice's, and one a fault shaped.
  const alice = { cookie: 'session=alice' }
  t.equal((await fetchText(`${r0.url}/c/news`)).body, 'page /c/news')
  t.equal((await fetchText(`${r0.url}/c/me`, { headers: alice })).body, 'hello alice')
  const shaped = await fetchText(`${r0.url}/c/shaped`, { headers: { 'x-faultline-fault': 'corrupt=bytes; rate=1' } })
  t.equal(shaped.status, 200)
  t.ok(await until(async () => await entries() === 2, 2000), 'two entries in Redis: the real answers, not the shaped one')
  t.equal((await check.keys('faultline:cache:{d:*')).length, 0, 'route d has none')

  // The upstream fails: replicas that never saw those answers serve them, each to its own user only.
  down = true
  const news = await fetchText(`${r1.url}/c/news`)
  t.equal(news.body, 'page /c/news', 'r1 serves what r0 stored')
  t.equal(news.headers['x-faultline-fallback'], 'cache')
  t.equal((await fetchText(`${r2.url}/c/me`, { headers: alice })).body, 'hello alice', 'alice gets her own on r2')
  t.equal((await fetchText(`${r2.url}/c/me`, { headers: { cookie: 'session=bob' } })).status, 503, 'bob gets none of alice\'s')
  t.equal((await fetchText(`${r1.url}/c/me`)).status, 503, 'nor does the anonymous caller')
  t.equal((await fetchText(`${r1.url}/c/shaped`)).status, 503, 'the answer a fault shaped was never stored')
  t.equal((await fetchText(`${r1.url}/d/news`)).status, 503, 'route d (same upstream path) never sees route c\'s entry')

  // A successful write on r2 invalidates the entry for the fleet, and r0's local copy with it.
  down = false
  t.equal((await fetchText(`${r2.url}/c/news`, { method: 'POST', body: 'x' })).status, 204)
  down = true
  t.equal((await fetchText(`${r1.url}/c/news`)).status, 503, 'invalidated in Redis')
  await redis.stop()
  t.ok(await until(async () => (await Promise.all(fleet.map(shared))).every((v) => v === 0), 3000), 'Redis killed: faultline_fleet_shared{feature="cache"} is 0 on all three')
  t.equal((await fetchText(`${r0.url}/c/news`)).status, 503, 'r0\'s local copy was invalidated too')

  // Redis down: the local copies answer, and nothing waits on Redis.
  const local = await fetchText(`${r0.url}/c/me`, { headers: alice, timeoutMs: 3000 })
  t.equal(local.body, 'hello alice', 'r0 answers from its own copy')
  t.ok(local.ms < 400, `without waiting on Redis (${Math.round(local.ms)} ms)`)
  const none = await fetchText(`${r1.url}/c/me`, { headers: alice, timeoutMs: 3000 })
  t.equal(none.status, 503, 'r1 has no copy of its own: the failure goes out as it is')
  t.ok(none.ms < 400, `at once (${Math.round(none.ms)} ms)`)
  down = false
  t.same(await Promise.all(fleet.map(async (p) => (await fetchText(`${p.url}/c/x`, { timeoutMs: 3000 })).status)), [200, 200, 200], 'requests keep flowing')
  await redis.start()
  t.ok(await until(async () => (await Promise.all(fleet.map(shared))).every((v) => v === 1), 5000), 'Redis back: shared again')
})
