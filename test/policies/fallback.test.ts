import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import { text } from 'node:stream/consumers'
import t from 'tap'
import { request } from 'undici'
import { closedPort, fetchText, rawExchange, route, scrape, startProxy, startUpstream, sumOf, within, type Teardown } from '../helpers.js'
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
  t.match(state.cache, { entries: 2, maxEntries: 1_000, maxBytes: 16 * 1024 * 1024, maxStaleMs: 300_000 }, 'the cache and its limits are visible in GET /routes')
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
  t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total', { route: 'c' }), 2, 'an answer servable for 0 ms is not even stored')
})

t.test('past freshness, maxStaleMs applies (a malformed stale-if-error is ignored), never to no-cache, must-revalidate, proxy-revalidate or s-maxage', async (t) => {
  const servable = ['/c/plain', '/c/sie-unit', '/c/sie-prefix']
  const rules: Record<string, string> = {
    '/c/plain': 'max-age=0',
    '/c/sie-unit': 'max-age=0, stale-if-error=60s',
    '/c/sie-prefix': 'max-age=0, stale-if-error=x60',
    '/c/no-cache': 'max-age=0, no-cache',
    '/c/must': 'max-age=0, must-revalidate',
    '/c/proxy': 'max-age=0, proxy-revalidate',
    '/c/shared': 'max-age=60, s-maxage=0'
  }
  let failing = false
  const upstream = await startUpstream(t, (req, res) => {
    if (failing) { res.writeHead(503).end(); return }
    res.writeHead(200, { 'cache-control': rules[req.url ?? ''] ?? 'no-store' }).end(req.url)
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: [{ cache: { maxStaleMs: 60_000 } }] } })] })
  for (const path of Object.keys(rules)) await fetchText(`${proxy.url}${path}`)
  failing = true
  for (const path of servable) t.equal((await fetchText(`${proxy.url}${path}`)).body, path, `${rules[path]!}: served stale for maxStaleMs`)
  for (const path of Object.keys(rules).slice(servable.length)) t.equal((await fetchText(`${proxy.url}${path}`)).status, 503, `${rules[path]!}: not served`)
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

t.test('cache: an entry of exactly maxEntryBytes is stored; a chunked body over it streams in full and is not', async (t) => {
  let failing = false
  const upstream = await startUpstream(t, (req, res) => {
    if (failing) { res.writeHead(503).end(); return }
    if (req.url === '/c/exact') { res.writeHead(200, { 'content-length': '1024' }).end('e'.repeat(1024)); return }
    // No Content-Length: the size is only found while the body is teed into the store.
    res.writeHead(200)
    res.write('c'.repeat(1000))
    setTimeout(() => { res.end('c'.repeat(1000)) }, 10)
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: [{ cache: { maxEntryBytes: 1024 } }] } })] })
  t.equal((await fetchText(`${proxy.url}/c/exact`)).body.length, 1024)
  t.equal((await fetchText(`${proxy.url}/c/chunked`)).body, 'c'.repeat(2000), 'the client gets the whole body')
  failing = true
  t.equal((await fetchText(`${proxy.url}/c/exact`)).body, 'e'.repeat(1024), 'exactly the limit: stored')
  t.equal((await fetchText(`${proxy.url}/c/chunked`)).status, 503, 'over it: not stored')
  t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total', { route: 'c' }), 1)
})

t.test('cache key: a Vary naming several headers, in one field or two, keys on each of them', async (t) => {
  let failing = false
  const upstream = await startUpstream(t, (req, res) => {
    if (failing) { res.writeHead(503).end(); return }
    // Two fields on /c/two: the proxy sees them as one list.
    res.setHeader('vary', req.url === '/c/two' ? ['X-A', 'X-B'] : 'X-A ,  X-B,')
    res.end(`${req.url ?? ''} ${String(req.headers['x-a'])} ${String(req.headers['x-b'])}`)
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } })] })
  for (const path of ['/c/one', '/c/two']) await fetchText(`${proxy.url}${path}`, { headers: { 'x-a': '1', 'x-b': '1' } })
  failing = true
  for (const path of ['/c/one', '/c/two']) {
    t.equal((await fetchText(`${proxy.url}${path}`, { headers: { 'x-a': '1', 'x-b': '1' } })).body, `${path} 1 1`, `${path}: the same headers hit`)
    t.equal((await fetchText(`${proxy.url}${path}`, { headers: { 'x-a': '1', 'x-b': '2' } })).status, 503, `${path}: another X-B is another variant`)
    t.equal((await fetchText(`${proxy.url}${path}`, { headers: { 'x-a': '2', 'x-b': '1' } })).status, 503, `${path}: another X-A is another variant`)
  }
})

