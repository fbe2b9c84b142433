import t, { type Test } from 'tap'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { route, startProxy, startUpstream, type StartedProxy, type TestUpstream } from '../helpers.js'
import { TOKEN, auth, chaosProxy, jsonUpstream, see } from './fixtures.js'

async function admin (proxy: StartedProxy, method: string, path: string, body?: unknown, headers: Record<string, string> = auth): Promise<{ status: number, body: any }> {
  const res = await request(`${proxy.adminUrl}${path}`, {
    method: method as 'GET',
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await res.body.text()
  return { status: res.statusCode, body: text ? JSON.parse(text) : undefined }
}

t.test('faults are added, replaced and removed at runtime, behind the token, and audited', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { enabled: false })

  const refused = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort' }, {})
  t.equal(refused.status, 401, 'no token, no change')
  const wrong = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort' }, { authorization: 'Bearer not-the-token-at-all' })
  t.equal(wrong.status, 401)

  const invalid = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', probability: 2 })
  t.equal(invalid.status, 400)
  t.equal(invalid.body.error, 'invalid_fault')
  t.match(invalid.body.message, 'probability: expected a number <= 1, got 2')
  const unknownKind = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'meteor' })
  t.match(unknownKind.body.message, /^kind: expected one of "none" \| "latency" .* got "meteor"$/)
  t.equal((await admin(proxy, 'POST', '/chaos/routes/nope/faults', { kind: 'abort' })).status, 404)

  const added = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'abort', status: 503, name: 'outage' })
  t.equal(added.status, 201)
  t.match(added.body, { route: 'svc', fault: { id: 'outage', kind: 'abort', status: 503, probability: 1, at: 'upstream' }, enabled: false })
  t.match(added.body.note, /reload replaces/)
  t.equal((await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'latency', ms: 1, name: 'outage' })).status, 409, 'names are unique per route')
  t.equal((await see(`${proxy.url}/svc/x`)).status, 200, 'chaos is still off on the route')

  t.equal((await admin(proxy, 'PATCH', '/chaos/routes/svc', { enabled: true })).status, 200)
  t.equal((await see(`${proxy.url}/svc/x`)).status, 503, 'switched on at runtime: the stage joined the pipeline')

  const replaced = await admin(proxy, 'PUT', '/chaos/routes/svc/faults/outage', { kind: 'abort', status: 500, name: 'outage' })
  t.equal(replaced.status, 200)
  t.equal((await see(`${proxy.url}/svc/x`)).status, 500)
  t.equal((await admin(proxy, 'PUT', '/chaos/routes/svc/faults/ghost', { kind: 'abort' })).status, 404)

  const anon = await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'latency', ms: 1, at: 'client' })
  t.equal(anon.body.fault.id, 'latency', 'an unnamed fault\'s id is its kind, the same string as its metric label')
  const listed = await admin(proxy, 'GET', '/chaos/routes/svc/faults', undefined, {})
  t.same(listed.body.faults.map((f: { id: string }) => f.id), ['outage', 'latency'], 'reads need no token')

  const routes = await admin(proxy, 'GET', '/routes', undefined, {})
  t.match(routes.body.routes[0].state.faults, { enabled: true, killSwitch: 'on', faults: [{ id: 'outage', status: 500 }, { id: 'latency' }] }, 'GET /routes shows chaos state')

  t.equal((await admin(proxy, 'DELETE', '/chaos/routes/svc/faults/outage')).status, 200)
  t.equal((await admin(proxy, 'DELETE', '/chaos/routes/svc/faults/outage')).status, 404)
  t.equal((await see(`${proxy.url}/svc/x`)).status, 200, 'removed: no more aborts')

  t.equal((await admin(proxy, 'PATCH', '/chaos/routes/svc', { enabled: 'yes' })).status, 400)

  await proxy.faultline.close()
  const audits = proxy.logs.lines.filter((l) => typeof l.audit === 'string').map((l) => l.audit)
  t.same(audits, ['chaos.fault.add', 'chaos.route', 'chaos.fault.replace', 'chaos.fault.add', 'chaos.fault.remove'])
  t.notOk(proxy.logs.lines.some((l) => JSON.stringify(l).includes(TOKEN)), 'the token is never logged')
})

