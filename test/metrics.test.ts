import t from 'tap'
import { closedPort, fetchText, route, scrape, startProxy, startUpstream, sumOf } from './helpers.js'

t.test('metric values after a known sequence of requests', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    if (req.url?.startsWith('/svc/fail')) { res.statusCode = 503; res.end('no'); return }
    if (req.url?.startsWith('/svc/missing')) { res.statusCode = 404; res.end('none'); return }
    if (req.url?.startsWith('/svc/denied')) { res.statusCode = 401; res.end('who?'); return }
    res.end('ok')
  })
  const down = await closedPort()
  const proxy = await startProxy(t, {
    routes: [
      route('svc', '/svc', upstream.url),
      route('down', '/down', `http://127.0.0.1:${down}`)
    ]
  })
  for (let i = 0; i < 3; i++) t.equal((await fetchText(`${proxy.url}/svc/ok/${i}?id=${i}`)).status, 200)
  for (let i = 0; i < 2; i++) t.equal((await fetchText(`${proxy.url}/svc/fail`)).status, 503)
  t.equal((await fetchText(`${proxy.url}/svc/missing`, { method: 'DELETE' })).status, 404)
  t.equal((await fetchText(`${proxy.url}/svc/denied`)).status, 401)
  t.equal((await fetchText(`${proxy.url}/down`)).status, 502)
  t.equal((await fetchText(`${proxy.url}/nowhere`)).status, 404)

  const s = await scrape(proxy)
  const requests = (labels: Record<string, string>): number => sumOf(s, 'faultline_requests_total', labels)
  t.equal(requests({ route: 'svc', upstream: `127.0.0.1:${upstream.port}`, method: 'GET', status_class: '2xx', outcome: 'ok' }), 3)
  t.equal(requests({ route: 'svc', method: 'GET', status_class: '5xx', outcome: 'failed' }), 2)
  t.equal(requests({ route: 'svc', method: 'DELETE', status_class: '4xx', outcome: 'ok' }), 1, 'a 404 from the upstream is its answer, not a failure')
  t.equal(requests({ route: 'svc', status_class: '4xx' }), 2)
  t.equal(requests({ route: 'down', status_class: '5xx', outcome: 'failed' }), 1)
  t.equal(requests({}), 8, 'the unmatched request has no route label')
  t.equal(sumOf(s, 'faultline_unmatched_requests_total'), 1)
  t.equal(sumOf(s, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'http_5xx' }), 2)
  t.equal(sumOf(s, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'auth' }), 1)
  t.equal(sumOf(s, 'faultline_upstream_errors_total', { route: 'down', error_class: 'connect' }), 1)
  t.equal(sumOf(s, 'faultline_request_duration_seconds_count', { route: 'svc' }), 7)
  t.equal(sumOf(s, 'faultline_request_duration_seconds_count', { route: 'svc', outcome: 'ok' }), 5, '3 x 200, the 404 and the 401 were answered')
  t.ok(sumOf(s, 'faultline_request_duration_seconds_sum', { route: 'svc' }) > 0)
  t.equal(sumOf(s, 'faultline_routes'), 2)
  const labelValues = s.filter((x) => x.name.startsWith('faultline_')).flatMap((x) => Object.values(x.labels))
  t.notOk(labelValues.some((v) => v.includes('/') || v.includes('?')), 'no raw path or query ever becomes a label value')
})

t.test('one JSON log line per request, without credentials', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { routes: [route('svc', '/svc', upstream.url)] })
  await fetchText(`${proxy.url}/svc/x?token=abc`, { headers: { authorization: 'Bearer very-secret', cookie: 'session=hunter2', 'x-request-id': 'log-test-1' } })
  let lines = proxy.logs.lines.filter((l) => l.msg === 'request')
  for (let i = 0; i < 20 && lines.length === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    lines = proxy.logs.lines.filter((l) => l.msg === 'request')
  }
  t.equal(lines.length, 1)
  t.match(lines[0], { route: 'svc', method: 'GET', path: '/svc/x', status: 200, outcome: 'ok', requestId: 'log-test-1', attempts: 1 })
  t.type(lines[0]?.durationMs, 'number')
  const all = JSON.stringify(proxy.logs.lines)
  t.notOk(all.includes('very-secret'), 'no Authorization value')
  t.notOk(all.includes('hunter2'), 'no Cookie value')
  t.notOk(all.includes('token=abc'), 'no query string')
})