t.test('cache: only 2xx answers to GET and HEAD are kept, whatever their Cache-Control says', async (t) => {
  let failing = false
  const upstream = await startUpstream(t, (req, res) => {
    req.resume()
    req.on('end', () => {
      if (failing) { res.writeHead(503).end('down'); return }
      const status = req.url === '/c/missing' ? 404 : req.url === '/c/moved' ? 301 : 200
      res.writeHead(status, { 'cache-control': 'max-age=60', ...(status === 301 ? { location: '/c/new' } : {}) }).end(`${req.method ?? ''} ${status}`)
    })
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: [{ cache: { refreshMs: 0 } }] } })] })
  t.equal((await fetchText(`${proxy.url}/c/order`, { method: 'POST', body: 'x' })).status, 200)
  t.equal((await fetchText(`${proxy.url}/c/missing`)).status, 404)
  t.equal((await fetchText(`${proxy.url}/c/moved`)).status, 301)
  failing = true
  t.equal((await fetchText(`${proxy.url}/c/order`, { method: 'POST', body: 'x' })).status, 503, 'a POST is never answered from the cache')
  t.equal((await fetchText(`${proxy.url}/c/missing`)).status, 503, 'a 404 is not last-known-good')
  t.equal((await fetchText(`${proxy.url}/c/moved`)).status, 503, 'nor a 301')
  t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total', { route: 'c' }), 0)
})

t.test('cache: an answer\'s Age counts: past max-age it is stale from the start, and kept only as long as it is servable', async (t) => {
  let failing = false
  const upstream = await startUpstream(t, (req, res) => {
    if (failing) { res.writeHead(503).end(); return }
    // /c/aged/… arrive 90 s old with 60 s of freshness; /c/fresh is new.
    const headers = req.url === '/c/fresh' ? { 'cache-control': 'max-age=60' } : { 'cache-control': 'max-age=60', age: '90' }
    res.writeHead(200, headers).end(req.url)
  })
  const proxy = await startProxy(t, {
    routes: [
      route('s', '/c/aged', upstream.url, { resilience: { fallback: [{ cache: { maxStaleMs: 60_000 } }] } }),
      route('z', '/c', upstream.url, { resilience: { fallback: [{ cache: { maxStaleMs: 0 } }] } })
    ]
  })
  for (const path of ['/c/aged/a', '/c/fresh', '/c/old']) await fetchText(`${proxy.url}${path}`)
  failing = true
  const aged = await fetchText(`${proxy.url}/c/aged/a`)
  t.equal(aged.body, '/c/aged/a', '30 s past freshness, within maxStaleMs 60 s: served')
  t.ok(Number(aged.headers.age) >= 90, 'its Age goes on from the upstream\'s')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_cache_lookups_total', { route: 's', result: 'stale' }), 1)
  t.equal((await fetchText(`${proxy.url}/c/fresh`)).body, '/c/fresh', 'maxStaleMs 0: a fresh answer is kept for its freshness')
  t.equal((await fetchText(`${proxy.url}/c/old`)).status, 503, 'maxStaleMs 0 and already stale: not served')
  t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total', { route: 'z' }), 1, 'and not stored')
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
  const state = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body).routes[0].state.fallback
  t.same(state.steps, ['cache', 'static'], 'GET /routes lists the chain\'s steps in order')
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

t.test('a 429 is a failure the chain replaces; an alternate answering 500 or 429 is passed over for the next', async (t) => {
  const primary = await scriptedUpstream(t, [429])
  const broken = await scriptedUpstream(t, [500])
  const busy = await scriptedUpstream(t, [429])
  const good = await scriptedUpstream(t, [{ status: 200, body: 'from-third' }])
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', primary.url, { upstream: { url: primary.url, alternates: [broken.url, busy.url, good.url] }, resilience: { fallback: ['alternate'] } })]
  })
  const res = await fetchText(`${proxy.url}/a`)
  t.equal(res.status, 200)
  t.equal(res.body, 'from-third')
  t.equal(res.headers['x-faultline-attempts'], '4', 'the primary and three alternates, in order')
  t.same([primary.hits(), broken.hits(), busy.hits(), good.hits()], [1, 1, 1, 1])
})

