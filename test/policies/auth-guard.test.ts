import t from 'tap'
import { fetchText, route, scrape, startProxy, sumOf } from '../helpers.js'
import { scriptedUpstream } from './fixtures.js'

t.test('repeated 401s stop further attempts for a while, with a 503 that says why', async (t) => {
  const upstream = await scriptedUpstream(t, [401, 401, 401, 200])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, {
      resilience: { authGuard: { failures: 2, blockMs: 300 }, retry: { attempts: 3, backoff: { baseMs: 1 } }, fallback: ['cache'] }
    })]
  })
  const first = await fetchText(`${proxy.url}/r`)
  t.equal(first.status, 401, 'the first 401 is passed on, not retried')
  t.equal(first.headers['x-faultline-attempts'], '1')
  t.equal((await fetchText(`${proxy.url}/r`)).status, 401)
  const blocked = await fetchText(`${proxy.url}/r`)
  t.equal(blocked.status, 503)
  const body = JSON.parse(blocked.body)
  t.equal(body.error, 'auth_blocked')
  t.match(body.message, /401 to 2 requests in a row.*credentials/)
  t.ok(Number(blocked.headers['retry-after']) >= 1)
  t.equal(upstream.hits(), 2, 'nothing was sent while blocked')
  t.equal(blocked.headers['x-faultline-fallback'], undefined, 'auth failures fail closed: no fallback')
  await new Promise((resolve) => setTimeout(resolve, 350))
  const again = await fetchText(`${proxy.url}/r`)
  t.equal(again.status, 401, 'after the block a request goes through')
  t.equal((await fetchText(`${proxy.url}/r`)).status, 503, 'and one more 401 blocks again at once')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_auth_guard_trips_total', { route: 'r' }), 2)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'r', outcome: 'failed', status_class: '5xx' }), 2)
})

t.test('any other answer clears the count', async (t) => {
  const upstream = await scriptedUpstream(t, [403, 200, 403, 200, 403])
  const proxy = await startProxy(t, { routes: [route('r', '/r', upstream.url, { resilience: { authGuard: { failures: 2, blockMs: 10_000 } } })] })
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await fetchText(`${proxy.url}/r`)).status)
  t.same(statuses, [403, 200, 403, 200, 403])
})

t.test('auth fails closed: neither a static answer nor an alternate origin stands in for a 401 or an auth block', async (t) => {
  const primary = await scriptedUpstream(t, [401, 401, 401, 401])
  const alternate = await scriptedUpstream(t, [{ status: 200, body: 'from-alternate' }])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', primary.url, {
      upstream: { url: primary.url, alternates: [alternate.url] },
      resilience: {
        authGuard: { failures: 2, blockMs: 10_000 },
        fallback: ['alternate', { static: { status: 200, body: '{"degraded":true}' } }]
      }
    })]
  })
  for (const i of [1, 2]) {
    const denied = await fetchText(`${proxy.url}/r`)
    t.equal(denied.status, 401, `401 number ${i} goes to the caller as it is`)
    t.equal(denied.headers['x-faultline-fallback'], undefined)
  }
  const blocked = await fetchText(`${proxy.url}/r`)
  t.equal(blocked.status, 503, 'blocked by the auth guard')
  t.equal(JSON.parse(blocked.body).error, 'auth_blocked', 'not the canned {"degraded":true}')
  t.equal(blocked.headers['x-faultline-fallback'], undefined)
  t.equal(alternate.hits(), 0, 'the alternate origin was never asked to stand in')
  t.equal(primary.hits(), 2)
})
