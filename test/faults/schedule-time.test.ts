/**
 * Time schedules with an injected clock (no sleeps): windows relative to
 * when the fault was armed, `until`, `ttl` (removal with an audit line and
 * a metric), reset on the admin API, and a reload restarting from the file.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Faultline } from '../../src/faultline.js'
import { parseConfig } from '../../src/config/load.js'
import { createLogger } from '../../src/log.js'
import { LogCapture, fetchText, route, scrape, startProxy, sumOf, type StartedProxy, type Teardown } from '../helpers.js'
import { TOKEN, auth, eventually, jsonUpstream } from './fixtures.js'

class TestClock {
  now = Date.parse('2030-01-01T00:00:00Z')
  readonly read = (): number => this.now
  advance (ms: number): void { this.now += ms }
}

async function clockedProxy (t: Teardown, clock: TestClock, upstreamUrl: string, chaos: Record<string, unknown>, configFile?: string): Promise<StartedProxy> {
  const config = { admin: { token: TOKEN }, routes: [route('svc', '/svc', upstreamUrl, { chaos: { enabled: true, exposeHeaders: true, ...chaos } })] }
  if (configFile !== undefined) await writeFile(configFile, JSON.stringify(config))
  const parsed = parseConfig({ ...config, listen: { host: '127.0.0.1', port: 0 }, admin: { ...config.admin, host: '127.0.0.1', port: 0 } }, 'test-config')
  const logs = new LogCapture()
  const faultline = await Faultline.start(parsed, { configFile, logger: createLogger('info', logs), clock: clock.read })
  t.teardown(async () => { await faultline.close() })
  return { faultline, url: `http://127.0.0.1:${faultline.proxyPort}`, adminUrl: `http://127.0.0.1:${faultline.adminPort}`, logs }
}

async function admin (proxy: StartedProxy, method: string, path: string, body?: unknown): Promise<{ status: number, body: any }> {
  const res = await fetchText(`${proxy.adminUrl}${path}`, {
    method,
    headers: body === undefined ? auth : { ...auth, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, body: res.body === '' ? undefined : JSON.parse(res.body) }
}

const status = async (proxy: StartedProxy): Promise<number> => (await fetchText(`${proxy.url}/svc/x`)).status

t.test('a window opens startAfter after the route loaded and closes after duration; GET shows where it stands', async (t) => {
  const clock = new TestClock()
  const upstream = await jsonUpstream(t)
  const proxy = await clockedProxy(t, clock, upstream.url, { faults: [{ kind: 'abort', name: 'outage', status: 503, window: { startAfter: '10s', duration: '30s' } }] })
  t.equal(await status(proxy), 200, 'before the window')
  t.match((await admin(proxy, 'GET', '/chaos')).body.routes[0].faults[0].schedule, { window: { open: false, opensInMs: 10_000, closesInMs: 40_000 } })
  clock.advance(9_999)
  t.equal(await status(proxy), 200)
  clock.advance(1)
  t.equal(await status(proxy), 503, 'the window opened')
  clock.advance(29_999)
  t.equal(await status(proxy), 503)
  t.match((await admin(proxy, 'GET', '/chaos')).body.routes[0].faults[0].schedule, { window: { open: true, opensInMs: 0, closesInMs: 1 }, admitted: 2 })
  clock.advance(1)
  t.equal(await status(proxy), 200, 'the window closed: the service recovers')
  t.equal((await admin(proxy, 'GET', '/chaos/routes/svc/faults')).body.faults.length, 1, 'a closed window leaves the fault listed')

  const reset = await admin(proxy, 'POST', '/chaos/routes/svc/faults/outage/reset')
  t.equal(reset.status, 200)
  t.match(reset.body.fault.schedule, { window: { open: false, opensInMs: 10_000 } }, 'reset restarts the window from now')
  clock.advance(10_000)
  t.equal(await status(proxy), 503)
})

t.test('a window without startAfter opens at once; one without duration never closes', async (t) => {
  const clock = new TestClock()
  const upstream = await jsonUpstream(t)
  const proxy = await clockedProxy(t, clock, upstream.url, {
    faults: [
      { kind: 'abort', name: 'now', status: 503, window: { duration: 1_000 }, match: { path: '/svc/now' } },
      { kind: 'abort', name: 'later', status: 502, window: { startAfter: 1_000 }, match: { path: '/svc/later' } }
    ]
  })
  const at = async (path: string): Promise<number> => (await fetchText(`${proxy.url}/svc/${path}`)).status
  t.same([await at('now'), await at('later')], [503, 200], 'at once: the first window is open, the second not yet')
  const faults = (await admin(proxy, 'GET', '/chaos/routes/svc')).body.faults
  t.same(faults[0].schedule.window, { open: true, opensInMs: 0, closesInMs: 1_000 })
  t.same(faults[1].schedule.window, { open: false, opensInMs: 1_000, closesInMs: null }, 'no duration: it never closes')
  clock.advance(1_500)
  t.same([await at('now'), await at('later')], [200, 502], '1.5 s later: the first closed, the second opened')
  const later = (await admin(proxy, 'GET', '/chaos/routes/svc')).body.faults
  t.same(later[0].schedule.window, { open: false, opensInMs: 0, closesInMs: 0 }, 'closed: no time left, never negative')
  t.same(later[0].schedule.admitted, 1)
  clock.advance(365 * 24 * 3_600_000)
  t.equal(await at('later'), 502, 'a year later it is still open')
})

t.test('with both ttl and until, the earlier one ends the fault', async (t) => {
  const clock = new TestClock()
  const upstream = await jsonUpstream(t)
  const proxy = await clockedProxy(t, clock, upstream.url, {})
  const inMs = (ms: number): string => new Date(clock.now + ms).toISOString()
  const add = async (fault: Record<string, unknown>): Promise<number> =>
    (await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', ...fault })).status
  const ids = async (): Promise<string[]> => (await admin(proxy, 'GET', '/chaos/routes/svc/faults')).body.faults.map((f: any) => f.id)
  t.equal(await add({ name: 'until-first', status: 503, ttl: 10_000, until: inMs(5_000) }), 201)
  t.equal(await add({ name: 'ttl-first', status: 502, ttl: 3_000, until: inMs(8_000) }), 201)
  const faults = (await admin(proxy, 'GET', '/chaos/routes/svc/faults')).body.faults
  t.same(faults.map((f: any) => [f.id, f.schedule.expiresInMs]), [['until-first', 5_000], ['ttl-first', 3_000]])
  t.equal(await status(proxy), 503)
  clock.advance(3_000)
  t.same(await ids(), ['until-first'], 'the ttl of 3 s ended the second')
  clock.advance(2_000)
  t.same(await ids(), [], 'the until in 5 s ended the first, before its ttl of 10 s')
  t.equal(await status(proxy), 200)
})

t.test('a window combines with first: counting starts when the window opens', async (t) => {
  const clock = new TestClock()
  const upstream = await jsonUpstream(t)
  const proxy = await clockedProxy(t, clock, upstream.url, { faults: [{ kind: 'abort', status: 503, first: 2, window: { startAfter: 5_000 } }] })
  t.equal(await status(proxy), 200)
  t.equal(await status(proxy), 200)
  clock.advance(5_000)
  t.same([await status(proxy), await status(proxy), await status(proxy)], [503, 503, 200])
  t.match((await admin(proxy, 'GET', '/chaos/routes/svc')).body.faults[0].schedule, { counted: 3, remaining: 0 })
})

t.test('ttl and until remove a runtime fault, with an audit line and a metric; a past until is refused', async (t) => {
  const clock = new TestClock()
  const upstream = await jsonUpstream(t)
  const proxy = await clockedProxy(t, clock, upstream.url, {})

  const added = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', name: 'brief', status: 503, ttl: '1m' })
  t.equal(added.status, 201)
  t.equal(await status(proxy), 503)
  t.match((await admin(proxy, 'GET', '/chaos')).body.routes[0].faults[0], { id: 'brief', ttl: 60_000, schedule: { expiresAt: '2030-01-01T00:01:00.000Z', expiresInMs: 60_000 } })
  clock.advance(59_999)
  t.equal(await status(proxy), 503)
  clock.advance(1)
  t.same((await admin(proxy, 'GET', '/chaos')).body.routes[0].faults, [], 'gone at its ttl, seen by a read with no traffic')
  t.equal(await status(proxy), 200)
  const line = proxy.logs.lines.find((l) => l.audit === 'chaos.fault.expire')
  t.match(line, { audit: 'chaos.fault.expire', route: 'svc', id: 'brief', fault: 'brief', ttl: 60_000 }, 'an audit line says so')
  t.equal(sumOf(await scrape(proxy), 'faultline_faults_expired_total', { route: 'svc', fault: 'brief' }), 1, 'and a metric counts it')

  const until = new Date(clock.now + 5_000).toISOString()
  t.equal((await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', status: 502, until })).status, 201)
  t.equal(await status(proxy), 502)
  clock.advance(5_000)
  t.equal(await status(proxy), 200, 'a request at its until no longer gets it')
  t.same((await admin(proxy, 'GET', '/chaos/routes/svc/faults')).body.faults, [])
  t.equal(sumOf(await scrape(proxy), 'faultline_faults_expired_total', { route: 'svc', fault: 'abort' }), 1)

  const past = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', until: '2029-12-31T23:00:00Z' })
  t.equal(past.status, 400)
  t.match(past.body, { error: 'invalid_fault', message: /until: expected a time in the future/ })
  const noZone = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', until: 'tomorrow' })
  t.equal(noZone.status, 400)
  t.match(noZone.body.message, /^until: /)

  t.equal((await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', name: 'again', ttl: 1_000 })).status, 201)
  clock.advance(500)
  t.equal((await admin(proxy, 'POST', '/chaos/routes/svc/faults/again/reset')).status, 200)
  clock.advance(999)
  t.equal(await status(proxy), 503, 'a reset restarts the ttl too')
  clock.advance(1)
  t.equal(await status(proxy), 200)
})

t.test('reset: restarts the counts, behind the token, audited; 404 for a fault that does not exist', async (t) => {
  const clock = new TestClock()
  const upstream = await jsonUpstream(t)
  const proxy = await clockedProxy(t, clock, upstream.url, { faults: [{ kind: 'abort', name: 'two', status: 503, first: 2 }, { kind: 'latency', ms: 1 }] })
  t.same([await status(proxy), await status(proxy), await status(proxy)], [503, 503, 200])
  const refused = await fetchText(`${proxy.adminUrl}/chaos/routes/svc/faults/two/reset`, { method: 'POST' })
  t.equal(refused.status, 401)
  const reset = await admin(proxy, 'POST', '/chaos/routes/svc/faults/two/reset')
  t.equal(reset.status, 200)
  t.match(reset.body, { route: 'svc', fault: { id: 'two', schedule: { counted: 0, remaining: 2 } }, note: /reload/ })
  t.ok(proxy.logs.lines.some((l) => l.audit === 'chaos.fault.reset' && l.id === 'two'), 'audited')
  t.same([await status(proxy), await status(proxy), await status(proxy)], [503, 503, 200])
  t.equal((await admin(proxy, 'POST', '/chaos/routes/svc/faults/ghost/reset')).status, 404)
  t.equal((await admin(proxy, 'POST', '/chaos/routes/nope/faults/two/reset')).status, 404)
  t.equal((await admin(proxy, 'POST', '/chaos/routes/svc/faults/latency/reset')).status, 200, 'a fault without a schedule: nothing to restart, no error')
})

t.test('a reload restarts every schedule from the file', async (t) => {
  const clock = new TestClock()
  const upstream = await jsonUpstream(t)
  const file = join(t.testdir({}), 'faultline.json')
  const proxy = await clockedProxy(t, clock, upstream.url, { faults: [{ kind: 'abort', name: 'one', status: 503, first: 1, ttl: 10_000 }] }, file)
  t.same([await status(proxy), await status(proxy)], [503, 200])
  clock.advance(10_000)
  t.same((await admin(proxy, 'GET', '/chaos/routes/svc/faults')).body.faults, [], 'the ttl removed it')
  t.equal((await admin(proxy, 'POST', '/reload')).status, 200)
  t.match((await admin(proxy, 'GET', '/chaos/routes/svc/faults')).body.faults, [{ id: 'one', schedule: { counted: 0, remaining: 1, expiresInMs: 10_000 } }], 'back from the file, counts and ttl from zero')
  t.same([await status(proxy), await status(proxy)], [503, 200])
})

t.test('with the real clock, a timer removes an expired fault on time, with no traffic and no read', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await startProxy(t, { admin: { token: TOKEN }, routes: [route('svc', '/svc', upstream.url, { chaos: { enabled: true } })] })
  t.equal((await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', name: 'blip', ttl: 100 })).status, 201)
  t.ok(await eventually(() => proxy.logs.lines.some((l) => l.audit === 'chaos.fault.expire' && l.id === 'blip')), 'the audit line came by itself')
  t.same((await admin(proxy, 'GET', '/chaos/routes/svc/faults')).body.faults, [])
})