t.test('alternate: none is tried once the request\'s deadline has passed; the timeout goes out', async (t) => {
  const primary = await scriptedUpstream(t, ['hang'])
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'too late' }])
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', primary.url, { upstream: { url: primary.url, alternates: [alternate.url] }, resilience: { timeoutMs: 300, fallback: ['alternate'] } })]
  })
  // Several at once: the deadline's timer may fire a fraction of a millisecond before the clock reaches it.
  const answers = await Promise.all(Array.from({ length: 8 }, async () => await fetchText(`${proxy.url}/a`)))
  t.same(answers.map((r) => r.status), Array(8).fill(504))
  t.same(answers.map((r) => r.headers['x-faultline-attempts']), Array(8).fill('1'), 'no attempt at the alternate')
  t.equal(alternate.hits(), 0)
})

t.test('alternate: a POST refused by the open breaker never reached the primary, so it goes to an alternate without a key', async (t) => {
  const primary = await scriptedUpstream(t, [503])
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'from-alternate' }])
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', primary.url, {
      upstream: { url: primary.url, alternates: [alternate.url] },
      resilience: { breaker: { consecutiveFailures: 1, openMs: 60_000 }, fallback: ['alternate'] }
    })]
  })
  t.equal((await fetchText(`${proxy.url}/a`)).body, 'from-alternate', 'the GET that opened the breaker')
  const post = await fetchText(`${proxy.url}/a`, { method: 'POST', body: 'order-1' })
  t.equal(post.status, 200)
  t.equal(post.body, 'from-alternate')
  t.equal(post.headers['x-faultline-fallback'], 'alternate')
  t.equal(primary.hits(), 1, 'the POST was short-circuited')
})

t.test('alternate: a POST the primary may have taken (the connection reset after it was sent) is not sent again', async (t) => {
  const primary = await scriptedUpstream(t, ['reset'])
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'from-alternate' }])
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', primary.url, { upstream: { url: primary.url, alternates: [alternate.url] }, resilience: { fallback: ['alternate'] } })]
  })
  const post = await fetchText(`${proxy.url}/a`, { method: 'POST', body: 'order-1' })
  t.equal(post.status, 502)
  t.equal(post.headers['x-faultline-fallback'], undefined)
  t.equal(alternate.hits(), 0)
  t.equal(primary.hits(), 1)
})

t.test('alternate: a body over maxReplayBytes is sent once, to the primary only; one within it is replayed', async (t) => {
  const primary = await scriptedUpstream(t, [503])
  const bodies: string[] = []
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'from-alternate' }], (_req, body) => { bodies.push(body) })
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', primary.url, {
      upstream: { url: primary.url, alternates: [alternate.url] },
      resilience: { maxReplayBytes: 16, fallback: ['alternate', { static: { status: 200, body: 'static' } }] }
    })]
  })
  const put = await fetchText(`${proxy.url}/a`, { method: 'PUT', body: 'x'.repeat(100) })
  t.equal(put.body, 'static', 'the alternate step passes, the next step answers')
  t.equal(alternate.hits(), 0)
  const small = await fetchText(`${proxy.url}/a`, { method: 'PUT', body: 'y'.repeat(16) })
  t.equal(small.body, 'from-alternate', 'a body within the limit is replayed, the alternate step not being the only one')
  t.same(bodies, ['y'.repeat(16)])
})

