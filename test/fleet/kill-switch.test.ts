// The fleet kill switch across three real faultline processes and a real redis-server:
// off on one stops all three within a second (pub/sub), also after a Redis restart (resubscribe);
// a change made while Redis is down reaches the others when it is back (poll); a lost "off" is
// written back; the `faultline chaos` command does what POST /chaos/off does.
import t from 'tap'
import { CommanderError } from 'commander'
import { Redis } from 'ioredis'
import { buildProgram } from '../../src/cli.js'
import { fetchText, needTool, startUpstream } from '../helpers.js'
import { startRedis } from '../redis-server.js'
import { startFleet, until, type Replica } from './fleet.js'

const { path: redisServer, skip } = needTool('redis-server')

/** 503 while the always-on abort fault injects, 200 from the upstream once chaos is off. */
async function injecting (replica: Replica): Promise<boolean> {
  return (await fetchText(replica.url + '/svc/x', { timeoutMs: 3000 })).status === 503
}

/**
 * When the replica applied the fleet's switch (its own log line's time, so a
 * loaded test machine's HTTP round trips do not count), after `since` (epoch ms).
 */
function appliedAt (replica: Replica, state: 'on' | 'off', since: number): number | undefined {
  for (const line of replica.output().split('\n')) {
    if (!line.includes(`kill switch ${state} by the fleet`)) continue
    const time = Date.parse((JSON.parse(line) as { time: string }).time)
    if (time >= since) return time
  }
  return undefined
}

/** Waits until each of `replicas` logged that it applied `state`; the slowest delay after `since`, or Infinity. */
async function spread (replicas: Replica[], state: 'on' | 'off', since: number, ms = 3000): Promise<number> {
  const ok = await until(() => replicas.every((r) => appliedAt(r, state, since) !== undefined), ms, 20)
  return ok ? Math.max(...replicas.map((r) => (appliedAt(r, state, since) as number) - since)) : Infinity
}

async function cli (args: string[]): Promise<{ code: number, out: string }> {
  let out = ''
  const program = buildProgram({ writeOut: (s) => { out += s }, writeErr: (s) => { out += s } })
  try {
    await program.parseAsync(args, { from: 'user' })
    return { code: 0, out }
  } catch (err) {
    if (err instanceof CommanderError) return { code: err.exitCode, out }
    throw err
  }
}

const allUp = async (fleet: Replica[], connection: string): Promise<boolean> =>
  (await Promise.all(fleet.map(async (r) => await r.metric('faultline_fleet_redis_up', { connection })))).every((v) => v === 1)

