/**
 * The fleet SLO source in pieces: Prometheus' answer turned into a reading
 * (ok, empty, stale, error), the one query per route, the config checks
 * (`check` and `run` refuse an unreadable bearer token file; warnings for
 * settings that do nothing), and the bearer token sent to a real
 * Prometheus behind an auth proxy, re-read when it rotates.
 */
import t from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { parseConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/config/errors.js'
import { configWarnings } from '../../src/config/warnings.js'
import { Faultline } from '../../src/faultline.js'
import { prometheusSourceSchema } from '../../src/fleet/prometheus-schema.js'
import { PrometheusSource, readingFrom, routeQuery } from '../../src/fleet/prometheus-source.js'
import { createLogger } from '../../src/log.js'
import { LogCapture, closedPort, fetchText, needTool, route, scrape, startProxy, startUpstream, sumOf, type ProxyTestConfig } from '../helpers.js'
import { startPrometheus } from '../observability/prometheus-server.js'

const { path: prometheusBinary, skip } = needTool('prometheus')
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

const answer = (samples: Array<[string, string]>): unknown => ({
  status: 'success',
  data: { resultType: 'vector', result: samples.map(([q, v]) => ({ metric: { faultline_query: q }, value: [1700000000, v] })) }
})

t.test('an answer becomes a reading', async (t) => {
  const full = answer([['requests', '40'], ['errorRate', '0.02'], ['p99', '0.25'], ['injected', '4'], ['age', '1.5']])
  t.same(readingFrom(full, 500, 30_000), { ok: true, figures: { requests: 20, errorRate: 0.02, p99Ms: 250, injected: 2, ageSeconds: 1.5, scrapedAt: 1699999998.5 } }, 'rates times the window; p99 in ms; the scrape time on Prometheus\' clock')
  t.same(readingFrom(answer([['requests', '0'], ['errorRate', 'NaN'], ['p99', 'NaN'], ['injected', '0'], ['age', '2']]), 500, 30_000),
    { ok: true, figures: { requests: 0, errorRate: 0, p99Ms: 0, injected: 0, ageSeconds: 2, scrapedAt: 1699999998 } }, 'no traffic: NaN ratio and quantile read as 0 (minRequests decides)')
  t.match(readingFrom(answer([['requests', '10'], ['errorRate', 'NaN'], ['p99', '0.1'], ['age', '2']]), 500, 30_000), { ok: false, reason: 'empty', detail: /errorRate/ }, 'traffic but no error rate: empty')
  t.match(readingFrom(answer([['errorRate', '0'], ['p99', '0.1'], ['age', '2']]), 500, 30_000), { ok: false, reason: 'empty', detail: /requests/ }, 'no request series: empty')
  t.match(readingFrom(answer([['requests', '10'], ['errorRate', '0'], ['p99', '0.1']]), 500, 30_000), { ok: false, reason: 'empty', detail: /age/ })
  t.match(readingFrom(answer([['requests', '10'], ['errorRate', '0'], ['p99', '0.1'], ['age', '31']]), 500, 30_000), { ok: false, reason: 'stale', detail: /31 s old/ }, 'older than staleAfterMs: stale')
  t.match(readingFrom(answer([['requests', '10'], ['errorRate', '0'], ['p99', '0.1'], ['age', 'NaN']]), 500, 30_000), { ok: false, reason: 'stale' })
  t.match(readingFrom(answer([['requests', '1'], ['requests', '2'], ['age', '1']]), 500, 30_000), { ok: false, reason: 'error', detail: /more than one series/ })
  t.match(readingFrom({ status: 'error', errorType: 'bad_data', error: 'parse error' }, 500, 30_000), { ok: false, reason: 'error', detail: 'bad_data: parse error' })
  t.match(readingFrom({ status: 'success', data: { resultType: 'matrix', result: [] } }, 500, 30_000), { ok: false, reason: 'error', detail: /instant vector/ })
  t.match(readingFrom('<html>', 500, 30_000), { ok: false, reason: 'error' })
})

t.test('one query per route: the route\'s matchers, the selector, overrides by route then by config', async (t) => {
  const config = prometheusSourceSchema.parse({ url: 'http://prom:9090', selector: 'namespace="shop",job="checkout"', queries: { p99: 'max(my_p99{$labels})' } })
  const q = routeQuery({ name: 'pay.v1', queries: { age: 'vector(0)' } }, config)
  t.match(q, 'sum(route:faultline_client_requests:rate1m{route="pay.v1",namespace="shop",job="checkout"})')
  t.match(q, 'label_replace((max(my_p99{route="pay.v1",namespace="shop",job="checkout"})), "faultline_query", "p99", "", "")', 'the config override')
  t.match(q, 'label_replace((vector(0)), "faultline_query", "age", "", "")', 'the route override wins')
  t.equal(q.split(' or label_replace').length, 5, 'five figures')
  const bare = routeQuery({ name: 'api' }, prometheusSourceSchema.parse({ url: 'http://prom:9090' }))
  t.match(bare, 'route:faultline_client_requests:rate1m{route="api"}', 'no selector: the route alone')
})

const base = (controller: Record<string, unknown>, intent: Record<string, unknown> = {}): Record<string, unknown> => ({
  controller,
  routes: [{ name: 'api', match: { pathPrefix: '/api' }, upstream: { url: 'http://127.0.0.1:9' }, chaos: { enabled: true }, intent }]
})

t.test('config: source prometheus needs a URL; selectors are matchers; the default stays local', async (t) => {
  t.equal(parseConfig(base({}), 'f.yaml').controller.source, 'local', 'local by default: no Prometheus needed')
  t.throws(() => parseConfig(base({ source: 'prometheus' }), 'f.yaml'), /f\.yaml: controller\.prometheus: expected controller\.prometheus \(at least its url\)/)
  t.throws(() => parseConfig(base({ source: 'prometheus', prometheus: { url: 'prom:9090' } }), 'f.yaml'), /controller\.prometheus\.url: expected an http:\/\/ or https:\/\/ URL/)
  t.throws(() => parseConfig(base({ source: 'prometheus', prometheus: { url: 'not a url' } }), 'f.yaml'), /controller\.prometheus\.url: expected a URL/)
  t.throws(() => parseConfig(base({ source: 'prometheus', prometheus: { url: 'http://prom:9090', selector: '{job="x"}' } }), 'f.yaml'), /controller\.prometheus\.selector: expected PromQL label matchers/)
  t.throws(() => parseConfig(base({ source: 'sideways' }), 'f.yaml'), /controller\.source/)
  const ok = parseConfig(base({ source: 'prometheus', prometheus: { url: 'http://prom:9090', selector: 'job="x", namespace=~"a|b"', staleAfterMs: '45s' } }, { queries: { p99: 'max(x{$labels})' } }), 'f.yaml')
  t.equal(ok.controller.prometheus?.staleAfterMs, 45_000)
  t.same(ok.routes[0]?.intent?.queries, { p99: 'max(x{$labels})' })
})

t.test('config: an unreadable or empty bearer token file fails check and run', async (t) => {
  const dir = t.testdir({ empty: '\n', token: 'secret-token\n' })
  const missing = parseConfig(base({ source: 'prometheus', prometheus: { url: 'http://prom:9090', bearerTokenFile: join(dir, 'nope') } }), 'f.yaml')
  t.throws(() => Faultline.check(missing, 'f.yaml'), /f\.yaml: controller\.prometheus\.bearerTokenFile: expected a readable file: ENOENT/)
  t.throws(() => Faultline.check(missing, 'f.yaml'), ConfigError)
  const empty = parseConfig(base({ source: 'prometheus', prometheus: { url: 'http://prom:9090', bearerTokenFile: join(dir, 'empty') } }), 'f.yaml')
  t.throws(() => Faultline.check(empty, 'f.yaml'), /bearerTokenFile: expected a bearer token in .*empty, the file is empty/)
  await t.rejects(Faultline.start(missing, { logger: createLogger('silent') }), /bearerTokenFile/, 'run refuses it too')
  const fine = parseConfig(base({ source: 'prometheus', prometheus: { url: 'http://prom:9090', bearerTokenFile: join(dir, 'token') } }), 'f.yaml')
  t.doesNotThrow(() => Faultline.check(fine, 'f.yaml'))
  // source local: the file is not used, so not read either.
  t.doesNotThrow(() => Faultline.check(parseConfig(base({ prometheus: { url: 'http://prom:9090', bearerTokenFile: join(dir, 'nope') } }), 'f.yaml'), 'f.yaml'))
})

t.test('config warnings: Prometheus settings that do nothing', async (t) => {
  const paths = (c: Record<string, unknown>): string[] => configWarnings(parseConfig(c, 'f.yaml')).map((w) => w.path)
  t.same(paths(base({ prometheus: { url: 'http://prom:9090' } }, { queries: { p99: 'x' } })), ['controller.prometheus', 'routes[0].intent.queries'])
  t.same(paths(base({ source: 'prometheus', evaluationMs: 1000, prometheus: { url: 'http://prom:9090', timeoutMs: 1000 } })), ['controller.prometheus.timeoutMs'])
  const noIntent = base({ source: 'prometheus', prometheus: { url: 'http://prom:9090' } })
  delete (noIntent.routes as Array<Record<string, unknown>>)[0]!.intent
  t.same(paths(noIntent), ['controller.source'])
  t.same(paths(base({ source: 'prometheus', prometheus: { url: 'http://prom:9090' } })), [], 'a sound config: no warning')
})

t.test('unreachable: a closed port is a reading that says so, logged once', async (t) => {
  const log = new LogCapture()
  const source = new PrometheusSource(prometheusSourceSchema.parse({ url: `http://127.0.0.1:${await closedPort()}`, timeoutMs: 300 }), { logger: createLogger('info', log), evaluationMs: 500 })
  t.teardown(async () => { await source.close() })
  for (let i = 0; i < 3; i++) t.match((await source.read([{ name: 'api' }])).get('api'), { ok: false, reason: 'unreachable' })
  t.equal(source.states.get('api')?.reason, 'unreachable')
  t.equal(log.lines.filter((l) => String(l.msg).includes('fleet SLO source unreachable')).length, 1, 'one log line for three failed windows')
})

t.test('the bearer token reaches Prometheus (behind an auth proxy) and is re-read when it rotates', { skip }, async (t) => {
  const prometheus = await startPrometheus(t, prometheusBinary!, { targets: [] })
  // What kube-rbac-proxy or an auth gateway does in front of Prometheus: 401 without the current token.
  let expected = 'Bearer first-token'
  const seen: string[] = []
  const gate = createServer((req, res) => {
    seen.push(req.headers.authorization ?? '')
    if (req.headers.authorization !== expected) { res.statusCode = 401; res.end('unauthorized'); return }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      request(`${prometheus.url}${req.url ?? '/'}`, { method: 'POST', headers: { 'content-type': req.headers['content-type'] ?? '' }, body: Buffer.concat(chunks) })
        .then(async (up) => { res.statusCode = up.statusCode; res.end(Buffer.from(await up.body.arrayBuffer())) })
        .catch(() => { res.statusCode = 502; res.end() })
    })
  })
  await new Promise<void>((resolve) => gate.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { gate.close() })
  const dir = t.testdir({ token: 'first-token\n' })
  const config = prometheusSourceSchema.parse({ url: `http://127.0.0.1:${(gate.address() as AddressInfo).port}`, bearerTokenFile: join(dir, 'token'), timeoutMs: 5000 })
  const source = new PrometheusSource(config, { logger: createLogger('silent'), evaluationMs: 10_000 })
  t.teardown(async () => { await source.close() })

  // Prometheus parsed and ran the whole query (the defaults and an override); it has no data yet: empty, not error.
  t.match((await source.read([{ name: 'api' }, { name: 'web', queries: { age: 'vector(1)' } }])).get('api'), { ok: false, reason: 'empty' })
  t.match(source.states.get('web'), { reason: 'empty' })
  t.same(seen, ['Bearer first-token', 'Bearer first-token'])
  expected = 'Bearer second-token'
  t.match((await source.read([{ name: 'api' }])).get('api'), { ok: false, reason: 'error', detail: 'HTTP 401' }, 'a refused token is an error')
  await writeFile(join(dir, 'token'), 'second-token\n')
  t.match((await source.read([{ name: 'api' }])).get('api'), { ok: false, reason: 'empty' }, 'the rotated token is read on the next window')
  // A route whose overrides return data: ok, figures from Prometheus.
  const constant = { requests: 'vector(40)', errorRate: 'vector(0.5)', p99: 'vector(0.2)', injected: 'vector(0)', age: 'vector(0)' }
  t.match((await source.read([{ name: 'api', queries: constant }])).get('api'), { ok: true, figures: { requests: 400, errorRate: 0.5, p99Ms: 200, injected: 0, ageSeconds: 0 } })
})

