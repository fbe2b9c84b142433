/**
 * Request counts are kept per route and folded into prom-client when it
 * collects: whoever reads the metrics must see every request, across
 * config generations.
 */
import t from 'tap'
import { Metrics } from '../src/metrics/metrics.js'
import { RouteMetrics } from '../src/metrics/route-metrics.js'
import { parsePrometheusText, sumOf } from '../src/metrics/text.js'

async function samples (metrics: Metrics): Promise<ReturnType<typeof parsePrometheusText>> {
  return parsePrometheusText(await metrics.registry.metrics())
}

t.test('every request is in the exposition, folded at scrape time', async (t) => {
  const metrics = new Metrics({ defaultMetrics: false })
  const route = new RouteMetrics(metrics, 'pay')
  for (let i = 0; i < 3; i++) route.request('127.0.0.1:9', 'GET', 200, 'ok', 0.002)
  route.request('127.0.0.1:9', 'POST', 503, 'failed', 0.01)
  route.request('127.0.0.1:9', 'BREW', 200, 'ok', 0.002)
  let s = await samples(metrics)
  t.equal(sumOf(s, 'faultline_requests_total', { route: 'pay', upstream: '127.0.0.1:9', method: 'GET', status_class: '2xx', outcome: 'ok' }), 3)
  t.equal(sumOf(s, 'faultline_requests_total', { route: 'pay', method: 'POST', status_class: '5xx', outcome: 'failed' }), 1)
  t.equal(sumOf(s, 'faultline_requests_total', { route: 'pay', method: 'OTHER' }), 1)
  t.equal(sumOf(s, 'faultline_request_duration_seconds_count', { route: 'pay' }), 5)
  route.request('127.0.0.1:9', 'GET', 200, 'ok', 0.002)
  s = await samples(metrics)
  t.equal(sumOf(s, 'faultline_requests_total', { route: 'pay', method: 'GET', outcome: 'ok' }), 4, 'counted once, not folded twice')
  const json = await metrics.requests.get()
  t.equal(json.values.reduce((n, v) => n + v.value, 0), 6, 'get() folds too')
})

t.test('a reload (a new RouteMetrics for the same route) keeps counting the same series', async (t) => {
  const metrics = new Metrics({ defaultMetrics: false })
  const before = new RouteMetrics(metrics, 'pay')
  before.request('127.0.0.1:9', 'GET', 200, 'ok', 0.002)
  const after = new RouteMetrics(metrics, 'pay')
  after.request('127.0.0.1:9', 'GET', 200, 'ok', 0.002)
  before.request('127.0.0.1:9', 'GET', 200, 'ok', 0.002) // an in-flight request finishing on the old generation
  const s = await samples(metrics)
  t.equal(sumOf(s, 'faultline_requests_total', { route: 'pay', outcome: 'ok' }), 3)
  t.equal(s.filter((x) => x.name === 'faultline_requests_total' && x.labels.route === 'pay').length, 1, 'one series')
})

t.test('two Metrics instances do not share counts', async (t) => {
  const a = new Metrics({ defaultMetrics: false })
  const b = new Metrics({ defaultMetrics: false })
  new RouteMetrics(a, 'pay').request('u', 'GET', 200, 'ok', 0.001)
  t.equal(sumOf(await samples(b), 'faultline_requests_total'), 0)
  t.equal(sumOf(await samples(a), 'faultline_requests_total'), 1)
})
