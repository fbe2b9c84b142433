import t from 'tap'
import { fetchText, scrape, sumOf, type StartedProxy } from '../helpers.js'
import { TOKEN, chaosProxy, jsonUpstream, see } from './fixtures.js'
import { parseTrigger, TriggerError } from '../../src/faults/trigger.js'

const H = 'x-faultline-fault'

async function setEnabled (proxy: StartedProxy, enabled: boolean): Promise<number> {
  const res = await fetchText(`${proxy.adminUrl}/chaos/routes/svc`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ enabled })
  })
  return res.status
}

t.test('header triggers are off by default: the header does nothing and never reaches the upstream', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, {})
  const res = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'abort=503' } })
  t.equal(res.status, 200)
  t.equal(upstream.lastHeaders()?.[H], undefined)
})

t.test('header triggers on: the request gets the faults it names', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { allowHeaderTriggers: true })
  const abort = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'abort=502' } })
  t.equal(abort.status, 502)
  t.equal(abort.headers[H], 'abort')
  t.equal(upstream.hits(), 0)

  const slow = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'latency=250ms' } })
  t.equal(slow.status, 200)
  t.ok(slow.ms >= 230, `took ${Math.round(slow.ms)} ms`)
  t.equal(upstream.lastHeaders()?.[H], undefined, 'the trigger header is never forwarded')

  const client = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'reset; at=client' } })
  t.equal(client.error?.code, 'ECONNRESET', 'at=client acts on the client connection')

  const both = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'latency=10ms, rateLimit=9' } })
  t.equal(both.status, 429)
  t.equal(both.headers['retry-after'], '9')
  t.equal(both.headers[H], 'latency,rateLimit')

  const drift = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'schemaDrift; drop=name; rename=id:ID; retype=price:string' } })
  t.same(JSON.parse(drift.body.toString()), { ID: 1, price: '25' })

  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'latency' }), 2, 'labelled by kind')
})

t.test('a route whose chaos is disabled ignores trigger headers, in its file and by PATCH', async (t) => {
  const upstream = await jsonUpstream(t)
  const off = await chaosProxy(t, upstream.url, { enabled: false, allowHeaderTriggers: true })
  const silenced = await see(`${off.url}/svc/x`, { headers: { [H]: 'abort=503' } })
  t.equal(silenced.status, 200, 'enabled: false in the config: the trigger does nothing')
  t.equal(upstream.lastHeaders()?.[H], undefined, 'and is not forwarded')

  const on = await chaosProxy(t, upstream.url, { allowHeaderTriggers: true })
  t.equal((await see(`${on.url}/svc/x`, { headers: { [H]: 'abort=503' } })).status, 503, 'enabled: the trigger injects')
  t.equal(await setEnabled(on, false), 200)
  t.equal((await see(`${on.url}/svc/x`, { headers: { [H]: 'abort=503' } })).status, 200, 'disabled by PATCH: the trigger does nothing')
  t.equal(await setEnabled(on, true), 200)
  t.equal((await see(`${on.url}/svc/x`, { headers: { [H]: 'abort=503' } })).status, 503, 'enabled again: it injects again')
})

t.test('a trigger header replaces the configured faults; none exempts a request', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { allowHeaderTriggers: true, faults: [{ kind: 'abort', status: 503 }] })
  t.equal((await see(`${proxy.url}/svc/x`)).status, 503)
  const exempt = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'none' } })
  t.equal(exempt.status, 200)
  t.equal(exempt.headers[H], undefined, 'no fault named')
})

t.test('a bad trigger header is refused with a 400 that says why', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { allowHeaderTriggers: true })
  const unknown = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'explode' } })
  t.equal(unknown.status, 400)
  t.match(JSON.parse(unknown.body.toString()), { error: 'invalid_fault_trigger', message: /unknown fault kind "explode"/ })
  const bad = await see(`${proxy.url}/svc/x`, { headers: { [H]: 'abort=999' } })
  t.equal(bad.status, 400)
  t.match(JSON.parse(bad.body.toString()).message, /x-faultline-fault\[0\]\.status: expected a number <= 599, got 999/)
  t.equal(upstream.hits(), 0)
})

t.test('parseTrigger: grammar, and what a header may not set', async (t) => {
  const [f] = parseTrigger('reset=body; afterBytes=10; probability=0.5')
  t.match(f?.config, { kind: 'reset', phase: 'body', afterBytes: 10, probability: 0.5, at: 'upstream' })
  t.equal(f?.label, 'reset')
  t.match(parseTrigger('slowHeaders=2s')[0]?.config, { ms: 2000 })
  t.throws(() => parseTrigger('abort; name=mine'), TriggerError, 'a header cannot mint a metric label')
  t.throws(() => parseTrigger('none=1'), /takes no value/)
  t.throws(() => parseTrigger(Array(9).fill('none').join(',')), /at most 8/)
})
