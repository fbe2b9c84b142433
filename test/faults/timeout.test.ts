import t from 'tap'
import { scrape, sumOf } from '../helpers.js'
import { chaosProxy, eventually, jsonUpstream, see } from './fixtures.js'

t.test('upstream-side timeout hangs until the attempt timeout gives up', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'timeout' }] }, { resilience: { timeoutMs: 250 } })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 504)
  t.ok(res.ms >= 230 && res.ms < 2_000, `took ${Math.round(res.ms)} ms for a 250 ms timeout`)
  t.equal(upstream.hits(), 0)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'timeout' }), 1)
})

t.test('upstream-side timeout with closeAfterMs: the connection closes without an answer (a reset)', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'timeout', closeAfterMs: 150 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 502)
  t.ok(res.ms >= 130, `took ${Math.round(res.ms)} ms`)
  t.match(JSON.parse(res.body.toString()), { class: 'reset' })
})

t.test('client-side timeout: no answer, and the connection is closed at closeAfterMs', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'timeout', at: 'client', closeAfterMs: 200 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, undefined)
  t.ok(res.error, 'the client saw the connection end')
  t.match(res.error?.message, /socket hang up/, 'an orderly close, not a reset')
  t.ok(res.ms >= 180 && res.ms < 2_000, `closed after ${Math.round(res.ms)} ms`)
  t.equal(upstream.hits(), 0)
})

t.test('client-side timeout ends when the client gives up: nothing is held after it leaves', async (t) => {
  const upstream = await jsonUpstream(t)
  // The route's timeout (the default hang limit) is far away: only the client leaving can end this.
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'timeout', at: 'client' }] }, { resilience: { timeoutMs: 60_000 } })
  const res = await see(`${proxy.url}/svc/x`, { abortAfterMs: 150 })
  t.equal(res.error?.code, 'CLIENT_GAVE_UP')
  const logged = await eventually(() => proxy.logs.lines.some((l) => l.msg === 'request'), 2_000)
  t.ok(logged, 'the request was settled as soon as the client left')
  const line = proxy.logs.lines.find((l) => l.msg === 'request')
  t.equal(line?.outcome, 'cancelled')
  t.equal(line?.status, 0)
  t.equal(line?.fault, 'timeout')
  t.ok((line?.durationMs as number) < 1_000, 'ended with the client, not at a timeout')
})

t.test('upstream-side timeout also ends when the client gives up', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'timeout' }] }, { resilience: { timeoutMs: 60_000 } })
  const res = await see(`${proxy.url}/svc/x`, { abortAfterMs: 150 })
  t.equal(res.error?.code, 'CLIENT_GAVE_UP')
  t.ok(await eventually(() => proxy.logs.lines.some((l) => l.msg === 'request'), 2_000), 'settled when the client left')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc' }), 0, 'a client leaving is not an upstream failure')
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'svc', outcome: 'cancelled' }), 1)
})
