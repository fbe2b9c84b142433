/**
 * Containment, cache side (issue 12): the last-known-good cache never
 * crosses credentials, keeps only real answers, and forgets what a
 * successful unsafe request changed.
 */
import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'
import { CREDENTIAL_VARY, credentialOf } from '../../src/policies/cache.js'

/** An upstream that greets the caller by cookie or bearer token, until it is told to fail. */
async function personalised (t: Parameters<typeof startUpstream>[0], headers: Record<string, string> = {}): Promise<{ url: string, down: (on: boolean) => void }> {
  let down = false
  const upstream = await startUpstream(t, (req, res) => {
    if (down) { res.writeHead(503, { 'content-length': '4' }); res.end('down'); return }
    const who = /session=(\w+)/.exec(req.headers.cookie ?? '')?.[1] ?? /Bearer (\w+)/.exec(req.headers.authorization ?? '')?.[1] ?? 'anonymous'
    const body = `hello ${who}`
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...headers })
    res.end(body)
  })
  return { url: upstream.url, down: (on) => { down = on } }
}

t.test('by default an answer to a request with a cookie or a bearer token reaches nobody else', async (t) => {
  for (const [label, alice, bob, extra] of [
    ['cookie', { cookie: 'session=alice' }, { cookie: 'session=bob' }, {}],
    ['bearer', { authorization: 'Bearer alice' }, { authorization: 'Bearer bob' }, { 'cache-control': 'must-revalidate, max-age=60' }]
  ] as const) {
    const upstream = await personalised(t, extra)
    const proxy = await startProxy(t, { routes: [route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } })] })
    t.equal((await fetchText(`${proxy.url}/c/me`, { headers: alice })).body, 'hello alice')
    upstream.down(true)
    for (const [who, headers] of [['bob', bob], ['anonymous', {}], ['alice', alice]] as const) {
      const res = await fetchText(`${proxy.url}/c/me`, { headers })
      t.equal(res.status, 503, `${label}: ${who} gets the outage, not alice's answer`)
      t.not(res.body, 'hello alice')
    }
    const m = await scrape(proxy)
    t.equal(sumOf(m, 'faultline_cache_stores_total', { route: 'c' }), 0, `${label}: nothing stored`)
    t.equal(sumOf(m, 'faultline_cache_lookups_total', { route: 'c', result: 'miss' }), 3, `${label}: each failure looked in the cache and missed`)
  }
})

t.test('credentials: perCredential keeps one last-known-good per user; shared serves everyone', async (t) => {
  const upstream = await personalised(t)
  const proxy = await startProxy(t, {
    routes: [
      route('per', '/per', upstream.url, { resilience: { fallback: [{ cache: { credentials: 'perCredential', refreshMs: 0 } }] } }),
      route('pub', '/pub', upstream.url, { resilience: { fallback: [{ cache: { credentials: 'shared', refreshMs: 0 } }] } })
    ]
  })
  const alice = { cookie: 'session=alice' }
  const bob = { cookie: 'session=bob' }
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: alice })).body, 'hello alice')
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: bob })).body, 'hello bob')
  t.equal((await fetchText(`${proxy.url}/pub/news`, { headers: alice })).body, 'hello alice')
  // A shared cache may not keep an answer to an Authorization request (RFC 9111 §3.5): in `shared` mode the route says it may.
  t.equal((await fetchText(`${proxy.url}/pub/token`, { headers: { authorization: 'Bearer bob' } })).body, 'hello bob')
  upstream.down(true)
  const a = await fetchText(`${proxy.url}/per/me`, { headers: alice })
  t.equal(a.body, 'hello alice', 'alice gets her own last-known-good')
  t.equal(a.headers['x-faultline-fallback'], 'cache')
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: bob })).body, 'hello bob', 'bob gets his own')
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: { cookie: 'session=carol' } })).status, 503, 'carol has none')
  t.equal((await fetchText(`${proxy.url}/per/me`)).status, 503, 'the anonymous caller gets no user\'s answer')
  const shared = await fetchText(`${proxy.url}/pub/news`)
  t.equal(shared.body, 'hello alice', 'shared mode: the route declared its data public (the documented risk)')
  t.equal((await fetchText(`${proxy.url}/pub/token`)).body, 'hello bob', 'shared mode: an answer to a bearer token too')
})

