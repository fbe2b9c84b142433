// The fleet fault budget with three faultline instances sharing a real redis-server: the cap holds
// for the fleet together (three independent buckets would allow three times as much), leases are
// batched (no Redis call per request), and with Redis down only leased tokens are spent.
// (Instances in one test process, as in levels.test.ts.)
import t from 'tap'
import { Redis } from 'ioredis'
import { fetchText, needTool, route, startProxy, startUpstream, type StartedProxy } from '../helpers.js'
import { startRedis } from '../redis-server.js'
import { until } from './fleet.js'

const { path: redisServer, skip } = needTool('redis-server')

/** Sends `n` requests round-robin over the fleet, 3 at a time; returns how many were injected (503). */
async function roundRobin (fleet: StartedProxy[], n: number): Promise<{ injected: number, ok: number }> {
  let next = 0
  let injected = 0
  let ok = 0
  await Promise.all(Array.from({ length: 3 }, async () => {
    while (next < n) {
      const proxy = fleet[next++ % fleet.length] as StartedProxy
      const status = (await fetchText(proxy.url + '/svc/x', { timeoutMs: 3000 })).status
      if (status === 503) injected++
      else if (status === 200) ok++
    }
  }))
  return { injected, ok }
}

async function evalCalls (admin: Redis): Promise<number> {
  const info = await admin.info('commandstats')
  return [...info.matchAll(/cmdstat_(?:eval|evalsha):calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0)
}

t.test('chaos.fleetBudget caps injected faults across the fleet', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const admin = new Redis(redis.url)
  admin.on('error', () => {})
  t.teardown(() => { admin.disconnect() })
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  // 60 a minute: a bucket of 10 (ten seconds' worth), refilled at 1 a second, leased 2 at a time.
  const config = (id: string): Parameters<typeof startProxy>[1] => ({
    log: { level: 'silent' },
    fleet: { redis: { url: redis.url, maxReconnectDelayMs: 200 }, instanceId: id },
    routes: [route('svc', '/svc', upstream.url, { chaos: { enabled: true, fleetBudget: { perMinute: 60, batch: 2 }, faults: [{ kind: 'abort', status: 503, probability: 1 }] } })]
  })
  const fleet = await Promise.all(['b0', 'b1', 'b2'].map(async (id) => await startProxy(t, config(id))))
  // Connections open lazily: the cap is what is measured here, not a loaded machine's connect time.
  t.ok(await until(async () => fleet.every((p) => p.faultline.fleet?.isUp() === true), 5000), 'every replica reached Redis')
  await new Promise((resolve) => setTimeout(resolve, 150))
  const callsBefore = await evalCalls(admin)
  const t0 = performance.now()
  const first = await roundRobin(fleet, 150)
  const seconds = (performance.now() - t0) / 1000
  // The bucket (10) plus what refilled meanwhile (1/s), plus one batch in flight per replica.
  const cap = 10 + Math.ceil(seconds) + 3 * 2
  t.ok(first.injected >= 5, `faults were injected (${first.injected})`)
  t.ok(first.injected <= cap, `at most ${cap} injected across the fleet in ${seconds.toFixed(1)} s: ${first.injected} (three separate buckets would allow 30+)`)
  t.equal(first.injected + first.ok, 150, 'every other request went through to the upstream')
  const calls = await evalCalls(admin) - callsBefore
  t.ok(calls < 60, `leases are batched and an empty bucket is not asked on every fault: ${calls} Redis calls for 150 requests`)
  const denied = (await fetchText(fleet[0]!.adminUrl + '/metrics')).body
  t.match(denied, /faultline_fleet_budget_denied_total\{route="svc",reason="exhausted"\} [1-9]/, 'denials are counted')

  // Redis down: only tokens already leased are spent, then nothing is injected on the route.
  await redis.stop()
  t.ok(await until(async () => !(fleet.every((p) => p.faultline.fleet?.isUp() === true)), 3000))
  const down = await roundRobin(fleet, 60)
  t.ok(down.injected <= 3 * 2, `Redis down: at most the leased batches (${down.injected})`)
  t.equal(down.ok + down.injected, 60, 'requests keep flowing')
  const metrics = (await fetchText(fleet[1]!.adminUrl + '/metrics')).body
  t.match(metrics, /faultline_fleet_budget_denied_total\{route="svc",reason="unreachable"\} [1-9]/, 'the metric says why')
})

t.test('without fleet: the same cap on this instance alone', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    log: { level: 'silent' },
    routes: [route('svc', '/svc', upstream.url, { chaos: { enabled: true, fleetBudget: { perMinute: 30 }, faults: [{ kind: 'abort', status: 503, probability: 1 }] } })]
  })
  const result = await roundRobin([proxy], 40)
  t.ok(result.injected >= 5 && result.injected <= 7, `a bucket of 5 plus a little refill: ${result.injected} injected`)
  t.equal(result.ok, 40 - result.injected)
})
