import t from 'tap'
import { request } from 'undici'
import { closedPort, fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'
import { scriptedUpstream } from './fixtures.js'
import { parseConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/config/errors.js'

t.test('cache: the last good answer is served when the upstream fails; fresh is a hit, past freshness is stale', async (t) => {
  const upstream = await scriptedUpstream(t, [
    { status: 200, body: 'stale-ok' },
    { status: 200, body: 'fresh-ok', headers: { 'cache-control': 'max-age=60' } },
    503
  ])
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } })] })
  t.equal((await fetchText(`${proxy.url}/c/one?x=1`)).body, 'stale-ok')
  t.equal((await fetchText(`${proxy.url}/c/two`)).body, 'fresh-ok')
  const one = await fetchText(`${proxy.url}/c/one?x=1`)
  t.equal(one.status, 200)
  t.equal(one.body, 'stale-ok')
  t.equal(one.headers['x-faultline-fallback'], 'cache')
  t.equal(one.headers['x-faultline-outcome'], 'fallback_cache')
  t.match(one.headers.age, /^\d+$/)
  const two = await fetchText(`${proxy.url}/c/two`)
  t.equal(two.body, 'fresh-ok')
  const otherQuery = await fetchText(`${proxy.url}/c/one?x=2`)
  t.equal(otherQuery.status, 503, 'another query is another key: miss, the failure goes out')
  t.equal(otherQuery.headers['x-faultline-fallback'], undefined)
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_cache_stores_total', { route: 'c' }), 2)
  t.equal(sumOf(m, 'faultline_cache_lookups_total', { route: 'c', result: 'stale' }), 1)
  t.equal(sumOf(m, 'faultline_cache_lookups_total', { route: 'c', result: 'hit' }), 1)
  t.equal(sumOf(m, 'faultline_cache_lookups_total', { route: 'c', result: 'miss' }), 1)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'c', outcome: 'fallback_cache' }), 2)
  const state = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body).routes[0].state.fallback
  t.equal(state.cache.entries, 2, 'the cache is visible in GET /routes')
})

t.test('cache honours no-store, private, must-revalidate and Authorization', async (t) => {
  const cases: Array<[string, Record<string, string>]> = [
    ['no-store', { 'cache-control': 'no-store' }],
    ['private', { 'cache-control': 'private, max-age=60' }],
    ['must-revalidate', { 'cache-control': 'max-age=0, must-revalidate' }],
    ['set-cookie', { 'set-cookie': 'session=abc' }]
  ]
  for (const [name, headers] of cases) {
    const upstream = await scriptedUpstream(t, [{ status: 200, headers }, 503])
    const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } })] })
    t.equal((await fetchText(`${proxy.url}/c`)).status, 200)
    const res = await fetchText(`${proxy.url}/c`)
    t.equal(res.status, 503, `${name}: not served from cache`)
    t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total', { route: 'c' }), 0, `${name}: not stored`)
  }
  const upstream = await scriptedUpstream(t, [200, 503])
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } })] })
  await fetchText(`${proxy.url}/c`, { headers: { authorization: 'Bearer secret' } })
  t.equal((await fetchText(`${proxy.url}/c`)).status, 503, 'an answer to an authorised request is not shared')
})

t.test('stale-if-error (RFC 5861) extends or limits the stale window per response', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    if (req.headers['x-fail'] !== undefined) { res.writeHead(503).end(); return }
    const cc = req.url === '/c/sie' ? 'max-age=0, stale-if-error=60' : req.url === '/c/sie-mr' ? 'max-age=0, must-revalidate, stale-if-error=60' : 'max-age=0'
    res.writeHead(200, { 'cache-control': cc }).end(req.url)
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: [{ cache: { maxStaleMs: 0 } }] } })] })
  for (const path of ['/c/sie', '/c/sie-mr', '/c/plain']) await fetchText(`${proxy.url}${path}`)
  const fail = { headers: { 'x-fail': '1' } }
  t.equal((await fetchText(`${proxy.url}/c/sie`, fail)).body, '/c/sie', 'served stale within stale-if-error')
  t.equal((await fetchText(`${proxy.url}/c/sie-mr`, fail)).body, '/c/sie-mr', 'stale-if-error overrides must-revalidate')
  t.equal((await fetchText(`${proxy.url}/c/plain`, fail)).status, 503, 'maxStaleMs 0 and no stale-if-error: not served')
})

