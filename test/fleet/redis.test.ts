// The fleet's Redis connections against a real redis-server: lazy, fail fast while down,
// bounded reconnect, counted in metrics, closed on reload and shutdown; and the `fleet` config block.
import t from 'tap'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { needTool, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'
import { startRedis } from '../redis-server.js'
import { FleetRedis } from '../../src/fleet/redis.js'
import { fleetSchema } from '../../src/fleet/schema.js'
import { configSchema } from '../../src/config/schema.js'
import { parseConfig } from '../../src/config/load.js'
import { createLogger } from '../../src/log.js'
import { Metrics } from '../../src/metrics/metrics.js'
import { parsePrometheusText as parse } from '../../src/metrics/text.js'

const { path: redisServer, skip } = needTool('redis-server')
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function until (what: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await what()) return true
    await sleep(20)
  }
  return await what()
}

/** Names of the connections a faultline opened (CLIENT LIST, seen from a separate client). */
async function faultlineClients (admin: Redis): Promise<string[]> {
  const list = await admin.client('LIST') as string
  return list.split('\n').map((line) => /name=(\S*)/.exec(line)?.[1] ?? '').filter((name) => name.startsWith('faultline:'))
}

function adminClient (t: { teardown: (fn: () => void) => void }, url: string): Redis {
  const client = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  client.on('error', () => {}) // the test's own client; its errors while Redis is stopped are expected
  t.teardown(() => { client.disconnect() })
  return client
}

t.test('fleet config: a Redis URL, no password in it, a bounded key prefix', async (t) => {
  const ok = fleetSchema.parse({ redis: { url: 'redis://redis:6379' } })
  t.equal(ok.redis.keyPrefix, 'faultline:')
  t.equal(ok.redis.commandTimeoutMs, 500)
  t.equal(fleetSchema.parse({ redis: { url: 'rediss://r:6380/2', commandTimeoutMs: '250ms' } }).redis.commandTimeoutMs, 250)
  const base = { routes: [route('a', '/', 'http://127.0.0.1:1')] }
  t.throws(() => parseConfig({ ...base, fleet: { redis: { url: 'http://redis:6379' } } }, 'f.yaml'), /f\.yaml: fleet\.redis\.url: expected a redis:\/\/ or rediss:\/\/ URL/)
  t.throws(() => parseConfig({ ...base, fleet: { redis: { url: 'redis://:hunter2@redis:6379' } } }, 'f.yaml'), /fleet\.redis\.url: expected no password in the Redis URL; use fleet\.redis\.passwordFile/)
  t.throws(() => parseConfig({ ...base, fleet: { redis: { url: 'redis://r', keyPrefix: 'a b' } } }, 'f.yaml'), /fleet\.redis\.keyPrefix/)
  t.throws(() => parseConfig({ ...base, fleet: { redis: { url: 'redis://r', timeout: 1 } } }, 'f.yaml'), /fleet\.redis/)
  t.equal(configSchema.parse(base).fleet, undefined, 'no fleet block: no fleet')
})

t.test('without `fleet` faultline opens no Redis connection', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { routes: [route('a', '/', upstream.url)] })
  t.equal(proxy.faultline.fleet, undefined)
  const samples = await scrape(proxy)
  t.notOk(samples.some((s) => s.name === 'faultline_fleet_redis_up'), 'no fleet metric series')
})

