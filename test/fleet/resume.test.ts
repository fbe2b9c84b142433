// A resume ends the fleet's guardrail halt, not only the local one: three faultline instances on a real
// redis-server. POST /routes/:route/intent/resume on one replica resumes the route on all three within a
// second (message) and the halt key is gone, so no replica's next window halts it again; a halt key
// that disappears without a message (a missed message) resumes every replica at its next window.
// (Instances in one test process, as levels.test.ts.)
import t from 'tap'
import { Redis } from 'ioredis'
import { fetchText, needTool, route, startProxy, startUpstream, type StartedProxy } from '../helpers.js'
import { startRedis } from '../redis-server.js'
import { intentOf, sleep, traffic, until } from './fleet.js'

const { path: redisServer, skip } = needTool('redis-server')
const TOKEN = 'resume-token-0123456789abcdef'

t.test('a resume on one replica ends the fleet\'s halt on every replica', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const check = new Redis(redis.url)
  check.on('error', () => {})
  t.teardown(() => { check.disconnect() })
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  // One failure in a window breaks it; a long cool-down, so only a resume (or a lost key) ends the halt.
  const fragile = (name: string): ReturnType<typeof route> => route(name, `/${name}`, upstream.url, {
    resilience: { timeoutMs: 300 },
    intent: { criticality: 'optional', protects: 'availability', sensitivity: 0, slo: { errorRate: 0.01, p99Ms: 10_000 } },
    chaos: { enabled: true, budget: 1 }
  })
  const config = (id: string): Parameters<typeof startProxy>[1] => ({
    log: { level: 'warn' },
    admin: { token: TOKEN },
    controller: { evaluationMs: 200, minRequests: 5, holdWindows: 1, cooldownMs: 60_000 },
    fleet: { redis: { url: redis.url, maxReconnectDelayMs: 200 }, instanceId: id },
    routes: [fragile('viaadmin'), fragile('viakey')]
  })
  const fleet = await Promise.all(['r0', 'r1', 'r2'].map(async (id) => await startProxy(t, config(id))))
  const halted = async (name: string): Promise<boolean[]> => await Promise.all(fleet.map(async (p) => (await intentOf(p, name)).controller.halted))
  const roles = async (name: string): Promise<string[]> => await Promise.all(fleet.map(async (p) => (await intentOf(p, name)).fleet?.role ?? 'none'))

  /** Traffic to one replica until the route halts there, then waits for the halt on all three. */
  const haltFleet = async (name: string, via: StartedProxy): Promise<void> => {
    t.ok(await until(async () => (await roles(name)).sort().join() === 'evaluates,follows,follows', 3000), `${name}: one replica evaluates, two follow`)
    for (let i = 0; i < 8 && !(await intentOf(via, name)).controller.halted; i++) await traffic(via, `/${name}/x`, 300)
    t.ok(await until(async () => (await halted(name)).every(Boolean), 2000), `${name}: halted on all three`)
    t.ok(await check.exists(`faultline:route:${name}:halt`), `${name}: the fleet's halt key is set`)
  }

  // Halted by r1's traffic, resumed on r2 through the admin API.
  const [r0, r1, r2] = fleet as [StartedProxy, StartedProxy, StartedProxy]
  await haltFleet('viaadmin', r1)
  const resumed = await fetchText(`${r2.adminUrl}/routes/viaadmin/intent/resume`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(resumed.status, 200, resumed.body)
  t.ok(await until(async () => (await halted('viaadmin')).every((h) => !h), 1000), 'resumed on all three within a second')
  t.equal(await check.exists('faultline:route:viaadmin:halt'), 0, 'the fleet\'s halt key is gone')
  // Several windows later no replica halted it again from the fleet's key (the route injects nothing now:
  // the breach lowered its cap, so no new breach can come from this route's own chaos).
  await sleep(1000)
  t.same(await halted('viaadmin'), [false, false, false], 'still running on all three after five windows')
  const logged = (p: StartedProxy): boolean => p.logs.lines.some((l) => String(l.msg).includes('resumed fleet-wide by an operator on another replica'))
  t.ok(logged(r0) && logged(r1), 'the other two log that an operator resumed the fleet')

  // A halt key that goes away without a message (a message missed): every replica resumes at its next window.
  await haltFleet('viakey', r0)
  await check.del('faultline:route:viakey:halt')
  t.ok(await until(async () => (await halted('viakey')).every((h) => !h), 1500), 'the missing key resumes all three within a few windows')
  t.equal((await intentOf(r1, 'viaadmin')).controller.halted, false, 'the other route is untouched')
})
