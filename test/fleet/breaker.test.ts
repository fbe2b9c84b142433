// A breaker shared with the fleet (resilience.breaker.fleet: true), three faultline instances on a real
// redis-server: real failures seen by one open it on all three; after the open period exactly one replica
// sends the trial; a good trial closes it everywhere; injected failures open it nowhere (only the route's
// own breaker, on the replica that saw them); Redis killed: requests keep flowing, each replica's breaker
// works alone and faultline_fleet_shared says so. (Instances in one test process, as levels.test.ts.)
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { fetchText, needTool, route, scrape, startProxy, startUpstream, sumOf, type StartedProxy } from '../helpers.js'
import { startRedis } from '../redis-server.js'
import { sleep, until } from './fleet.js'
import { parseConfig } from '../../src/config/load.js'

const { path: redisServer, skip } = needTool('redis-server')

interface BreakerView { state: string, trips?: number, fleet?: { scope: string }, injected?: { state: string } }

async function breakerOf (proxy: StartedProxy, name: string): Promise<BreakerView> {
  const body = JSON.parse((await fetchText(proxy.adminUrl + '/routes')).body) as { routes: Array<{ name: string, state: { breaker: BreakerView } }> }
  const found = body.routes.find((r) => r.name === name)
  if (found === undefined) throw new Error(`no route ${name}`)
  return found.state.breaker
}

t.test('breaker.fleet needs a fleet: the file, the path, what was expected', async (t) => {
  const routes = [route('a', '/', 'http://127.0.0.1:1', { resilience: { breaker: { fleet: true } } })]
  t.throws(() => parseConfig({ routes }, 'f.yaml'), /f\.yaml: routes\[0\]\.resilience\.breaker\.fleet: expected fleet\.redis to be configured/)
  t.equal(parseConfig({ routes, fleet: { redis: { url: 'redis://r:6379' } } }, 'f.yaml').routes[0]?.resilience.breaker?.fleet, true)
  t.equal(parseConfig({ routes: [route('a', '/', 'http://127.0.0.1:1', { resilience: { breaker: {} } })] }, 'f.yaml').routes[0]?.resilience.breaker?.fleet, false, 'off by default')
})

t.test('a breaker shared with the fleet', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const check = new Redis(redis.url)
  check.on('error', () => {})
  t.teardown(() => { check.disconnect() })
  let failing = false
  const upstream = await startUpstream(t, (_req, res) => {
    // A failure takes a little while, as a real one does: trials sent at once overlap.
    if (failing) { setTimeout(() => { res.writeHead(503, { 'content-length': '4' }); res.end('down') }, 50); return }
    res.end('ok')
  })
  const breaker = { consecutiveFailures: 3, openMs: 1000, fleet: true }
  // Webhook alerts from all three replicas to one receiver.
  const alerts: Array<{ type: string, route: string }> = []
  const hook = await startUpstream(t, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => { alerts.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string, route: string }); res.end('ok') })
  })
  const config = (id: string): Parameters<typeof startProxy>[1] => ({
    log: { level: 'info' },
    alerts: { webhooks: [{ url: `${hook.url}/hook`, types: ['breaker_opened'] }] },
    fleet: { redis: { url: redis.url, maxReconnectDelayMs: 200 }, instanceId: id, pollMs: 100 },
    routes: [
      route('svc', '/svc', upstream.url, { resilience: { breaker } }),
      // Same upstream, same breaker options: the same upstream breaker; its chaos is triggered by header only.
      route('canary', '/canary', upstream.url, { resilience: { breaker }, chaos: { enabled: true, allowHeaderTriggers: true } })
    ]
  })
  const fleet = await Promise.all(['r0', 'r1', 'r2'].map(async (id) => await startProxy(t, config(id))))
  const [r0, r1, r2] = fleet as [StartedProxy, StartedProxy, StartedProxy]
  const states = async (): Promise<string[]> => await Promise.all(fleet.map(async (p) => (await breakerOf(p, 'svc')).state))
  const shared = async (p: StartedProxy): Promise<number> => sumOf(await scrape(p), 'faultline_fleet_shared', { route: 'svc', feature: 'breaker' })
  t.ok(await until(async () => (await Promise.all(fleet.map(shared))).every((v) => v === 1), 5000), 'faultline_fleet_shared{feature="breaker"} is 1 on all three')
  t.same((await breakerOf(r0, 'svc')).fleet, { scope: 'fleet' }, 'GET /routes says the breaker is the fleet\'s')

  // Injected failures: the route's own breaker opens on the replica that saw them; the fleet's breaker nowhere.
  for (let i = 0; i < 5; i++) t.equal((await fetchText(`${r0.url}/canary/x`, { headers: { 'x-faultline-fault': 'abort=503' } })).status, 503)
  t.equal((await breakerOf(r0, 'canary')).injected?.state, 'open', 'canary\'s own breaker opened on r0')
  await sleep(300)
  t.same(await states(), ['closed', 'closed', 'closed'], 'the upstream breaker stays closed on all three')
  t.same(await check.keys('faultline:breaker:*'), [], 'nothing about it reached Redis')
  t.same(await Promise.all(fleet.map(async (p) => (await fetchText(`${p.url}/svc/x`)).status)), [200, 200, 200], 'svc answers on all three')

  // Real failures seen by r0 alone open the breaker on all three.
  failing = true
  for (let i = 0; i < 3; i++) t.equal((await fetchText(`${r0.url}/svc/x`)).status, 503)
  t.ok(await until(async () => (await states()).every((s) => s === 'open'), 1000), 'open on all three within a second')
  const before = upstream.hits()
  for (const p of [r1, r2]) {
    const res = await fetchText(`${p.url}/svc/x`)
    t.match(res.body, /short_circuited/, 'the others short-circuit')
  }
  t.equal(upstream.hits(), before, 'without asking the upstream')
  await sleep(500)
  const opened = alerts.filter((a) => a.type === 'breaker_opened').map((a) => a.route).sort()
  t.same(opened, ['canary', 'svc'], 'breaker_opened is sent once per route by the replica whose counts opened it, not by each that followed')
  t.ok(r1.logs.lines.some((l) => String(l.msg).includes('opened for') && String(l.msg).includes('by the fleet (replica r0)')), 'r1 logs who opened it')

  // The open period ends: one trial for the fleet, whichever replicas get requests.
  await sleep(1200)
  const atTrial = upstream.hits()
  // All three at once, so replicas that did not agree on one trial would each send theirs.
  const duringTrial: string[] = []
  for (let i = 0; i < 10; i++) {
    duringTrial.push(...(await Promise.all(fleet.map(async (p) => (await fetchText(`${p.url}/svc/x`)).body))))
    await sleep(30)
  }
  t.equal(upstream.hits() - atTrial, 1, 'exactly one trial request reached the upstream')
  t.ok(duringTrial.some((body) => body.includes('is open; one replica of the fleet sends the trial request')),
    'a replica whose open period is over, while another holds the trial, says so')
  const triers = fleet.filter((p) => p.logs.lines.some((l) => String(l.msg).includes('sends the fleet\'s trial request')))
  t.equal(triers.length, 1, 'one replica held the trial')
  t.ok(await until(async () => (await Promise.all(fleet.map(async (p) => await breakerOf(p, 'svc')))).every((b) => b.state === 'open' && b.trips === 2), 1000),
    'the failed trial opened it again on all three, for the second trip')

  // The upstream recovers: a good trial closes it everywhere.
  failing = false
  await sleep(2100)
  let closed = false
  for (let i = 0; i < 100 && !closed; i++) {
    await fetchText(`${(fleet[i % 3] as StartedProxy).url}/svc/x`)
    closed = (await states()).every((s) => s === 'closed')
  }
  t.ok(closed, 'closed on all three after one good trial')
  t.same(await Promise.all(fleet.map(async (p) => (await fetchText(`${p.url}/svc/x`)).status)), [200, 200, 200])

  // Redis killed: requests keep flowing, each breaker works alone, and the metric says so.
  await redis.stop()
  t.ok(await until(async () => (await Promise.all(fleet.map(shared))).every((v) => v === 0), 3000), 'faultline_fleet_shared{feature="breaker"} is 0 on all three')
  t.same((await breakerOf(r0, 'svc')).fleet, { scope: 'local' })
  t.same(await Promise.all(fleet.map(async (p) => (await fetchText(`${p.url}/svc/x`, { timeoutMs: 2000 })).status)), [200, 200, 200], 'requests keep flowing')
  failing = true
  for (let i = 0; i < 3; i++) await fetchText(`${r0.url}/svc/x`)
  t.equal((await breakerOf(r0, 'svc')).state, 'open', 'r0\'s breaker opens on its own counts')
  await sleep(300)
  t.equal((await breakerOf(r1, 'svc')).state, 'closed', 'the others cannot know: they keep their own')
  failing = false
  await redis.start()
  t.ok(await until(async () => (await Promise.all(fleet.map(shared))).every((v) => v === 1), 5000), 'Redis back: shared again')
})

