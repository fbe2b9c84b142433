import t from 'tap'
import { request as httpRequest } from 'node:http'
import { rawExchange, scrape, sumOf } from '../helpers.js'
import { chaosProxy, jsonUpstream, see } from './fixtures.js'

const N = 20

async function faulted (url: string, n: number, init: Parameters<typeof see>[1] = {}): Promise<boolean[]> {
  const out: boolean[] = []
  for (let i = 0; i < n; i++) out.push((await see(url, init)).status === 503)
  return out
}

t.test('probability 0 never fires, probability 1 always does', async (t) => {
  const upstream = await jsonUpstream(t)
  const never = await chaosProxy(t, upstream.url, { faults: [{ kind: 'abort', probability: 0 }] })
  t.same(await faulted(`${never.url}/svc/x`, N), Array(N).fill(false))
  const idle = (await scrape(never)).filter((s) => s.name === 'faultline_faults_injected_total' && s.labels.route === 'svc' && s.labels.fault === 'abort')
  t.same(idle.map((s) => s.value), [0], 'the series exists, at 0')
  const always = await chaosProxy(t, upstream.url, { faults: [{ kind: 'abort', probability: 1 }] })
  t.same(await faulted(`${always.url}/svc/x`, N), Array(N).fill(true))
  t.equal(sumOf(await scrape(always), 'faultline_faults_injected_total', { route: 'svc', fault: 'abort' }), N)
})

t.test('chaos disabled on the route: nothing fires', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { enabled: false, faults: [{ kind: 'abort' }] })
  t.same(await faulted(`${proxy.url}/svc/x`, 5), Array(5).fill(false))
})

t.test('matchers: methods, a path glob, a header value or presence', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, {
    faults: [
      { kind: 'latency', ms: 1, name: 'slow', match: { headers: { 'x-slow': true } } },
      { kind: 'abort', name: 'posts', match: { methods: ['POST'] } },
      { kind: 'abort', name: 'exports', match: { path: '/svc/**/export' } },
      { kind: 'abort', name: 'tenant', match: { headers: { 'X-Tenant': 'chaos' } } },
      { kind: 'abort', name: 'canary', match: { headers: { 'x-canary': true } } }
    ]
  })
  const status = async (path: string, init: Parameters<typeof see>[1] = {}): Promise<[number | undefined, unknown]> => {
    const res = await see(`${proxy.url}${path}`, init)
    return [res.status, res.headers['x-faultline-fault']]
  }
  t.same(await status('/svc/a'), [200, undefined], 'no matcher holds')
  t.same(await status('/svc/a', { method: 'POST', body: '{}' }), [503, 'posts'])
  t.same(await status('/svc/a/b/export?x=1'), [503, 'exports'], 'glob on the path, query ignored')
  t.same(await status('/svc/export-all'), [200, undefined])
  t.same(await status('/svc/a', { headers: { 'x-tenant': 'chaos' } }), [503, 'tenant'])
  t.same(await status('/svc/a', { headers: { 'x-tenant': 'other' } }), [200, undefined])
  t.same(await status('/svc/a', { headers: { 'x-canary': '' } }), [503, 'canary'], 'present with any value')
  t.same(await status('/svc/a/export', { headers: { 'x-slow': '1' } }), [503, 'slow,exports'], 'faults that fire stack, in list order')
  t.same(await status('/svc/a/export', { method: 'POST', body: '{}' }), [503, 'posts'], 'a fault behind an abort never acts, and is not named')
})

t.test('matchers: any of several methods, the path as the router sees it, one of a header\'s repeated values', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, {
    faults: [
      { kind: 'abort', status: 503, name: 'writes', match: { methods: ['PUT', 'DELETE'] } },
      { kind: 'abort', status: 502, name: 'admin', match: { path: '/svc/admin/*' } },
      { kind: 'abort', status: 504, name: 'cookie', match: { headers: { 'set-cookie': 'a=1' } } }
    ]
  })
  t.same([
    (await see(`${proxy.url}/svc/x`, { method: 'PUT', body: '{}' })).status,
    (await see(`${proxy.url}/svc/x`, { method: 'DELETE' })).status,
    (await see(`${proxy.url}/svc/x`)).status
  ], [503, 503, 200], 'PUT and DELETE both match, GET does not')
  // Sent as written (a URL client would resolve the dot-segments itself).
  const raw = async (target: string): Promise<string> =>
    (await rawExchange(proxy.faultline.proxyPort, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).split('\r\n')[0]!
  t.equal(await raw('/svc/public/../admin/x'), 'HTTP/1.1 502 Bad Gateway', 'dot-segments resolved before the glob')
  t.equal(await raw('/svc/public/%2e%2e/admin/x'), 'HTTP/1.1 502 Bad Gateway', 'encoded dots too')
  t.equal(await raw('/svc/admin/../public/x'), 'HTTP/1.1 200 OK', 'a path that only passes through /svc/admin does not match')
  // Node keeps a repeated Set-Cookie as an array: the matcher looks for the value among them.
  const cookies = async (values: string[]): Promise<number> => await new Promise((resolve, reject) => {
    const req = httpRequest(`${proxy.url}/svc/x`, { headers: { 'set-cookie': values }, agent: false }, (res) => {
      res.resume()
      resolve(res.statusCode!)
    })
    req.on('error', reject)
    req.end()
  })
  t.equal(await cookies(['b=2', 'a=1']), 504, 'the value is one of the two')
  t.equal(await cookies(['b=2', 'c=3']), 200, 'neither is the value')
})

t.test('every attempt re-rolls, and the fault stage is innermost: one decision per attempt', async (t) => {
  const upstream = await jsonUpstream(t)
  // Retries, so one request makes several attempts; a big budget so it never limits them.
  const retry = { attempts: 3, backoff: { baseMs: 1, maxMs: 2 }, budgetRatio: 10 }
  const proxy = await chaosProxy(t, upstream.url, { seed: 1, faults: [{ kind: 'abort', status: 503, probability: 0.5 }] }, { resilience: { retry } })
  const results = await faulted(`${proxy.url}/svc/x`, 40)
  const failed = results.filter(Boolean).length
  const samples = await scrape(proxy)
  const injected = sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'abort' })
  t.ok(failed > 0 && failed < 20, `${failed} of 40 failed all three attempts at p=0.5 (about 1 in 8)`)
  t.equal(upstream.hits(), 40 - failed, 'innermost: a faulted attempt never reaches the upstream, a clean one does, once')
  // One decision per request would fault all three attempts of a faulted
  // request and none of a clean one: injected would be exactly 3 x failed.
  t.ok(injected > 3 * failed, `${injected} injected for ${failed} failed requests: some requests succeeded on a re-rolled retry`)
  t.ok(sumOf(samples, 'faultline_requests_total', { route: 'svc', outcome: 'retried_ok' }) >= 1, 'a retry after an injected 503 succeeded')
  const retries = sumOf(samples, 'faultline_retries_total', { route: 'svc' })
  t.equal(injected + upstream.hits(), 40 + retries, 'every attempt (first or retry) was either faulted or reached the upstream')
})