t.test('the kill switch stops all injection and releases an in-flight delay', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, {
    faults: [
      { kind: 'latency', ms: 8_000, match: { path: '/svc/slow' } },
      { kind: 'timeout', at: 'client', match: { path: '/svc/hang' } },
      { kind: 'abort', status: 503, match: { path: '/svc/abort' } }
    ]
  }, { resilience: { timeoutMs: 20_000 } })
  t.equal((await see(`${proxy.url}/svc/abort`)).status, 503)

  const slow = see(`${proxy.url}/svc/slow`)
  const hang = see(`${proxy.url}/svc/hang`)
  await new Promise((resolve) => setTimeout(resolve, 200))
  const off = await admin(proxy, 'POST', '/chaos/off')
  t.same(off.body, { killSwitch: 'off', changed: true })
  const [released, unhung] = await Promise.all([slow, hang])
  t.equal(released.status, 200, 'the delayed request went on to the upstream')
  t.ok(released.ms < 3_000, `released after ${Math.round(released.ms)} ms, not 8 s`)
  t.equal(unhung.status, 200, 'a client-side hang is released too')
  t.equal(upstream.hits(), 2)

  t.equal((await see(`${proxy.url}/svc/abort`)).status, 200, 'no injection while off')
  t.equal((await admin(proxy, 'GET', '/chaos', undefined, {})).body.killSwitch, 'off')
  t.equal((await admin(proxy, 'POST', '/chaos/off', undefined, {})).status, 401, 'the switch needs the token too')
  t.equal((await admin(proxy, 'POST', '/chaos/on')).status, 200)
  t.equal((await see(`${proxy.url}/svc/abort`)).status, 503, 'back on')
})

t.test('the kill switch lets a throttled body finish at full speed', async (t) => {
  const upstream = await jsonUpstream(t, { data: 'x'.repeat(1_000) })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: 100 }] })
  const slow = see(`${proxy.url}/svc/x`)
  await new Promise((resolve) => setTimeout(resolve, 200))
  await admin(proxy, 'POST', '/chaos/off')
  const res = await slow
  t.equal(res.body.toString(), JSON.stringify({ data: 'x'.repeat(1_000) }), 'the whole body')
  t.ok(res.ms < 3_000, `done after ${Math.round(res.ms)} ms, not 10 s`)
})

t.test('the kill switch frees a throttled body at once, even with its next slice a second away', async (t) => {
  const upstream = await jsonUpstream(t, { data: 'x'.repeat(100) })
  // 1 byte/s: one byte per slice, each due a second after the one before.
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: 1 }] })
  let firstByte: () => void = () => {}
  const started = new Promise<void>((resolve) => { firstByte = resolve })
  const slow = see(`${proxy.url}/svc/x`, { onData: () => { firstByte() } })
  await started
  t.equal((await admin(proxy, 'POST', '/chaos/off')).status, 200)
  const off = performance.now()
  const res = await slow
  const after = performance.now() - off
  t.equal(res.body.length, 111, 'the whole body')
  t.ok(after < 600, `the rest came ${Math.round(after)} ms after the switch, not when the next slice was due (about 1 s)`)
})

t.test('the kill switch between two chunks of a throttled body: nothing is waiting, the rest goes at full speed', async (t) => {
  let rest: () => void = () => {}
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2_000 })
    res.write('a'.repeat(1_000))
    rest = () => { res.end('b'.repeat(1_000)) }
  })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: 10_000 }] })
  let half: () => void = () => {}
  const firstChunk = new Promise<void>((resolve) => { half = resolve })
  const slow = see(`${proxy.url}/svc/x`, { onData: (n) => { if (n >= 1_000) half() } })
  await firstChunk
  t.equal((await admin(proxy, 'POST', '/chaos/off')).status, 200, 'switched off while the throttle waited for the upstream, not on a timer')
  rest()
  const res = await slow
  t.equal(res.status, 200)
  t.equal(res.body.toString(), 'a'.repeat(1_000) + 'b'.repeat(1_000), 'the whole body')
  t.ok(res.ms < 3_000, `done after ${Math.round(res.ms)} ms`)
})

t.test('disabling chaos on a route releases its in-flight delays', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'latency', ms: 8_000 }] }, { resilience: { timeoutMs: 20_000 } })
  const slow = see(`${proxy.url}/svc/x`)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal((await admin(proxy, 'PATCH', '/chaos/routes/svc', { enabled: false })).status, 200)
  const res = await slow
  t.equal(res.status, 200)
  t.ok(res.ms < 3_000, `released after ${Math.round(res.ms)} ms`)
})

t.test('a reload replaces runtime changes with the file; the kill switch survives it', async (t) => {
  const upstream = await jsonUpstream(t)
  const dir = await mkdtemp(join(tmpdir(), 'faultline-chaos-'))
  const file = join(dir, 'config.json')
  const config = {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0, token: TOKEN },
    routes: [route('svc', '/svc', upstream.url, { chaos: { enabled: true, faults: [{ kind: 'abort', status: 503, name: 'from-file' }] } })]
  }
  await writeFile(file, JSON.stringify(config))
  const proxy = await startProxy(t, config, { configFile: file })
  await admin(proxy, 'DELETE', '/chaos/routes/svc/faults/from-file')
  await admin(proxy, 'POST', '/chaos/routes/svc/faults', { kind: 'rateLimit', name: 'runtime' })
  t.equal((await see(`${proxy.url}/svc/x`)).status, 429)

  t.equal((await admin(proxy, 'POST', '/reload')).status, 200)
  const faults = (await admin(proxy, 'GET', '/chaos/routes/svc/faults', undefined, {})).body.faults
  t.same(faults.map((f: { id: string }) => f.id), ['from-file'], 'the file is the source of truth')
  t.equal((await see(`${proxy.url}/svc/x`)).status, 503)

  await admin(proxy, 'POST', '/chaos/off')
  t.equal((await admin(proxy, 'POST', '/reload')).status, 200)
  t.equal((await see(`${proxy.url}/svc/x`)).status, 200, 'a reload does not re-arm chaos')
})

