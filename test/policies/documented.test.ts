/**
 * Sentences of docs/POLICIES.md that no other test held the code to,
 * each checked through the proxy against a real upstream.
 */
import t from 'tap'
import { closedPort, fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'
import { scriptedUpstream } from './fixtures.js'

t.test('breaker: 401, 403 and 429 are not failures (the upstream is up and answering)', async (t) => {
  const upstream = await scriptedUpstream(t, [401, 403, 429, 401, 403, 429, 503, 503, 200])
  const proxy = await startProxy(t, { routes: [route('b', '/b', upstream.url, { resilience: { breaker: { consecutiveFailures: 2, openMs: 60_000 } } })] })
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await fetchText(`${proxy.url}/b`)).status)
  t.same(statuses, [401, 403, 429, 401, 403, 429], 'six answers in a row, none short-circuited')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_breaker_transitions_total', { route: 'b' }), 0, 'the breaker never moved')
  // The same breaker does open on two 5xx, so it was armed all along.
  await fetchText(`${proxy.url}/b`)
  await fetchText(`${proxy.url}/b`)
  const shorted = await fetchText(`${proxy.url}/b`)
  t.equal(shorted.status, 503)
  t.equal(JSON.parse(shorted.body).error, 'short_circuited')
  t.equal(upstream.hits(), 8)
})

t.test('alternate: an unsafe method the primary saw goes to an alternate only with an Idempotency-Key', async (t) => {
  const bodies: string[] = []
  const primary = await scriptedUpstream(t, [503])
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'from-alternate' }], (_req, body) => { bodies.push(body) })
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', primary.url, { upstream: { url: primary.url, alternates: [alternate.url] }, resilience: { fallback: ['alternate'] } })]
  })
  const post = await fetchText(`${proxy.url}/a`, { method: 'POST', body: 'order-1' })
  t.equal(post.status, 503, 'without a key the primary\'s answer goes out: the order may have been taken')
  t.equal(post.headers['x-faultline-fallback'], undefined)
  t.equal(alternate.hits(), 0)
  const keyed = await fetchText(`${proxy.url}/a`, { method: 'POST', body: 'order-2', headers: { 'idempotency-key': 'k-2' } })
  t.equal(keyed.status, 200, 'with a key it may be sent again')
  t.equal(keyed.body, 'from-alternate')
  t.equal(keyed.headers['x-faultline-fallback'], 'alternate')
  t.same(bodies, ['order-2'], 'the body replayed to the alternate')
})

t.test('alternate: an unsafe method the primary never saw (connect refused) goes to an alternate without a key', async (t) => {
  const port = await closedPort()
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'from-alternate' }])
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', `http://127.0.0.1:${port}`, { upstream: { url: `http://127.0.0.1:${port}`, alternates: [alternate.url] }, resilience: { fallback: ['alternate'] } })]
  })
  const post = await fetchText(`${proxy.url}/a`, { method: 'POST', body: 'order-1' })
  t.equal(post.status, 200)
  t.equal(post.body, 'from-alternate')
  t.equal(alternate.hits(), 1)
})

t.test('cache key: the request headers the response Varies on; Vary: * and 206 are never stored', async (t) => {
  let failing = false
  const upstream = await startUpstream(t, (req, res) => {
    if (failing) { res.writeHead(503).end('down'); return }
    if (req.url === '/c/star') { res.writeHead(200, { vary: '*' }).end('star'); return }
    if (req.url === '/c/partial') { res.writeHead(206, { 'content-range': 'bytes 0-3/10' }).end('part'); return }
    res.writeHead(200, { vary: 'Accept-Language' }).end(`hello in ${String(req.headers['accept-language'])}`)
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } })] })
  const en = { headers: { 'accept-language': 'en' } }
  const de = { headers: { 'accept-language': 'de' } }
  t.equal((await fetchText(`${proxy.url}/c/greeting`, en)).body, 'hello in en')
  t.equal((await fetchText(`${proxy.url}/c/greeting`, de)).body, 'hello in de')
  t.equal((await fetchText(`${proxy.url}/c/star`)).body, 'star')
  t.equal((await fetchText(`${proxy.url}/c/partial`)).status, 206)
  failing = true
  const fromCacheEn = await fetchText(`${proxy.url}/c/greeting`, en)
  t.equal(fromCacheEn.headers['x-faultline-fallback'], 'cache')
  t.equal(fromCacheEn.body, 'hello in en', 'each variant answers its own requests')
  t.equal((await fetchText(`${proxy.url}/c/greeting`, de)).body, 'hello in de')
  const fr = await fetchText(`${proxy.url}/c/greeting`, { headers: { 'accept-language': 'fr' } })
  t.equal(fr.status, 503, 'a variant never stored is a miss')
  t.equal((await fetchText(`${proxy.url}/c/star`)).status, 503, 'Vary: * was not stored')
  t.equal((await fetchText(`${proxy.url}/c/partial`)).status, 503, 'a 206 was not stored')
  t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total', { route: 'c' }), 2, 'only the two greeting variants')
})

t.test('cache: a HEAD answer is stored and a failed HEAD is answered from it, without a body', async (t) => {
  let failing = false
  const upstream = await startUpstream(t, (req, res) => {
    if (failing) { res.writeHead(503).end(); return }
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5', etag: '"h1"' })
    res.end(req.method === 'HEAD' ? undefined : 'hello')
  })
  const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } })] })
  t.equal((await fetchText(`${proxy.url}/c/x`, { method: 'HEAD' })).status, 200)
  failing = true
  const head = await fetchText(`${proxy.url}/c/x`, { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers['x-faultline-fallback'], 'cache')
  t.equal(head.headers.etag, '"h1"')
  t.equal(head.body, '')
})

t.test('retry: a connect failure is retried for any method, a POST with a body included (the upstream never saw it)', async (t) => {
  const port = await closedPort()
  const proxy = await startProxy(t, { routes: [route('r', '/r', `http://127.0.0.1:${port}`, { resilience: { retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 2 }, budgetRatio: 10 } } })] })
  const bodiless = await fetchText(`${proxy.url}/r`, { method: 'POST' })
  t.equal(bodiless.headers['x-faultline-attempts'], '3', 'a POST without a body')
  const post = await fetchText(`${proxy.url}/r`, { method: 'POST', body: 'order-1', headers: { 'content-type': 'text/plain' } })
  t.equal(post.status, 502)
  t.equal(post.headers['x-faultline-attempts'], '3', 'a POST with a body')
})

t.test('retries: one the breaker refused is not counted, even when an alternate answers after it', async (t) => {
  const primary = await scriptedUpstream(t, [503])
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'from-alternate' }])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', primary.url, {
      upstream: { url: primary.url, alternates: [alternate.url] },
      resilience: { retry: { attempts: 2, backoff: { baseMs: 1, maxMs: 2 } }, breaker: { consecutiveFailures: 1, openMs: 60_000 }, fallback: ['alternate'] }
    })]
  })
  const res = await fetchText(`${proxy.url}/r`)
  t.equal(res.status, 200)
  t.equal(res.headers['x-faultline-fallback'], 'alternate')
  t.equal(primary.hits(), 1, 'the 503 opened the breaker, which refused the retry')
  t.equal(alternate.hits(), 1)
  t.equal(sumOf(await scrape(proxy), 'faultline_retries_total', { route: 'r' }), 0, 'no retry was sent, none is counted')
})
