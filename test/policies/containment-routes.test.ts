/**
 * Containment across routes (issue 12): injected failures on one route
 * trip that route's breaker and auth guard only; real failures keep their
 * shared effect on every route to the upstream.
 */
import t from 'tap'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

const resilience = { breaker: { consecutiveFailures: 3, openMs: 30_000 }, authGuard: { failures: 3, blockMs: 30_000 } }

t.test('injected 503s and 401s on canary never open prod\'s breaker or auth guard; a real outage opens both routes', async (t) => {
  let down = false
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(down ? 503 : 200, { 'content-length': '2' })
    res.end('ok')
  })
  const proxy = await startProxy(t, {
    routes: [
      route('canary', '/canary', upstream.url, { resilience, chaos: { enabled: true, allowHeaderTriggers: true } }),
      route('prod', '/prod', upstream.url, { resilience })
    ]
  })
  t.equal((await fetchText(`${proxy.url}/prod/x`)).status, 200)

  // Injected 401s first: the auth guard sits outside the breaker, so its block is checked before the breaker's.
  for (let i = 0; i < 5; i++) await fetchText(`${proxy.url}/canary/x`, { headers: { 'x-faultline-fault': 'auth' } })
  const blocked = await fetchText(`${proxy.url}/canary/x`)
  t.equal(blocked.status, 503, 'canary\'s own auth guard holds canary back')
  t.match(blocked.body, /auth_blocked/)
  t.match(blocked.body, /injected on route canary/)
  const prod1 = await fetchText(`${proxy.url}/prod/x`)
  t.equal(prod1.status, 200, 'prod is not auth_blocked by canary\'s injected 401s')

  const routes = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body).routes as Array<{ name: string, state: Record<string, any> }>
  const prodState = routes.find((r) => r.name === 'prod')!.state
  t.equal(prodState.authGuard.noCredentialsBlocked, false, 'GET /routes: the shared guard is not blocking')
  t.equal(routes.find((r) => r.name === 'canary')!.state.authGuard.injected.noCredentialsBlocked, true, 'GET /routes: canary\'s injected guard is')

  // The breaker on a fresh proxy (canary's guard above stays blocked for blockMs).
  const proxy2 = await startProxy(t, {
    routes: [
      route('canary', '/canary', upstream.url, { resilience, chaos: { enabled: true, allowHeaderTriggers: true } }),
      route('prod', '/prod', upstream.url, { resilience })
    ]
  })
  t.equal((await fetchText(`${proxy2.url}/prod/x`)).status, 200)
  for (let i = 0; i < 5; i++) await fetchText(`${proxy2.url}/canary/x`, { headers: { 'x-faultline-fault': 'abort=503' } })
  const shorted = await fetchText(`${proxy2.url}/canary/x`)
  t.equal(shorted.status, 503)
  t.match(shorted.body, /short_circuited/, 'canary\'s own breaker opened on its injected failures')
  t.equal((await fetchText(`${proxy2.url}/prod/x`)).status, 200, 'prod\'s breaker stays closed')

  // A real outage keeps its shared effect: failures seen on prod short-circuit canary too.
  down = true
  for (let i = 0; i < 3; i++) t.equal((await fetchText(`${proxy2.url}/prod/x`)).status, 503)
  const prodShort = await fetchText(`${proxy2.url}/prod/x`)
  t.match(prodShort.body, /short_circuited/, 'prod short-circuits on real failures')
  const state = JSON.parse((await fetchText(`${proxy2.adminUrl}/routes`)).body).routes.find((r: { name: string }) => r.name === 'canary').state.breaker
  t.equal(state.state, 'open', 'the shared breaker canary also uses is open: a real outage reaches every route')
})

t.test('alternates go through the route\'s fault stage and a breaker of their own, like the primary', async (t) => {
  const primary = await startUpstream(t, (_req, res) => { res.writeHead(503, { 'content-length': '4' }); res.end('down') })
  const healthy = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'content-length': '3' }); res.end('alt') })
  const proxy = await startProxy(t, {
    routes: [route('a', '/a', primary.url, {
      upstream: { url: primary.url, alternates: [healthy.url] },
      resilience: { fallback: ['alternate'] },
      chaos: { enabled: true, allowHeaderTriggers: true }
    })]
  })
  t.equal((await fetchText(`${proxy.url}/a`)).body, 'alt', 'the healthy alternate answers')
  const faulted = await fetchText(`${proxy.url}/a`, { headers: { 'x-faultline-fault': 'abort=502' } })
  t.equal(faulted.status, 502, 'the fault injected on the primary is injected on the alternate too: no way around chaos')
  t.equal(healthy.hits(), 1, 'the alternate was not asked: the fault answered for it')

  // A dead alternate behind a breaker: after two real failures it is short-circuited, not asked again.
  const dead = await startUpstream(t, (_req, res) => { res.writeHead(503, { 'content-length': '4' }); res.end('dead') })
  const proxy2 = await startProxy(t, {
    routes: [route('b', '/b', primary.url, {
      upstream: { url: primary.url, alternates: [dead.url] },
      resilience: { fallback: ['alternate'], breaker: { consecutiveFailures: 2, openMs: 30_000 } }
    })]
  })
  for (let i = 0; i < 6; i++) t.equal((await fetchText(`${proxy2.url}/b`)).status, 503)
  t.equal(dead.hits(), 2, 'the alternate\'s breaker opened after two failures and kept it from further requests')
})

t.test('a real failure behind an injected delay is real: it reaches the shared breaker and the report', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(503, { 'content-length': '4' }); res.end('down') })
  const proxy = await startProxy(t, {
    routes: [
      route('slowed', '/slowed', upstream.url, { resilience, chaos: { enabled: true, faults: [{ kind: 'latency', ms: 1 }] } }),
      route('prod', '/prod', upstream.url, { resilience })
    ]
  })
  for (let i = 0; i < 3; i++) t.equal((await fetchText(`${proxy.url}/slowed/x`)).status, 503)
  const prod = await fetchText(`${proxy.url}/prod/x`)
  t.match(prod.body, /short_circuited/, 'the real outage seen through a latency experiment opened the shared breaker')
  const report = JSON.parse((await fetchText(`${proxy.adminUrl}/report`)).body) as { routes: Array<{ route: string, upstreams: Array<{ windows: Record<string, { failed: number, injected: { requests: number } }> }> }> }
  const w = report.routes.find((r) => r.route === 'slowed')!.upstreams[0]!.windows['5m']!
  t.equal(w.failed, 3, 'counted as real failures in /report')
  t.equal(w.injected.requests, 0)
})
