// One chaos level per route across a fleet of three faultline instances sharing a real redis-server:
// one evaluates (lease), the others adopt its level even with no traffic of their own; a breach seen
// by a replica that does not evaluate halts the route on all three; Redis down: each evaluates alone.
// (Instances in one test process, each with its own listeners and Redis connections: process
// isolation is covered by kill-switch.test.ts, and three tsx start-ups per file cost CI too much.)
import t from 'tap'
import { fetchText, needTool, route, startProxy, startUpstream, type StartedProxy } from '../helpers.js'
import { startRedis } from '../redis-server.js'
import { intentOf, sleep, traffic, until } from './fleet.js'

const { path: redisServer, skip } = needTool('redis-server')

t.test('one level per route across the fleet', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const config = (id: string): Parameters<typeof startProxy>[1] => ({
    log: { level: 'silent' },
    controller: { evaluationMs: 200, minRequests: 5, holdWindows: 1, cooldownMs: 3000 },
    fleet: { redis: { url: redis.url, maxReconnectDelayMs: 200 }, instanceId: id },
    routes: [
      // Never breaches (every error and any p99 under 10 s is within its SLO): the level climbs.
      route('steady', '/steady', upstream.url, {
        resilience: { timeoutMs: 300 },
        intent: { criticality: 'optional', protects: 'availability', sensitivity: 0, slo: { errorRate: 1, p99Ms: 10_000 } },
        chaos: { enabled: true, budget: 0.2 }
      }),
      // One failure in a window breaks it.
      route('fragile', '/fragile', upstream.url, {
        resilience: { timeoutMs: 300 },
        intent: { criticality: 'optional', protects: 'availability', sensitivity: 0, slo: { errorRate: 0.01, p99Ms: 10_000 } },
        chaos: { enabled: true, budget: 1 }
      }),
      route('plain', '/plain', upstream.url)
    ]
  })
  const fleet = await Promise.all(['r0', 'r1', 'r2'].map(async (id) => await startProxy(t, config(id))))

  // Wait for the election: one evaluates each route, the others follow.
  const roles = async (name: string): Promise<string[]> => await Promise.all(fleet.map(async (p) => (await intentOf(p, name)).fleet?.role ?? 'none'))
  t.ok(await until(async () => (await roles('steady')).sort().join() === 'evaluates,follows,follows', 3000), 'steady: one replica evaluates, two follow')
  t.ok(await until(async () => (await roles('fragile')).sort().join() === 'evaluates,follows,follows', 3000), 'fragile: likewise')
  const steadyRoles = await roles('steady')
  const evaluator = fleet[steadyRoles.indexOf('evaluates')] as StartedProxy
  const views = await Promise.all(fleet.map(async (p) => await intentOf(p, 'steady')))
  t.same(views.map((v) => v.scope), ['fleet', 'fleet', 'fleet'], '/routes says the figures are the fleet\'s')
  t.same(new Set(views.map((v) => v.fleet?.evaluatedBy)).size, 1, 'all name the same evaluating replica')
  const start = views[0]?.level ?? 0

  // Traffic to the evaluating replica only: the followers see none, yet take its level.
  // Until the level climbs (bounded: a loaded machine may leave windows short of minRequests).
  for (let i = 0; i < 8 && (await intentOf(evaluator, 'steady')).level <= start + 0.3; i++) await traffic(evaluator, '/steady/x', 500)
  await sleep(300)
  const levels = await Promise.all(fleet.map(async (p) => (await intentOf(p, 'steady')).level))
  t.ok((levels[0] ?? 0) > start, `the level climbed (${start} -> ${levels[0]})`)
  t.same(new Set(levels).size, 1, `one level on all three: ${levels.join(', ')}`)

  // A breach seen by a replica that does not evaluate halts the route on every replica.
  const fragileRoles = await roles('fragile')
  const follower = fleet[fragileRoles.indexOf('follows')] as StartedProxy
  t.same((await Promise.all(fleet.map(async (p) => (await intentOf(p, 'fragile')).controller.halted))), [false, false, false], 'fragile runs')
  let halted = false
  for (let i = 0; i < 6 && !halted; i++) {
    await traffic(follower, '/fragile/x', 300)
    halted = (await intentOf(follower, 'fragile')).controller.halted
  }
  t.ok(halted, 'the follower saw the breach and halted')
  t.ok(await until(async () => (await Promise.all(fleet.map(async (p) => (await intentOf(p, 'fragile')).controller.halted))).every(Boolean), 1000),
    'halted on all three within a second')
  const after = await Promise.all(fleet.map(async (p) => await intentOf(p, 'fragile')))
  t.same(after.map((v) => v.level), [0, 0, 0], 'level 0 everywhere')
  // The halt travels on its own key at once; the breach and its disabling level come with the evaluator's
  // next state message (or read), a window later on a loaded machine.
  t.ok(await until(async () => (await Promise.all(fleet.map(async (p) => await intentOf(p, 'fragile'))))
    .every((v) => v.controller.disablingLevel !== undefined && v.controller.breaches >= 1), 3000), 'every replica reports the breach and its disabling level')
  t.equal((await intentOf(evaluator, 'steady')).controller.halted, false, 'another route is not halted')

  // Redis down: requests keep flowing, every replica evaluates alone, and the metric says so.
  await redis.stop()
  t.ok(await until(async () => (await roles('steady')).join() === 'local,local,local', 3000), 'every replica evaluates on its own')
  const metrics = (await fetchText(evaluator.adminUrl + '/metrics')).body
  t.match(metrics, /faultline_fleet_route_role\{route="steady",role="local"\} 1/)
  t.match(metrics, /faultline_fleet_redis_up\{connection="commands"\} 0/)
  const answers = await Promise.all(fleet.map(async (p) => (await fetchText(p.url + '/plain/x')).status))
  t.same(answers, [200, 200, 200], 'requests keep flowing')
  await redis.start()
  t.ok(await until(async () => (await roles('steady')).sort().join() === 'evaluates,follows,follows', 3000), 'Redis back: one evaluates again')
})