t.test('the cache tees the body: the client gets headers and first bytes before the upstream finishes', async (t) => {
  let fail = false
  // The upstream ends its body only once the client has seen the first part
  // (or after 5 s): ordering, not wall time, so a loaded machine cannot flake it.
  let sawFirst = (): void => {}
  const clientSawFirst = new Promise<void>((resolve) => { sawFirst = resolve })
  let upstreamEnded = false
  const upstream = await startUpstream(t, (_req, res) => {
    if (fail) { res.writeHead(502).end(); return }
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('first-')
    const end = (): void => { upstreamEnded = true; res.end('last') }
    const backstop = setTimeout(end, 5_000)
    void clientSawFirst.then(() => { clearTimeout(backstop); setTimeout(end, 20) })
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } })] })
  const res = await request(`${proxy.url}/c`)
  t.notOk(upstreamEnded, 'headers arrived before the upstream finished the body')
  const chunks: string[] = []
  for await (const chunk of res.body) {
    if (chunks.length === 0) t.notOk(upstreamEnded, 'and so did the first bytes')
    chunks.push(String(chunk))
    sawFirst()
  }
  t.ok(chunks.length >= 2, 'the body arrived in parts')
  t.equal(chunks.join(''), 'first-last')
  fail = true
  const cached = await fetchText(`${proxy.url}/c`)
  t.equal(cached.body, 'first-last', 'the whole body was stored')
})

t.test('cache: an entry over maxEntryBytes or a truncated body is not stored', async (t) => {
  let step = 0
  const upstream = await startUpstream(t, (req, res) => {
    step++
    if (req.url === '/c/big') {
      if (step > 2) { res.writeHead(503).end(); return }
      res.writeHead(200).end('x'.repeat(2048))
    } else {
      res.writeHead(200, { 'content-length': '100' })
      res.write('only part')
      setTimeout(() => req.socket.destroy(), 20)
    }
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: [{ cache: { maxEntryBytes: 1024 } }] } })] })
  t.equal((await fetchText(`${proxy.url}/c/big`)).body.length, 2048, 'streamed to the client in full')
  await fetchText(`${proxy.url}/c/big`)
  t.equal((await fetchText(`${proxy.url}/c/big`)).status, 503, 'but not stored')
  await t.rejects(fetchText(`${proxy.url}/c/truncated`), 'a truncated body aborts the client response')
  await new Promise((resolve) => setTimeout(resolve, 50))
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_cache_stores_total', { route: 'c' }), 0)
  t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'c', error_class: 'invalid_response' }), 1, 'body shorter than Content-Length')
})

t.test('alternate: the next upstream answers when the primary fails; bodies are replayed', async (t) => {
  const port = await closedPort()
  const bodies: string[] = []
  const alt = await scriptedUpstream(t, [{ status: 200, body: 'from-b' }], (_req, body) => { bodies.push(body) })
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', `http://127.0.0.1:${port}`, {
      upstream: { url: `http://127.0.0.1:${port}`, alternates: [`http://127.0.0.1:${await closedPort()}`, alt.url] },
      resilience: { fallback: ['alternate'] }
    })]
  })
  const res = await fetchText(`${proxy.url}/a`)
  t.equal(res.status, 200)
  t.equal(res.body, 'from-b')
  t.equal(res.headers['x-faultline-fallback'], 'alternate')
  t.equal(res.headers['x-faultline-outcome'], 'fallback_alternate')
  t.equal(res.headers['x-faultline-attempts'], '3', 'primary, first alternate (down), second alternate')
  const put = await fetchText(`${proxy.url}/a`, { method: 'PUT', body: 'payload' })
  t.equal(put.status, 200)
  t.same(bodies, ['', 'payload'])
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'a', outcome: 'fallback_alternate', upstream: new URL(alt.url).host }), 2, 'labelled with the upstream that answered')
})

t.test('static, chain order, and fallback for a short-circuited request', async (t) => {
  const upstream = await scriptedUpstream(t, [{ status: 200, body: 'good' }, 500])
  const proxy = await startProxy(t, {
    routes: [route('s', '/s', upstream.url, {
      resilience: {
        breaker: { consecutiveFailures: 2, openMs: 60_000 },
        fallback: ['cache', { static: { status: 200, headers: { 'content-type': 'application/json' }, body: '{"degraded":true}' } }]
      }
    })]
  })
  t.equal((await fetchText(`${proxy.url}/s/known`)).body, 'good')
  const st = await fetchText(`${proxy.url}/s/unknown`)
  t.equal(st.status, 200)
  t.equal(st.body, '{"degraded":true}', 'cache miss, then static')
  t.equal(st.headers['content-type'], 'application/json')
  t.equal(st.headers['x-faultline-fallback'], 'static')
  t.equal(st.headers['x-faultline-outcome'], 'fallback_static')
  await fetchText(`${proxy.url}/s/unknown`)
  const sc = await fetchText(`${proxy.url}/s/known`)
  t.equal(sc.body, 'good', 'the breaker is open, the cache answers')
  t.equal(sc.headers['x-faultline-fallback'], 'cache')
  t.equal(upstream.hits(), 3, 'the short-circuited request never reached the upstream')
})