t.test('a fleet breaker across reloads: kept with the same fleet, linked anew when fleet.redis changes', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(503, { 'content-length': '4' }); res.end('down') })
  const config = (keyPrefix: string): Parameters<typeof startProxy>[1] => ({
    log: { level: 'silent' },
    fleet: { redis: { url: redis.url, keyPrefix, maxReconnectDelayMs: 200 }, instanceId: 'solo', pollMs: 100 },
    routes: [route('svc', '/svc', upstream.url, { resilience: { breaker: { consecutiveFailures: 2, openMs: 60_000, fleet: true } } })]
  })
  const file = join(t.testdir({}), 'config.json')
  await writeFile(file, JSON.stringify({ ...config('a:'), listen: { host: '127.0.0.1', port: 0 } }))
  const proxy = await startProxy(t, config('a:'), { configFile: file })
  t.ok(await until(async () => (await breakerOf(proxy, 'svc')).fleet?.scope === 'fleet', 3000), 'shared')
  for (let i = 0; i < 2; i++) await fetchText(`${proxy.url}/svc/x`)
  t.equal((await breakerOf(proxy, 'svc')).state, 'open')
  const check = new Redis(redis.url)
  t.teardown(() => { check.disconnect() })
  t.ok(await until(async () => (await check.keys('a:breaker:*')).length > 0, 2000), 'the opening is in Redis')

  await proxy.faultline.reload()
  t.equal((await breakerOf(proxy, 'svc')).state, 'open', 'a reload with the same config keeps the breaker, open')
  t.equal(sumOf(await scrape(proxy), 'faultline_fleet_shared', { route: 'svc', feature: 'breaker' }), 1, 'one series, shared')

  await writeFile(file, JSON.stringify({ ...config('b:'), listen: { host: '127.0.0.1', port: 0 } }))
  await proxy.faultline.reload()
  t.ok(await until(async () => (await breakerOf(proxy, 'svc')).fleet?.scope === 'fleet', 3000), 'new connections: linked again')
  t.equal((await breakerOf(proxy, 'svc')).state, 'closed', 'a breaker of the new fleet, which never opened')
  for (let i = 0; i < 2; i++) await fetchText(`${proxy.url}/svc/x`)
  t.ok(await until(async () => (await check.keys('b:breaker:*')).length > 0, 2000), 'its opening goes to the new prefix')
})