t.test('in one process: the route is judged once per new scrape; a reload switches the source on and off', { skip }, async (t) => {
  const prometheus = await startPrometheus(t, prometheusBinary!, { targets: [] })
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  // Figures Prometheus computes without targets: a healthy fleet of 100 requests/s whose newest
  // "scrape" moves every 3 s (its age is time() mod 3), while windows are 500 ms.
  const queries = { requests: 'vector(100)', errorRate: 'vector(0)', p99: 'vector(0.01)', injected: 'vector(0)', age: 'vector(time()) % 3' }
  const config = (source: 'local' | 'prometheus'): ProxyTestConfig => ({
    controller: { evaluationMs: 500, minRequests: 5, source, ...(source === 'prometheus' ? { prometheus: { url: prometheus.url, timeoutMs: 400 } } : {}) },
    routes: [{ ...route('api', '/api', upstream.url), chaos: { enabled: true, budget: 0.1 }, intent: { criticality: 'optional', queries } }]
  })
  const proxy = await startProxy(t, config('prometheus'))
  const controller = async (): Promise<{ windows: number, level: number }> => {
    const body = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as { routes: Array<{ state: { intent: { controller: { windows: number, level: number } } } }> }
    return body.routes[0]!.state.intent.controller
  }
  await sleep(1000)
  const first = await controller()
  await sleep(4500)
  const later = await controller()
  // 9 windows of 500 ms; a new scrape every 3 s: one or two judged, never one per window.
  t.ok(later.windows - first.windows >= 1 && later.windows - first.windows <= 3, `judged ${later.windows - first.windows} times in 4.5 s of 500 ms windows`, { logs: proxy.logs.lines.filter((l) => String(l.msg).includes('fleet')) })
  let samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_controller_source_up', { route: 'api', reason: 'ok' }), 1)
  t.equal(sumOf(samples, 'faultline_chaos_active', { route: 'api', reason: 'planned' }), 1)

  // Back to local: no Prometheus read, no source series; every window is judged (or found too small) again.
  proxy.faultline.applyConfig(parseConfig({ ...config('local'), listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } }, 'test-config'))
  await sleep(1200)
  samples = await scrape(proxy)
  t.equal(samples.filter((s) => s.name === 'faultline_controller_source_up').length, 0, 'no source series with source local')
  t.equal(sumOf(samples, 'faultline_chaos_active', { route: 'api', reason: 'planned' }), 1)
  // And to a Prometheus that is not there: planned injection stops within a window.
  proxy.faultline.applyConfig(parseConfig({ ...config('prometheus'), controller: { evaluationMs: 500, source: 'prometheus', prometheus: { url: `http://127.0.0.1:${await closedPort()}` } }, listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0 } }, 'test-config'))
  await sleep(1200)
  samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_controller_source_up', { route: 'api', reason: 'unreachable' }), 0, 'unreachable: 0')
  t.equal(samples.filter((s) => s.name === 'faultline_controller_source_up').length, 1, 'one series for the route')
  t.equal(sumOf(samples, 'faultline_chaos_active', { route: 'api', reason: 'source_down' }), 0)
  t.equal(sumOf(samples, 'faultline_chaos_fault_probability', { route: 'api' }), 0, 'no planned probability')
  t.ok(proxy.logs.lines.some((l) => String(l.msg).startsWith('fleet SLO source unreachable')), 'logged')
})
