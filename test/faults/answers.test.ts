import t from 'tap'
import { scrape, sumOf } from '../helpers.js'
import { chaosProxy, jsonUpstream, see } from './fixtures.js'

t.test('abort answers instead of the upstream, and counts as a failed upstream attempt', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, {
    faults: [
      { kind: 'abort', status: 503, match: { path: '/svc/default' } },
      { kind: 'abort', status: 502, body: 'bad gateway, injected', name: 'custom', match: { path: '/svc/custom' } }
    ]
  })
  const a = await see(`${proxy.url}/svc/default`)
  t.equal(a.status, 503)
  t.same(JSON.parse(a.body.toString()), { error: 'injected_fault', fault: 'abort', status: 503 })
  t.equal(a.headers['content-type'], 'application/json')
  t.equal(a.headers['content-length'], String(a.body.length))
  const b = await see(`${proxy.url}/svc/custom`)
  t.equal(b.status, 502)
  t.equal(b.body.toString(), 'bad gateway, injected')
  t.equal(b.headers['x-faultline-fault'], 'custom')
  t.equal(upstream.hits(), 0, 'the upstream was never called')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'http_5xx' }), 2)
  t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'abort' }), 1)
  t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'custom' }), 1)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'svc', outcome: 'failed' }), 2)
})

t.test('abort: a configured body is text/plain unless its headers say otherwise', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, {
    faults: [
      { kind: 'abort', status: 500, body: 'plain words', match: { path: '/svc/plain' } },
      { kind: 'abort', status: 429, body: '{"title":"slow down"}', headers: { 'content-type': 'application/problem+json', 'retry-after': '3' }, match: { path: '/svc/typed' } }
    ]
  })
  const plain = await see(`${proxy.url}/svc/plain`)
  t.equal(plain.status, 500)
  t.equal(plain.headers['content-type'], 'text/plain; charset=utf-8')
  const typed = await see(`${proxy.url}/svc/typed`)
  t.equal(typed.status, 429)
  t.equal(typed.headers['content-type'], 'application/problem+json', 'the configured header wins')
  t.equal(typed.headers['retry-after'], '3')
  t.equal(typed.body.toString(), '{"title":"slow down"}')
})

t.test('auth: 401 with a Bearer challenge, the expired-token variant, and 403', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, {
    faults: [
      { kind: 'auth', match: { path: '/svc/none' } },
      { kind: 'auth', variant: 'expired', realm: 'api', match: { path: '/svc/expired' } },
      { kind: 'auth', variant: 'forbidden', match: { path: '/svc/forbidden' } }
    ]
  })
  const none = await see(`${proxy.url}/svc/none`)
  t.equal(none.status, 401)
  t.equal(none.headers['www-authenticate'], 'Bearer realm="faultline"')
  const expired = await see(`${proxy.url}/svc/expired`)
  t.equal(expired.status, 401)
  t.match(expired.headers['www-authenticate'], /^Bearer realm="api", error="invalid_token", error_description="The access token expired"$/)
  t.match(JSON.parse(expired.body.toString()), { error: 'invalid_token' })
  const forbidden = await see(`${proxy.url}/svc/forbidden`)
  t.equal(forbidden.status, 403)
  t.match(forbidden.headers['www-authenticate'], /error="insufficient_scope"/)
  t.equal(upstream.hits(), 0)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'auth' }), 3)
})

t.test('rateLimit: 429 with Retry-After and RateLimit headers', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'rateLimit', retryAfterSeconds: 7 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 429)
  t.equal(res.headers['retry-after'], '7')
  t.equal(res.headers['ratelimit-remaining'], '0')
  t.same(JSON.parse(res.body.toString()), { error: 'rate_limited', retryAfterSeconds: 7 })
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'rate_limited' }), 1)
})

t.test('client-side answers bypass the pipeline and are not upstream errors', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'abort', status: 500, at: 'client' }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 500)
  t.equal(res.headers['x-faultline-fault'], 'abort')
  t.equal(upstream.hits(), 0)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc' }), 0)
  t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'abort' }), 1)
})

t.test('without exposeHeaders the response does not name the fault; the log line does', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { exposeHeaders: false, faults: [{ kind: 'abort', status: 503 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 503)
  t.equal(res.headers['x-faultline-fault'], undefined)
  await proxy.faultline.close()
  const line = proxy.logs.lines.find((l) => l.msg === 'request')
  t.equal(line?.fault, 'abort')
  t.equal(line?.errorClass, 'http_5xx')
})
