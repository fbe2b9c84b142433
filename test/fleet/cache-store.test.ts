// The shared last-known-good cache stores against a real redis-server: the Redis store and the fleet store
// (Redis with a local copy) keep the CacheStore contract; what Redis holds names no request header as sent;
// with Redis down the fleet store answers from its local copy at once.
import t from 'tap'
import { Redis } from 'ioredis'
import { needTool } from '../helpers.js'
import { startRedis } from '../redis-server.js'
import { cacheStoreTests, value } from '../policies/cache-store-contract.js'
import { until } from './fleet.js'
import { FleetRedis } from '../../src/fleet/redis.js'
import { fleetSchema } from '../../src/fleet/schema.js'
import { RedisCacheStore } from '../../src/fleet/redis-cache-store.js'
import { FleetCacheStore } from '../../src/fleet/fleet-cache-store.js'
import { MemoryCacheStore } from '../../src/policies/memory-cache-store.js'
import { createLogger } from '../../src/log.js'
import { Metrics } from '../../src/metrics/metrics.js'
import type { CacheStore, CacheValue } from '../../src/policies/cache-store.js'

const { path: redisServer, skip } = needTool('redis-server')

async function write (store: CacheStore, path: string, headers: Record<string, string>, v: CacheValue, body: string): Promise<boolean> {
  const stream = store.createWriteStream({ method: 'GET', path, headers }, v)
  if (stream === undefined) return false
  return await new Promise((resolve) => {
    stream.on('error', () => { resolve(false) })
    stream.on('finish', () => { resolve(true) })
    stream.end(Buffer.from(body))
  })
}

t.test('the Redis cache stores', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const fleet = new FleetRedis(fleetSchema.parse({ redis: { url: redis.url, maxReconnectDelayMs: 100 } }), { logger: createLogger('silent'), metrics: new Metrics({ defaultMetrics: false }) })
  t.teardown(async () => { await fleet.close() })
  let n = 0
  const limits = { maxEntries: 100, maxBytes: 1024 * 1024, maxEntryBytes: 64 * 1024 }
  t.ok(await until(() => { void new RedisCacheStore(fleet, 'warmup', limits); return fleet.isUp('cache') }, 5000), 'the cache connection is up')

  await t.test('contract', async (t) => {
    // A namespace per store: each contract case starts empty, as a new memory store does.
    cacheStoreTests(t, 'RedisCacheStore', (l) => new RedisCacheStore(fleet, `contract-${n++}`, l))
    cacheStoreTests(t, 'FleetCacheStore', (l) => {
      const namespace = `layered-${n++}`
      return new FleetCacheStore(new MemoryCacheStore(l), new RedisCacheStore(fleet, namespace, l), { redis: fleet, namespace })
    })
  })

  await t.test('Redis holds no request header value as it was sent', async (t) => {
    const store = new RedisCacheStore(fleet, 'secrets', limits)
    const secret = 'Bearer alice-secret-token'
    t.ok(await write(store, '/me?user=alice', { authorization: secret }, value({ vary: { authorization: secret } }), 'hello alice'))
    t.equal((await store.get({ method: 'GET', path: '/me?user=alice', headers: { authorization: secret } }))?.body.toString(), 'hello alice')
    t.equal(await store.get({ method: 'GET', path: '/me?user=alice', headers: { authorization: 'Bearer bob' } }), undefined, 'another credential misses')
    const raw = new Redis(redis.url)
    t.teardown(() => { raw.disconnect() })
    const keys = await raw.keys('faultline:cache:*')
    t.ok(keys.length > 0)
    t.notOk(keys.some((k) => k.includes('alice') || k.includes('/me')), `keys are hashes: ${keys.join(', ')}`)
    for (const k of keys.filter((k) => k.includes(':e:'))) t.notOk((await raw.getBuffer(k))?.toString('latin1').includes('alice-secret-token'), 'the entry holds no credential')
  })

  await t.test('two namespaces (two routes) never see each other\'s entries', async (t) => {
    const a = new RedisCacheStore(fleet, 'route-a:x', limits)
    const b = new RedisCacheStore(fleet, 'route-b:x', limits)
    t.ok(await write(a, '/same', {}, value(), 'a'))
    t.equal(await b.get({ method: 'GET', path: '/same', headers: {} }), undefined)
  })

  await t.test('Redis slow: the fleet store answers from its local copy within commandTimeoutMs', async (t) => {
    const slowFleet = new FleetRedis(fleetSchema.parse({ redis: { url: redis.url, commandTimeoutMs: 300 } }), { logger: createLogger('silent'), metrics: new Metrics({ defaultMetrics: false }) })
    t.teardown(async () => { await slowFleet.close() })
    const namespace = 'slow'
    const store = new FleetCacheStore(new MemoryCacheStore(limits), new RedisCacheStore(slowFleet, namespace, limits), { redis: slowFleet, namespace })
    t.ok(await until(() => slowFleet.isUp('cache'), 3000))
    t.ok(await write(store, '/slow', {}, value(), 'slow'))
    const raw = new Redis(redis.url)
    t.teardown(() => { raw.disconnect() })
    // Redis holds every client's commands for 2 s: up, connected, and not answering.
    await raw.call('CLIENT', 'PAUSE', '2000', 'ALL')
    const started = performance.now()
    t.equal((await store.get({ method: 'GET', path: '/slow', headers: {} }))?.body.toString(), 'slow', 'the local copy answers')
    const ms = performance.now() - started
    t.ok(ms < 900, `within about commandTimeoutMs (${Math.round(ms)} ms, Redis paused for 2000)`)
    await raw.call('CLIENT', 'UNPAUSE')
  })

  await t.test('Redis down: the fleet store answers from its local copy at once, and writes still succeed', async (t) => {
    const namespace = 'down'
    const store = new FleetCacheStore(new MemoryCacheStore(limits), new RedisCacheStore(fleet, namespace, limits), { redis: fleet, namespace })
    t.ok(await write(store, '/kept', {}, value(), 'kept'))
    t.equal(store.shared, true)
    await redis.stop()
    t.ok(await until(() => !fleet.isUp('cache'), 3000), 'the connection noticed')
    t.equal(store.shared, false)
    const started = performance.now()
    t.equal((await store.get({ method: 'GET', path: '/kept', headers: {} }))?.body.toString(), 'kept', 'the local copy answers')
    t.ok(await write(store, '/new', {}, value(), 'new'), 'a write is taken locally')
    t.equal((await store.get({ method: 'GET', path: '/new', headers: {} }))?.body.toString(), 'new')
    const ms = performance.now() - started
    t.ok(ms < 100, `without waiting on Redis (${Math.round(ms)} ms)`)
    await redis.start()
  })
})