t.test('perCredential: a client cannot set the credential pseudo-header to reach or overwrite another user\'s answer', async (t) => {
  const upstream = await personalised(t)
  const proxy = await startProxy(t, {
    routes: [route('per', '/per', upstream.url, { resilience: { fallback: [{ cache: { credentials: 'perCredential', refreshMs: 0 } }] } })]
  })
  const alice = { cookie: 'session=alice' }
  // What the cache itself would set for alice, sent by an anonymous caller.
  const forged = { [CREDENTIAL_VARY]: credentialOf(alice)! }
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: alice })).body, 'hello alice')
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: forged })).body, 'hello anonymous', 'the forged request is answered as anonymous')
  upstream.down(true)
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: alice })).body, 'hello alice', 'alice\'s last-known-good was not overwritten by the forged request')
  const leak = await fetchText(`${proxy.url}/per/me`, { headers: forged })
  t.equal(leak.body, 'hello anonymous', 'the forged header reaches the anonymous answer, never alice\'s')
})

t.test('an answer shaped by a body, header or status fault is never stored; a later real outage finds nothing', async (t) => {
  const json = JSON.stringify({ id: 1, price: 10, email: 'a@example.com' })
  let down = false
  const upstream = await startUpstream(t, (_req, res) => {
    if (down) { res.writeHead(503, { 'content-length': '4' }); res.end('down'); return }
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) })
    res.end(json)
  })
  const triggers = ['schemaDrift; drop=email', 'corrupt', 'corrupt=bytes', 'truncate=5; clean=true']
  const proxy = await startProxy(t, {
    routes: triggers.map((_, i) => route(`r${i}`, `/r${i}`, upstream.url, {
      resilience: { fallback: [{ cache: { refreshMs: 0 } }] },
      chaos: { enabled: true, allowHeaderTriggers: true }
    }))
  })
  for (const [i, trigger] of triggers.entries()) {
    const res = await fetchText(`${proxy.url}/r${i}/item`, { headers: { 'x-faultline-fault': trigger } })
    t.equal(res.status, 200, `${trigger}: answered`)
  }
  t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total'), 0, 'no injected answer was stored')
  down = true
  for (const [i, trigger] of triggers.entries()) {
    const res = await fetchText(`${proxy.url}/r${i}/item`)
    t.equal(res.status, 503, `${trigger}: the real outage is not answered with the injected body`)
  }
})

t.test('a successful DELETE, PUT or POST forgets the target and a same-origin Location; a failed one does not', async (t) => {
  const items = new Map([['/s/a', 'A'], ['/s/b', 'B'], ['/s/c', 'C'], ['/s/d', 'D'], ['/s/fail', 'F']])
  let down = false
  const upstream = await startUpstream(t, (req, res) => {
    req.resume()
    req.on('end', () => {
      if (down) { res.writeHead(503, { 'content-length': '4' }); res.end('down'); return }
      const path = req.url ?? '/'
      if (req.method === 'DELETE' && path === '/s/fail') { res.writeHead(500, { 'content-length': '0' }); res.end(); return }
      if (req.method === 'DELETE') { items.delete(path); res.writeHead(204); res.end(); return }
      if (req.method === 'POST') { res.writeHead(201, { location: '/s/c', 'content-location': 'http://elsewhere.example/s/d', 'content-length': '0' }); res.end(); return }
      const body = items.get(path) ?? 'gone'
      res.writeHead(items.has(path) ? 200 : 404, { 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  const proxy = await startProxy(t, { routes: [route('s', '/s', upstream.url, { resilience: { fallback: [{ cache: { refreshMs: 0 } }] } })] })
  for (const p of ['/s/a', '/s/b', '/s/c', '/s/d', '/s/fail']) await fetchText(`${proxy.url}${p}`)
  t.equal((await fetchText(`${proxy.url}/s/a`, { method: 'DELETE' })).status, 204)
  t.equal((await fetchText(`${proxy.url}/s/new`, { method: 'POST', body: 'x' })).status, 201)
  t.equal((await fetchText(`${proxy.url}/s/fail`, { method: 'DELETE' })).status, 500)
  down = true
  t.equal((await fetchText(`${proxy.url}/s/a`)).status, 503, 'the deleted item is not served again')
  t.equal((await fetchText(`${proxy.url}/s/c`)).status, 503, 'the same-origin Location was invalidated')
  t.equal((await fetchText(`${proxy.url}/s/b`)).body, 'B', 'other entries stay')
  t.equal((await fetchText(`${proxy.url}/s/d`)).body, 'D', 'a Content-Location on another origin invalidates nothing here')
  t.equal((await fetchText(`${proxy.url}/s/fail`)).body, 'F', 'a failed DELETE invalidates nothing')
})

t.test('perCredential: each user\'s cache is private (a `private` answer is kept for its user), and credentials are hashed apart', async (t) => {
  const upstream = await personalised(t, { 'cache-control': 'private, max-age=60' })
  const proxy = await startProxy(t, {
    routes: [route('per', '/per', upstream.url, { resilience: { fallback: [{ cache: { credentials: 'perCredential', refreshMs: 0 } }] } })]
  })
  // Two users whose Authorization and Cookie, run together, read the same: only a separator between the two tells them apart.
  const alice = { authorization: 'Bearer alice' }
  const ali = { authorization: 'Bearer ali', cookie: 'ce' }
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: alice })).body, 'hello alice')
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: ali })).body, 'hello ali')
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: { authorization: 'Bearer bob' } })).body, 'hello bob', 'another bearer token, no cookie')
  upstream.down(true)
  const a = await fetchText(`${proxy.url}/per/me`, { headers: alice })
  t.equal(a.headers['x-faultline-fallback'], 'cache', 'the private answer was kept for its user')
  t.equal(a.body, 'hello alice', 'and not overwritten by the other user\'s')
  t.equal((await fetchText(`${proxy.url}/per/me`, { headers: ali })).body, 'hello ali')
  t.equal((await fetchText(`${proxy.url}/per/me`)).status, 503, 'the anonymous caller gets neither')
})