t.test('static: an empty body is an empty answer with Content-Length 0', async (t) => {
  const upstream = await scriptedUpstream(t, [503])
  const proxy = await startProxy(t, { routes: [route('s', '/s', upstream.url, { resilience: { fallback: [{ static: { status: 200, body: '' } }] } })] })
  const res = await fetchText(`${proxy.url}/s`)
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], '0')
  t.equal(res.body, '')
  t.equal(res.headers['x-faultline-fallback'], 'static')
  // On the wire: a client stops reading at Content-Length, so bytes past it would only show on the connection.
  const raw = await rawExchange(Number(new URL(proxy.url).port), 'GET /s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 200 /)
  t.equal(raw.slice(raw.indexOf('\r\n\r\n') + 4), '', 'nothing follows the headers')
})

t.test('without an alternate step the request body streams to the upstream: it is not read whole first', async (t) => {
  let upstreamSaw = (): void => {}
  const seen = new Promise<boolean>((resolve) => { upstreamSaw = () => { resolve(true) } })
  const upstream = await startUpstream(t, (req, res) => {
    upstreamSaw()
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => { res.end(Buffer.concat(chunks)) })
  })
  const proxy = await startProxy(t, {
    routes: [route('s', '/s', upstream.url, { resilience: { fallback: ['cache', { static: { status: 200, body: 'static' } }] } })]
  })
  const req = httpRequest(`${proxy.url}/s`, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' } })
  const answer = new Promise<string>((resolve, reject) => {
    req.on('response', (res) => { void text(res).then(resolve, reject) })
    req.on('error', reject)
  })
  req.write('first-')
  // Ordering, not time: the upstream must see the request while the client still holds the rest of its body.
  const early = await within(seen, 5_000, false)
  req.end('last')
  t.ok(early, 'the upstream got the request before the client finished its body')
  t.equal(await answer, 'first-last')
})

t.test('a client fault is not a failure a fallback answers: a body over the route\'s limit is refused 413, not served static', async (t) => {
  const upstream = await startUpstream(t, (req, res) => { req.resume(); req.on('end', () => { res.end('ok') }) })
  const proxy = await startProxy(t, {
    routes: [route('s', '/s', upstream.url, { limits: { maxRequestBodyBytes: 1024 }, resilience: { fallback: [{ static: { status: 200, body: 'static' } }] } })]
  })
  // A stream: sent chunked, so the limit is found while the body flows, inside the pipeline (a declared length is refused before it).
  const res = await request(`${proxy.url}/s`, { method: 'PUT', body: Readable.from([Buffer.alloc(4096, 'x')]) })
  await res.body.text()
  t.equal(res.statusCode, 413)
  t.equal(res.headers['x-faultline-fallback'], undefined)
})

/** An upstream that answers `status` with an endless body (bounded at 64 MiB), and says when its connection closed. */
async function endlessFailure (t: Teardown, status: number): Promise<{ url: string, closed: Promise<boolean> }> {
  let closed = (): void => {}
  const done = new Promise<boolean>((resolve) => { closed = () => { resolve(true) } })
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' })
    const chunk = Buffer.alloc(64 * 1024, 'x')
    let sent = 0
    const pump = (): void => {
      while (sent < 1024 && !res.destroyed) {
        sent++
        if (!res.write(chunk)) { res.once('drain', pump); return }
      }
      if (!res.destroyed) res.end()
    }
    res.on('close', closed)
    pump()
  })
  return { url: upstream.url, closed: done }
}

t.test('a failed answer the chain replaced is thrown away: its upstream connection is freed, the primary\'s and an alternate\'s', async (t) => {
  const primary = await endlessFailure(t, 503)
  const alternate = await endlessFailure(t, 502)
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', primary.url, {
      upstream: { url: primary.url, alternates: [alternate.url] },
      resilience: { fallback: ['alternate', { static: { status: 200, body: 'static' } }] }
    })]
  })
  const res = await fetchText(`${proxy.url}/a`)
  t.equal(res.body, 'static')
  // Unread, each body would hold its connection (and the upstream's writes) for as long as the upstream lets it.
  t.ok(await within(primary.closed, 5_000, false), 'the primary\'s body was dropped and its connection closed')
  t.ok(await within(alternate.closed, 5_000, false), 'and the alternate\'s')
})