t.test('the fleet kill switch: one replica, the CLI, Redis restarts and outages', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const upstream = await startUpstream(t, (_req, res) => { res.end('real') })
  const fleet = await startFleet(t, {
    redisUrl: redis.url,
    routes: `  - name: svc\n    match: { pathPrefix: /svc }\n    upstream: { url: "${upstream.url}" }\n    chaos: { enabled: true, faults: [{ kind: abort, status: 503, probability: 1 }] }\n`
  })
  const [a, b, c] = fleet as [Replica, Replica, Replica]
  const check = new Redis(redis.url)
  check.on('error', () => {})
  t.teardown(() => { check.disconnect() })
  t.ok(await until(async () => await allUp(fleet, 'subscriber'), 5000), 'every replica subscribed')
  t.same(await Promise.all(fleet.map(injecting)), [true, true, true], 'all three inject')

  let since = Date.now()
  t.same((await a.admin('POST', '/chaos/off')).json, { killSwitch: 'off', changed: true, fleet: 'told' })
  let ms = await spread([b, c], 'off', since)
  t.ok(ms < 1000, `POST /chaos/off on one: the other two stop within 1 s (${ms} ms)`)
  t.same(await Promise.all(fleet.map(injecting)), [false, false, false], 'none injects')
  for (const r of fleet) t.equal((await r.admin('GET', '/chaos')).json.killSwitch, 'off', `${r.id} reports the switch off`)

  since = Date.now()
  t.equal((await b.admin('POST', '/chaos/on')).json.fleet, 'told')
  ms = await spread([a, c], 'on', since)
  t.ok(ms < 1000, `on from another replica: all resume within 1 s (${ms} ms)`)
  t.same(await Promise.all(fleet.map(injecting)), [true, true, true])

  // Redis restarts empty: every replica reconnects and subscribes again on its own.
  await redis.stop()
  await redis.start()
  t.ok(await until(async () => await allUp(fleet, 'subscriber'), 5000), 'every replica back on the restarted Redis')
  t.same(await Promise.all(fleet.map(injecting)), [true, true, true], 'an empty Redis changes nothing')
  since = Date.now()
  t.equal((await c.admin('POST', '/chaos/off')).json.fleet, 'told')
  ms = await spread([a, b], 'off', since)
  t.ok(ms < 1000, `after the restart, off on a third replica stops the others within 1 s (${ms} ms)`)

  // Redis restarts again and loses the "off": the replicas, all off, write it back; nothing resumes.
  await redis.stop()
  await redis.start()
  t.ok(await until(async () => JSON.parse(await check.get('faultline:chaos:switch').catch(() => null) ?? '{}').state === 'off', 3000), 'a lost "off" is written back by a replica that is off')
  t.same(await Promise.all(fleet.map(injecting)), [false, false, false], 'nothing resumed')

  // The CLI: the same change from outside the fleet. Its count is PUBLISH's, so first every replica's SUBSCRIBE
  // must be through after the restart (ioredis sends it on 'ready', and the ack comes after: 2 of 3 was seen once).
  const listening = async (): Promise<number> => {
    const reply = await check.call('PUBSUB', 'NUMSUB', 'faultline:chaos:switch').catch(() => []) as Array<string | number>
    return Number(reply[1] ?? 0)
  }
  t.ok(await until(async () => await listening() === 3, 5000), 'every replica subscribed again')
  since = Date.now()
  const on = await cli(['chaos', 'on', '--redis', redis.url])
  t.equal(on.code, 0, on.out)
  t.match(on.out, /kill switch on for the fleet \(3 replicas listening/)
  ms = await spread(fleet, 'on', since)
  t.ok(ms < 1000, `faultline chaos on: all three resume within 1 s (${ms} ms)`)

  // A change made while Redis is down: this replica stops at once, the others when Redis is back.
  await redis.stop()
  t.ok(await until(async () => !(await allUp(fleet, 'commands')), 3000), 'the replicas notice Redis is gone')
  t.same((await a.admin('POST', '/chaos/off')).json, { killSwitch: 'off', changed: true, fleet: 'pending' }, 'said: only here until Redis is back')
  t.same(await Promise.all(fleet.map(injecting)), [false, true, true], 'this replica stops; the others cannot know yet')
  t.ok(await until(() => a.output().includes('other replicas follow when it is back'), 2000), 'and logs that the others follow when Redis is back')
  await redis.start()
  since = Date.now()
  ms = await spread([b, c], 'off', since, 5000)
  t.ok(ms < 3000, `Redis back: the others stop (${ms} ms after it answered)`)
  t.same(await Promise.all(fleet.map(injecting)), [false, false, false])

  await redis.stop()
  const down = await cli(['chaos', 'on', '--redis', redis.url])
  t.equal(down.code, 1, 'Redis unreachable: exit 1')
  t.match(down.out, /cannot set the fleet kill switch at redis:\/\/127\.0\.0\.1:\d+/)
  const usage = await cli(['chaos', 'off'])
  t.equal(usage.code, 2, 'no Redis given: usage error')
  t.match(usage.out, /pass --redis URL or --config FILE/)
  const bad = await cli(['chaos', 'off', '--redis', 'redis://:secret@127.0.0.1:1'])
  t.equal(bad.code, 2)
  t.match(bad.out, /no password in the Redis URL/)
})
