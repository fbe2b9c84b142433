/**
 * The Redis Streams store against a real redis-server: the store contract,
 * a dead replica's entries taken over (XAUTOCLAIM), and two faultline
 * instances sharing one queue with every entry delivered once.
 */
import t, { type Test } from 'tap'
import { fetchText, needTool, startProxy } from '../helpers.js'
import { startRedis, type RedisServer } from '../redis-server.js'
import { FleetRedis } from '../../src/fleet/redis.js'
import { fleetSchema } from '../../src/fleet/schema.js'
import { Metrics } from '../../src/metrics/metrics.js'
import { createLogger } from '../../src/log.js'
import { RedisStreamStore } from '../../src/deferral/redis-store.js'
import { deferralStoreTests, deferral } from './store-contract.js'
import { admin, deferConfig, flakyUpstream, until } from './fixtures.js'

const tool = needTool('redis-server')
const skip = tool.skip

let server: RedisServer | undefined
let namespaces = 0

/** The file's one server (started by the parent test). */
async function redisServer (_t: Test): Promise<RedisServer> {
  if (server === undefined) throw new Error('redis-server not started')
  return server
}

/** A store in a namespace of its own (a fresh key prefix), as replica `consumer`. */
async function openStore (t: Test, prefix: string, consumer: string, claimIdleMs = 30_000): Promise<RedisStreamStore> {
  const redis = await redisServer(t)
  const fleet = new FleetRedis(fleetSchema.parse({ redis: { url: redis.url, keyPrefix: prefix }, instanceId: consumer }), { logger: createLogger('silent'), metrics: new Metrics({ defaultMetrics: false }) })
  t.teardown(async () => { await fleet.close() })
  const store = new RedisStreamStore({ fleet: () => fleet, consumer, retainMs: 60_000, claimIdleMs })
  t.ok(await store.ready(2_000), 'connected')
  prefixes.set(store, prefix)
  return store
}

const prefixes = new WeakMap<object, string>()

t.test('redis streams', { skip }, async (t) => {
  // One server for the file: started by the first test, torn down with this parent.
  server = await startRedis(t, tool.path!)

  deferralStoreTests(t, 'redis', {
    make: async (t) => await openStore(t, `dt${++namespaces}:`, 'r1'),
    reopen: async (t, store) => await openStore(t, prefixes.get(store)!, 'r1')
  })

  t.test('a dead replica\'s entries are taken over once idle for claimIdleMs', async (t) => {
    const prefix = `dt${++namespaces}:`
    const a = await openStore(t, prefix, 'a', 150)
    const b = await openStore(t, prefix, 'b', 150)
    const e1 = (await a.accept(deferral({ key: 'one' }))).entry
    const e2 = (await a.accept(deferral({ key: 'two' }))).entry
    t.equal((await a.next('payments', Date.now())).entry?.id, e1.id, 'replica a holds the first')
    t.equal((await b.next('payments', Date.now())).entry?.id, e2.id, 'b gets the second, not a\'s')
    await b.record(e2.id, 1, { kind: 'delivered', result: { status: 200, headers: {}, body: '', truncated: false, at: Date.now() } })
    // a dies holding e1 (never acknowledged).
    t.equal((await b.next('payments', Date.now())).entry, undefined, 'not yet: a may still be delivering it')
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.equal((await b.next('payments', Date.now())).entry?.id, e1.id, 'taken over after claimIdleMs')
    t.ok(await b.record(e1.id, 1, { kind: 'delivered', result: { status: 200, headers: {}, body: '', truncated: false, at: Date.now() } }))
    t.equal((await a.next('payments', Date.now())).entry, undefined, 'a, back, finds nothing left to deliver')
  })

  t.test('two faultline instances share one queue: every entry delivered once', async (t) => {
    const redis = await redisServer(t)
    const upstream = await flakyUpstream(t)
    const keyPrefix = `two${++namespaces}:`
    const config = (id: string): ReturnType<typeof deferConfig> => ({
      ...deferConfig('', upstream.url, { backoff: { baseMs: 20, maxMs: 60 } }),
      deferral: { store: 'redis', claimIdleMs: 500 },
      fleet: { redis: { url: redis.url, keyPrefix }, instanceId: id }
    })
    const p1 = await startProxy(t, config('one'))
    const p2 = await startProxy(t, config('two'))
    const ids: string[] = []
    for (let i = 0; i < 10; i++) {
      const proxy = i % 2 === 0 ? p1 : p2
      const res = await fetchText(`${proxy.url}/pay/${i}`, { method: 'POST', headers: { 'idempotency-key': `w${i}` }, body: `{"n":${i}}` })
      t.equal(res.status, 202)
      ids.push(JSON.parse(res.body).id as string)
    }
    // The same key through the other instance: the same entry.
    const again = await fetchText(`${p2.url}/pay/0`, { method: 'POST', headers: { 'idempotency-key': 'w0' }, body: '{"n":0}' })
    t.equal(JSON.parse(again.body).id, ids[0], 'one queue: the same key is one entry fleet-wide')
    await upstream.up()
    t.ok(await until(() => upstream.received.length >= 10, 8_000), 'all delivered')
    await new Promise((resolve) => setTimeout(resolve, 300))
    const keys = upstream.received.map((r) => r.key).sort()
    t.same(keys, Array.from({ length: 10 }, (_, i) => `w${i}`).sort(), 'each entry delivered exactly once')
    const seen = (await admin(p1.adminUrl, `/deferrals/${ids[9]!}`)).json()
    t.equal(seen.state, 'delivered', 'either instance shows any entry')
  })
})
