/**
 * Dot-segments are resolved before a route is chosen (RFC 3986 §5.2.4),
 * so a path can never climb out of its route's prefix after a rewrite;
 * encodings that cannot be normalised safely are refused with 400. Raw
 * sockets: no client library would send these targets unchanged.
 */
import t from 'tap'
import { rawExchange, route, startProxy, startUpstream } from '../helpers.js'
import { normalizeTarget, removeDotSegments } from '../../src/core/path.js'

t.test('removeDotSegments follows RFC 3986 §5.2.4', async (t) => {
  // The examples of RFC 3986 §5.2.4 and §5.4, as absolute paths.
  t.equal(removeDotSegments('/a/b/c/./../../g'), '/a/g')
  t.equal(removeDotSegments('/../../admin'), '/admin', 'never above the root')
  t.equal(removeDotSegments('/a/b/..'), '/a/')
  t.equal(removeDotSegments('/a/./'), '/a/')
  t.equal(removeDotSegments('/a/.'), '/a/')
  t.equal(normalizeTarget('/a/%2E%2e/b?x=/../y'), '/b?x=/../y', 'encoded dots resolved, the query untouched')
  t.equal(normalizeTarget('/plain/path?q=1'), '/plain/path?q=1')
  t.equal(normalizeTarget('/.well-known/x'), '/.well-known/x')
  for (const bad of ['/a%2fb', '/a%2F..', '/a%5c..', '/a%00', '/a\\..\\b', '/a/%zz', '/a/%4', '/a/..;/b', '/a/.;x/b']) {
    t.throws(() => normalizeTarget(bad), { name: 'BadPathError' }, `${bad} is refused`)
  }
})

t.test('dot-segments are resolved before matching; a rewritten path stays under its prefix', async (t) => {
  const seen: string[] = []
  const upstream = await startUpstream(t, (req, res) => { seen.push(req.url ?? ''); res.setHeader('x-upstream', 'public'); res.end('ok') })
  const other = await startUpstream(t, (req, res) => { seen.push('other:' + (req.url ?? '')); res.end('other') })
  const proxy = await startProxy(t, {
    routes: [
      { ...route('public', '/public', upstream.url), match: { pathPrefix: '/public', rewritePrefix: '/v1/public' } },
      route('root', '/', other.url)
    ]
  })
  const port = Number(new URL(proxy.url).port)
  const get = async (target: string): Promise<string> =>
    await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)

  // Climbing out of /public: matched as /admin/delete-all, so the public route never sees it.
  let answer = await get('/public/../../admin/delete-all')
  t.match(answer, /^HTTP\/1\.1 200/)
  t.same(seen.splice(0), ['other:/admin/delete-all'], 'resolved first: the root route got /admin/delete-all')
  answer = await get('/public/%2e%2e/%2E%2E/admin')
  t.match(answer, /^HTTP\/1\.1 200/)
  t.same(seen.splice(0), ['other:/admin'], 'percent-encoded dots are dot-segments too')

  // Inside the prefix: resolved, then rewritten; the upstream never sees "..".
  answer = await get('/public/a/../b/./c?q=../x')
  t.match(answer, /^HTTP\/1\.1 200/)
  t.same(seen.splice(0), ['/v1/public/b/c?q=../x'])
  answer = await get('/public/a/%2e%2e/%2e%2e/%2e%2e')
  t.same(seen.splice(0), ['other:/'], 'what climbs above the prefix leaves the route')

  for (const bad of ['/public/..%2f..%2fadmin', '/public/a%2Fb', '/public/a%00b', '/public/..%5cadmin', '/public/..;/admin', '/public/a\\..\\b']) {
    answer = await get(bad)
    t.match(answer, /^HTTP\/1\.1 400/, `${bad} is refused with 400`)
    t.match(answer, /bad_path/)
  }
  t.same(seen, [], 'nothing refused reached an upstream')
})