// The switch hands every wait a release signal; off aborts it. Turning on
// again must hand out a fresh, unaborted one, or every delay, hang and
// throttle would be "released" at once for ever after. Each check below
// holds only when the fault really waits: a lower bound on time, or a
// timeout status the upstream never produces.
async function assertDelaysInject (t: Test, proxy: StartedProxy, upstream: TestUpstream, when: string): Promise<void> {
  const delayed = await see(`${proxy.url}/svc/slow`)
  t.equal(delayed.status, 200, `${when}: the delayed request is answered`)
  t.ok(delayed.ms >= 380, `${when}: a 400 ms latency fault waits (${Math.round(delayed.ms)} ms)`)
  const hits = upstream.hits()
  const hung = await see(`${proxy.url}/svc/hang`)
  t.equal(hung.status, 502, `${when}: a hang closes without an answer instead of reaching the upstream`)
  t.equal(upstream.hits(), hits, `${when}: the hung request never reached the upstream`)
  const throttled = await see(`${proxy.url}/svc/throttled`)
  t.equal(throttled.body.length, 1_011, `${when}: the throttled body arrives whole`)
  t.ok(throttled.ms >= 600, `${when}: ~1 KB at 1 KB/s is paced (${Math.round(throttled.ms)} ms)`)
}

const rearmFaults = {
  faults: [
    { kind: 'latency', ms: 400, match: { path: '/svc/slow' } },
    { kind: 'timeout', closeAfterMs: 300, match: { path: '/svc/hang' } },
    { kind: 'throttle', bytesPerSecond: 1_000, match: { path: '/svc/throttled' } }
  ]
}

t.test('POST /chaos/off then /chaos/on: delays, hangs and throttles inject again', async (t) => {
  const upstream = await jsonUpstream(t, { data: 'x'.repeat(1_000) })
  const proxy = await chaosProxy(t, upstream.url, rearmFaults)
  await assertDelaysInject(t, proxy, upstream, 'before the switch')

  t.equal((await admin(proxy, 'POST', '/chaos/off')).status, 200)
  const released = await see(`${proxy.url}/svc/hang`)
  t.equal(released.status, 200, 'off: the hang is not injected')
  t.equal((await admin(proxy, 'POST', '/chaos/on')).status, 200)
  await assertDelaysInject(t, proxy, upstream, 'after off and on')

  // Twice round, in case a fresh signal were made only once.
  await admin(proxy, 'POST', '/chaos/off')
  await admin(proxy, 'POST', '/chaos/on')
  await assertDelaysInject(t, proxy, upstream, 'after a second off and on')
})

t.test('PATCH a route off then on: delays, hangs and throttles inject again', async (t) => {
  const upstream = await jsonUpstream(t, { data: 'x'.repeat(1_000) })
  const proxy = await chaosProxy(t, upstream.url, rearmFaults)
  t.equal((await admin(proxy, 'PATCH', '/chaos/routes/svc', { enabled: false })).status, 200)
  t.equal((await see(`${proxy.url}/svc/hang`)).status, 200, 'disabled: the hang is not injected')
  t.equal((await admin(proxy, 'PATCH', '/chaos/routes/svc', { enabled: true })).status, 200)
  await assertDelaysInject(t, proxy, upstream, 'after the route is re-enabled')
})

t.test('the kill switch says whether it changed anything, and silences header triggers too', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { allowHeaderTriggers: true })
  const trigger = { headers: { 'x-faultline-fault': 'abort=503' } }
  t.equal((await see(`${proxy.url}/svc/x`, trigger)).status, 503, 'on: the header trigger injects')
  t.same((await admin(proxy, 'POST', '/chaos/on')).body, { killSwitch: 'on', changed: false }, 'already on')
  t.same((await admin(proxy, 'POST', '/chaos/off')).body, { killSwitch: 'off', changed: true })
  t.same((await admin(proxy, 'POST', '/chaos/off')).body, { killSwitch: 'off', changed: false }, 'already off')
  const silenced = await see(`${proxy.url}/svc/x`, trigger)
  t.equal(silenced.status, 200, 'off: the header trigger does nothing')
  t.equal(upstream.lastHeaders()?.['x-faultline-fault'], undefined, 'and is still not forwarded')
  t.same((await admin(proxy, 'POST', '/chaos/on')).body, { killSwitch: 'on', changed: true })
  t.equal((await see(`${proxy.url}/svc/x`, trigger)).status, 503, 'on again: it injects again')
})