t.test('an invalidation reaches the HEAD entry, a same-origin Content-Location, and the target of a successful 3xx', async (t) => {
  let down = false
  const upstream = await startUpstream(t, (req, res) => {
    req.resume()
    req.on('end', () => {
      const path = req.url ?? '/'
      if (down) { res.writeHead(503, { 'content-length': '4' }); res.end('down'); return }
      if (req.method === 'DELETE') { res.writeHead(path === '/s/w' ? 409 : 204, { 'content-length': '0' }); res.end(); return }
      if (req.method === 'POST') { res.writeHead(303, { location: '/s/x', 'content-length': '0' }); res.end(); return }
      if (req.method === 'PUT') { res.writeHead(200, { 'content-location': 'z', 'content-length': '0' }); res.end(); return }
      const body = path.toUpperCase()
      res.writeHead(200, { 'content-length': Buffer.byteLength(body) })
      res.end(req.method === 'HEAD' ? undefined : body)
    })
  })
  const proxy = await startProxy(t, { routes: [route('s', '/s', upstream.url, { resilience: { fallback: [{ cache: { refreshMs: 0 } }] } })] })
  t.equal((await fetchText(`${proxy.url}/s/a`, { method: 'HEAD' })).status, 200)
  for (const p of ['/s/x', '/s/z', '/s/w']) await fetchText(`${proxy.url}${p}`)
  t.equal((await fetchText(`${proxy.url}/s/a`, { method: 'DELETE' })).status, 204)
  t.equal((await fetchText(`${proxy.url}/s/form`, { method: 'POST', body: 'x' })).status, 303)
  t.equal((await fetchText(`${proxy.url}/s/y`, { method: 'PUT', body: 'y' })).status, 200)
  t.equal((await fetchText(`${proxy.url}/s/w`, { method: 'DELETE' })).status, 409, 'a refused DELETE (4xx) changed nothing')
  down = true
  t.equal((await fetchText(`${proxy.url}/s/a`, { method: 'HEAD' })).status, 503, 'the DELETE forgot the HEAD answer too')
  t.equal((await fetchText(`${proxy.url}/s/x`)).status, 503, 'a 303 is a success: its same-origin Location is forgotten')
  t.equal((await fetchText(`${proxy.url}/s/z`)).status, 503, 'a relative, same-origin Content-Location is forgotten')
  t.equal((await fetchText(`${proxy.url}/s/w`)).body, '/S/W', 'other entries stay')
})

t.test('shared: the cache is a shared one, so a `private` answer is not kept even for a request with credentials', async (t) => {
  const upstream = await personalised(t, { 'cache-control': 'private, max-age=60' })
  const proxy = await startProxy(t, { routes: [route('pub', '/pub', upstream.url, { resilience: { fallback: [{ cache: { credentials: 'shared' } }] } })] })
  t.equal((await fetchText(`${proxy.url}/pub/me`, { headers: { cookie: 'session=alice' } })).body, 'hello alice')
  upstream.down(true)
  t.equal((await fetchText(`${proxy.url}/pub/me`, { headers: { cookie: 'session=alice' } })).status, 503)
  t.equal(sumOf(await scrape(proxy), 'faultline_cache_stores_total', { route: 'pub' }), 0)
})
