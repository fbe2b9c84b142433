import t from 'tap'
import { closedPort, fetchText, route, startProxy, startUpstream } from '../helpers.js'

t.test('longest prefix wins, on segment boundaries; host and methods narrow; rewritePrefix rewrites', async (t) => {
  const upstream = await startUpstream(t, (req, res) => { res.end(req.url) })
  const named = async (name: string, url: string): Promise<ReturnType<typeof route>> => {
    const u = await startUpstream(t, (req, res) => { res.setHeader('x-route', name); res.end(req.url) })
    return route(name, url, u.url)
  }
  const proxy = await startProxy(t, {
    routes: [
      await named('root', '/'),
      await named('api', '/api'),
      await named('api-users', '/api/users'),
      { ...(await named('api-admin-host', '/api')), match: { pathPrefix: '/api', host: 'admin.local' } },
      { ...(await named('writes', '/api/orders')), match: { pathPrefix: '/api/orders', methods: ['POST', 'PUT'] } },
      { ...(await named('v1', '/legacy')), match: { pathPrefix: '/legacy', rewritePrefix: '/v1' } },
      { ...(await named('strip', '/strip/')), match: { pathPrefix: '/strip/', rewritePrefix: '/' } }
    ]
  })
  void upstream
  const cases: Array<[string, string, Record<string, string>, string, string]> = [
    ['GET', '/api/users/7', {}, 'api-users', '/api/users/7'],
    ['GET', '/api/usersX', {}, 'api', '/api/usersX'],
    ['GET', '/api?q=1', {}, 'api', '/api?q=1'],
    ['GET', '/apiary', {}, 'root', '/apiary'],
    ['GET', '/api/x', { host: 'admin.local:8080' }, 'api-admin-host', '/api/x'],
    ['GET', '/api/orders/1', {}, 'api', '/api/orders/1'],
    ['POST', '/api/orders/1', {}, 'writes', '/api/orders/1'],
    ['GET', '/legacy/items?x=1', {}, 'v1', '/v1/items?x=1'],
    ['GET', '/legacy', {}, 'v1', '/v1'],
    ['GET', '/strip/a/b', {}, 'strip', '/a/b'],
    ['GET', '/', {}, 'root', '/']
  ]
  for (const [method, path, headers, expectedRoute, expectedPath] of cases) {
    const res = await fetchText(`${proxy.url}${path}`, { method, headers, body: method === 'POST' ? '{}' : undefined })
    t.equal(res.headers['x-route'], expectedRoute, `${method} ${path} -> ${expectedRoute}`)
    t.equal(res.body, expectedPath, `${method} ${path} reaches the upstream as ${expectedPath}`)
  }
})

t.test('an unmatched path gets a 404 JSON naming it', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end() })
  const proxy = await startProxy(t, { routes: [route('only', '/only', upstream.url)] })
  const res = await fetchText(`${proxy.url}/elsewhere/x?secret=1`)
  t.equal(res.status, 404)
  t.match(res.headers['content-type'], /application\/json/)
  const body = JSON.parse(res.body) as { error: string, path: string, message: string }
  t.equal(body.error, 'no_route')
  t.equal(body.path, '/elsewhere/x', 'the path is named, the query is not echoed')
  t.match(body.message, /GET \/elsewhere\/x/)
  t.equal(upstream.hits(), 0)
})

t.test('an unreachable upstream gives 502 JSON with the error class', async (t) => {
  const port = await closedPort()
  const proxy = await startProxy(t, { routes: [route('down', '/down', `http://127.0.0.1:${port}`)] })
  const res = await fetchText(`${proxy.url}/down/x`)
  t.equal(res.status, 502)
  const body = JSON.parse(res.body) as Record<string, string>
  t.equal(body.error, 'upstream_unavailable')
  t.equal(body.class, 'connect')
  t.equal(body.route, 'down')
  t.equal(body.requestId, res.headers['x-request-id'])
})

t.test('an upstream slower than the route timeout gives 504 in time', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { setTimeout(() => res.end('late'), 2_000).unref() })
  const proxy = await startProxy(t, { routes: [route('slow', '/slow', upstream.url, { resilience: { timeoutMs: 200 } })] })
  const res = await fetchText(`${proxy.url}/slow`)
  t.equal(res.status, 504)
  t.equal((JSON.parse(res.body) as Record<string, string>).class, 'timeout')
  t.ok(res.ms >= 180, `waited for the deadline (${res.ms.toFixed(0)} ms)`)
  t.ok(res.ms < 1_000, `answered soon after the 200 ms deadline (${res.ms.toFixed(0)} ms), not at undici's coarse timer`)
})

t.test('an upstream that dies mid-body aborts the client response cleanly: reset, or invalid_response when it promised a length', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    // Chunked (no length promised): dying mid-way is a reset. With a
    // Content-Length, the same death is a truncated, invalid response.
    res.writeHead(200, req.url === '/dies/chunked' ? {} : { 'content-length': '100000' })
    res.write(Buffer.alloc(1000, 97))
    setTimeout(() => res.socket?.destroy(), 50)
  })
  const proxy = await startProxy(t, { routes: [route('dies', '/dies', upstream.url)] })
  const { request } = await import('undici')
  for (const path of ['/dies/chunked', '/dies/sized']) {
    const res = await request(`${proxy.url}${path}`)
    t.equal(res.statusCode, 200, 'the status line was already sent')
    await t.rejects(res.body.text(), `${path}: the client sees the body fail, not a silently short body`)
  }
  const { scrape, sumOf } = await import('../helpers.js')
  // The close is recorded once the proxy sees the client connection end.
  let samples = await scrape(proxy)
  for (let i = 0; i < 40 && sumOf(samples, 'faultline_requests_total', { route: 'dies' }) < 2; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25))
    samples = await scrape(proxy)
  }
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'dies', error_class: 'reset' }), 1)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'dies', error_class: 'invalid_response' }), 1)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'dies', outcome: 'failed' }), 2)
})