t.test('connections: lazy, fail fast while Redis is down, reconnect on their own, closed by close()', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const admin = adminClient(t, redis.url)
  const metrics = new Metrics({ defaultMetrics: false })
  const fleet = new FleetRedis(fleetSchema.parse({ redis: { url: redis.url, keyPrefix: 'fl-test:', maxReconnectDelayMs: 200, commandTimeoutMs: 300 }, instanceId: 'r1' }),
    { logger: createLogger('silent'), metrics })
  t.teardown(async () => { await fleet.close() })
  const up = async (name: string): Promise<number> => sumOf(parse(await metrics.registry.metrics()), 'faultline_fleet_redis_up', { connection: name })
  const errors = async (): Promise<number> => sumOf(parse(await metrics.registry.metrics()), 'faultline_fleet_redis_errors_total')

  t.same(await faultlineClients(admin), [], 'nothing connects before a feature asks')
  t.equal(fleet.key('kill'), 'fl-test:kill')
  t.equal(await fleet.attempt(async (r) => await r.set(fleet.key('k'), 'v')), undefined, 'the very first command finds no connection yet: local fallback')
  t.ok(await until(() => fleet.isUp(), 2000), 'connects')
  t.equal(await up('commands'), 1)
  t.equal(await fleet.attempt(async (r) => await r.set(fleet.key('k'), 'v')), 'OK')
  t.equal(await admin.get('fl-test:k'), 'v', 'the key carries the prefix')
  t.same(await faultlineClients(admin), ['faultline:r1:commands'], 'one named connection')

  // A command the server does not answer (all clients paused) times out instead of holding its caller.
  await admin.client('PAUSE', 1000, 'ALL')
  let t0 = performance.now()
  t.equal(await fleet.attempt(async (r) => await r.get(fleet.key('k'))), undefined, 'a stalled Redis: undefined, not a hang')
  t.ok(performance.now() - t0 < 900, `answered after the command timeout (${Math.round(performance.now() - t0)} ms)`)
  await admin.client('UNPAUSE')

  const errorsBefore = await errors()
  await redis.stop()
  t.ok(await until(() => !fleet.isUp(), 2000), 'notices Redis is gone')
  t.equal(await up('commands'), 0, 'the metric says so')
  t0 = performance.now()
  t.equal(await fleet.attempt(async (r) => await r.get(fleet.key('k'))), undefined, 'Redis down: undefined')
  t.ok(performance.now() - t0 < 50, 'at once: no offline queue')
  t.ok(await until(async () => await errors() > errorsBefore, 2000), 'errors are counted')

  await redis.start()
  t.ok(await until(() => fleet.isUp(), 3000), 'reconnects within the bounded delay')
  t.equal(await fleet.attempt(async (r) => await r.get(fleet.key('k'))), null, 'works again (the restarted Redis is empty)')

  await fleet.close()
  t.ok(await until(async () => (await faultlineClients(admin)).length === 0, 2000), 'close() ends the connection')
  t.equal(await fleet.attempt(async (r) => await r.get('x')), undefined, 'after close: undefined, no reconnect')
})

t.test('Faultline: keeps the fleet connections across a reload that leaves fleet.redis alone, replaces them when it changes, closes them on shutdown', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const admin = adminClient(t, redis.url)
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const dir = t.testdir({})
  const fleet = { redis: { url: redis.url }, instanceId: 'replica-a' }
  const proxy = await startProxy(t, { routes: [route('a', '/', upstream.url)], fleet })
  const first = proxy.faultline.fleet
  t.ok(first, 'a fleet Redis')
  first?.connection()
  t.ok(await until(() => first?.isUp() === true, 2000))
  // The kill switch (src/fleet/kill-switch.ts) subscribes from the start.
  t.ok(await until(async () => (await faultlineClients(admin)).sort().join() === 'faultline:replica-a:commands,faultline:replica-a:subscriber', 2000), 'commands and subscriber connections')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_fleet_redis_up', { connection: 'commands' }), 1, 'faultline_fleet_redis_up on /metrics')

  proxy.faultline.applyConfig(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, routes: [route('a', '/x', upstream.url)], fleet }, 'c'))
  t.equal(proxy.faultline.fleet, first, 'unchanged settings: the same connections')

  t.throws(() => { proxy.faultline.applyConfig(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, routes: [route('a', '/', upstream.url)], fleet: { ...fleet, redis: { ...fleet.redis, passwordFile: join(dir, 'missing') } } }, 'c')) },
    /fleet\.redis\.passwordFile: cannot read the Redis password file/, 'an unreadable password file refuses the reload')
  t.equal(proxy.faultline.fleet, first, 'and the old connections stay')

  proxy.faultline.applyConfig(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, routes: [route('a', '/', upstream.url)], fleet: { ...fleet, instanceId: 'replica-b' } }, 'c'))
  const second = proxy.faultline.fleet
  t.not(second, first, 'changed settings: new connections')
  second?.connection()
  t.ok(await until(async () => (await faultlineClients(admin)).sort().join() === 'faultline:replica-b:commands,faultline:replica-b:subscriber', 2000), 'the old connection is closed, the new one open')

  proxy.faultline.applyConfig(parseConfig({ listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 }, routes: [route('a', '/', upstream.url)], fleet: { ...fleet, instanceId: 'replica-c' } }, 'c'))
  proxy.faultline.fleet?.connection()
  t.ok(await until(async () => (await faultlineClients(admin)).sort().join() === 'faultline:replica-c:commands,faultline:replica-c:subscriber', 2000))
  await proxy.faultline.close()
  t.ok(await until(async () => (await faultlineClients(admin)).length === 0, 2000), 'shutdown closes them')
})