t.test('failFast: no fallback, an immediate clear error; contradictions are config errors', async (t) => {
  const port = await closedPort()
  const proxy = await startProxy(t, { routes: [route('f', '/f', `http://127.0.0.1:${port}`, { resilience: { failFast: true } })] })
  const res = await fetchText(`${proxy.url}/f`)
  t.equal(res.status, 502)
  t.equal(res.headers['x-faultline-outcome'], 'failed')
  t.equal(res.headers['x-faultline-attempts'], '1')
  const body = JSON.parse(res.body)
  t.equal(body.class, 'connect')
  t.match(body.message, /cannot connect/)
  const bad = (resilience: unknown, upstream: Record<string, unknown> = {}): string => {
    try {
      parseConfig({ routes: [{ name: 'x', match: { pathPrefix: '/x' }, upstream: { url: 'http://127.0.0.1:1', ...upstream }, resilience }] }, 'f.yaml')
      return 'accepted'
    } catch (err) {
      return err instanceof ConfigError ? err.message : String(err)
    }
  }
  t.match(bad({ failFast: true, fallback: ['cache'] }), /routes\[0\]\.resilience\.failFast: expected failFast or fallback/)
  t.match(bad({ failFast: true, retry: {} }), /failFast or retry/)
  t.match(bad({ fallback: ['alternate'] }), /resilience\.fallback\[0\]: expected upstream\.alternates/)
  t.match(bad({ fallback: ['cache', 'cache'] }), /each fallback kind once/)
  t.match(bad({ breaker: { consecutiveFailures: 3, failureRate: 0.5 } }), /not both/)
  t.equal(bad({ fallback: ['alternate'] }, { alternates: ['http://127.0.0.1:2'] }), 'accepted')
})

t.test('cache refreshMs: a variant stored within refreshMs is not stored again; 0 stores every answer', async (t) => {
  for (const [refreshMs, expected, stores] of [[60_000, 'first', 1], [0, 'second', 2]] as const) {
    const upstream = await scriptedUpstream(t, [{ status: 200, body: 'first' }, { status: 200, body: 'second' }, 503])
    const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: [{ cache: { refreshMs } }] } })] })
    t.equal((await fetchText(`${proxy.url}/c/x`)).body, 'first')
    t.equal((await fetchText(`${proxy.url}/c/x`)).body, 'second')
    const served = await fetchText(`${proxy.url}/c/x`)
    t.equal(served.headers['x-faultline-fallback'], 'cache', `refreshMs ${refreshMs}: the failure is answered from the cache`)
    t.equal(served.body, expected, `refreshMs ${refreshMs}: the cache holds the ${expected} answer`)
    t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total', { route: 'c' }), stores)
  }
})

t.test('alternate: its answer is validated like the primary\'s; an invalid one falls through to the next step', async (t) => {
  const primary = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('down') })
  const alt = await startUpstream(t, (req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(req.url === '/v/good' ? '{"id":1}' : '{"id":"not a number"}')
  })
  const proxy = await startProxy(t, {
    routes: [route('v', '/v', primary.url, {
      upstream: { url: primary.url, alternates: [alt.url] },
      validate: { schema: { type: 'object', required: ['id'], properties: { id: { type: 'number' } } } },
      resilience: { fallback: ['alternate', { static: { status: 200, body: 'static' } }] }
    })]
  })
  const good = await fetchText(`${proxy.url}/v/good`)
  t.equal(good.body, '{"id":1}', 'a valid alternate answer is served')
  t.equal(good.headers['x-faultline-fallback'], 'alternate')
  const bad = await fetchText(`${proxy.url}/v/bad`)
  t.equal(bad.body, 'static', 'an alternate answer that fails validation never reaches the caller: the next step answers')
  t.equal(bad.headers['x-faultline-fallback'], 'static')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'v', error_class: 'invalid_response' }), 1, 'counted as the alternate attempt\'s failure')
})
