import t from 'tap'
import { scrape, startUpstream, sumOf } from '../helpers.js'
import { chaosProxy, jsonUpstream, see } from './fixtures.js'

const BIG = { items: Array.from({ length: 50 }, (_, i) => ({ id: i, name: `item-${i}` })) }

t.test('reset before headers, upstream side: the attempt fails as a reset, the client gets a 502', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'reset' }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 502)
  t.match(JSON.parse(res.body.toString()), { class: 'reset' })
  t.equal(upstream.hits(), 0)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'reset' }), 1)
})

t.test('reset before headers, client side: the client connection gets a TCP reset', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'reset', at: 'client' }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, undefined, 'no status line')
  t.equal(res.error?.code, 'ECONNRESET')
  t.match(res.error?.message, /ECONNRESET/, 'a reset, not an orderly close')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc' }), 0)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'svc', outcome: 'failed', status_class: 'none' }), 1, 'counted, with no status')
})

t.test('reset mid-body, upstream side: headers, some bytes, then the connection dies', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'reset', phase: 'body', afterBytes: 100 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200, 'the status line went out')
  t.ok(res.error, 'then the client saw its response cut off')
  t.equal(res.body.length, 100, 'exactly the bytes before the reset')
  t.equal(upstream.hits(), 1)
  const samples = await scrape(proxy)
  // Classified as a real one would be: with a Content-Length announced, a body cut short is an invalid response.
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'invalid_response' }), 1)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'svc', outcome: 'failed' }), 1)
})

t.test('reset mid-body on a chunked answer counts as a reset', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.write(JSON.stringify(BIG)); res.end() })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'reset', phase: 'body', afterBytes: 10 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.ok(res.error)
  t.equal(res.body.length, 10)
  t.equal(sumOf(await scrape(proxy), 'faultline_upstream_errors_total', { route: 'svc', error_class: 'reset' }), 1)
})

t.test('reset mid-body, client side: a TCP reset after at most afterBytes', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'reset', phase: 'body', afterBytes: 100, at: 'client' }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.equal(res.error?.code, 'ECONNRESET')
  t.ok(res.body.length <= 100, `got ${res.body.length} bytes`)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc' }), 0)
})
