/**
 * issue 13: delays are bounded to what a Node timer holds; every method
 * Node's parser accepts is proxied or refused with a counted answer.
 */
import t from 'tap'
import { request } from 'undici'
import { parseConfig } from '../src/config/load.js'
import { ConfigError } from '../src/config/errors.js'
import { fetchText, rawExchange, route, scrape, startProxy, startUpstream, sumOf } from './helpers.js'

const TOKEN = 'timers-token-0123456789abcdef'
const OVER = 2 ** 31 // one past what setTimeout holds: it would fire after ~1 ms

t.test('delays, closeAfterMs and route timeouts past 2^31-1 ms are config errors, at load and at the admin API', async (t) => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['latency ms', { chaos: { enabled: true, faults: [{ kind: 'latency', ms: OVER }] } }, 'routes[0].chaos.faults[0].ms'],
    ['delay maxMs', { chaos: { enabled: true, faults: [{ kind: 'slowHeaders', distribution: { type: 'lognormal', medianMs: 10, sigma: 1 }, maxMs: OVER }] } }, 'routes[0].chaos.faults[0].maxMs'],
    ['closeAfterMs', { chaos: { enabled: true, faults: [{ kind: 'timeout', closeAfterMs: OVER }] } }, 'routes[0].chaos.faults[0].closeAfterMs'],
    ['timeoutMs', { resilience: { timeoutMs: OVER } }, 'routes[0].resilience.timeoutMs']
  ]
  for (const [what, extra, path] of cases) {
    const err = t.throws(() => parseConfig({ routes: [route('svc', '/svc', 'http://127.0.0.1:1', extra)] }, 'f.yaml')) as unknown
    t.ok(err instanceof ConfigError, what)
    t.ok((err as ConfigError).problems.some((p) => p.path === path && /<= 2147483647/.test(p.message)), `${what}: ${(err as ConfigError).message}`)
  }
  t.doesNotThrow(() => parseConfig({ routes: [route('svc', '/svc', 'http://127.0.0.1:1', { chaos: { enabled: true, faults: [{ kind: 'latency', ms: OVER - 1 }] } })] }, 'f.yaml'), 'the largest timer is fine')

  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { admin: { token: TOKEN }, routes: [route('svc', '/svc', up.url)] })
  const added = await fetchText(`${proxy.adminUrl}/chaos/routes/svc/faults`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'latency', ms: OVER })
  })
  t.equal(added.status, 400, 'the admin API refuses it too')
  t.equal((await fetchText(`${proxy.url}/svc`)).status, 200)
})

t.test('extension methods are proxied and counted; CONNECT gets a counted 501, never a framework 404', async (t) => {
  const methods: string[] = []
  const up = await startUpstream(t, (req, res) => { methods.push(req.method ?? ''); res.end(req.method) })
  const proxy = await startProxy(t, { routes: [route('svc', '/svc', up.url)] })
  for (const method of ['PURGE', 'PROPFIND', 'REPORT', 'SEARCH', 'MKCOL', 'QUERY']) {
    // QUERY (RFC 10008) carries a typed body.
    const res = await request(`${proxy.url}/svc/x`, method === 'QUERY' ? { method, body: 'q', headers: { 'content-type': 'text/plain' } } : { method })
    t.equal(res.statusCode, 200, `${method} is proxied`)
    t.equal(await res.body.text(), method)
  }
  t.same(methods, ['PURGE', 'PROPFIND', 'REPORT', 'SEARCH', 'MKCOL', 'QUERY'], 'the upstream got each method as sent')
  const connect = await rawExchange(proxy.faultline.proxyPort, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n', 3_000)
  t.match(connect, /^HTTP\/1\.1 501 /, 'CONNECT is refused with 501')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'svc' }), 6, 'every extension-method request is counted')
  t.equal(sumOf(samples, 'faultline_edge_rejections_total', { reason: 'method_not_supported' }), 1, 'and the refused CONNECT')
})
