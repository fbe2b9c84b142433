/**
 * issue 13: every admin read is redacted by one function, the admin API
 * answers only to its own names (DNS rebinding), the bearer scheme is
 * case-insensitive, and breaker actions come from an explicit table.
 */
import t from 'tap'
import { request } from 'undici'
import { fetchText, route, startProxy, startUpstream } from './helpers.js'

const TOKEN = 'exposure-token-0123456789abcdef'
const SECRET = 'PLANTED-SECRET-7f3a'

t.test('no admin GET endpoint shows a planted secret', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    admin: { token: TOKEN },
    routes: [route('svc', '/svc', up.url, {
      resilience: { breaker: { consecutiveFailures: 5 }, fallback: [{ static: { status: 200, headers: { 'set-cookie': `session=${SECRET}` }, body: 'static' } }] },
      intent: { criticality: 'optional' },
      chaos: {
        enabled: true,
        faults: [
          { kind: 'abort', status: 503, match: { headers: { authorization: `Bearer ${SECRET}` } } },
          { kind: 'latency', ms: 1, match: { headers: { cookie: `sid=${SECRET}` } } }
        ]
      }
    })]
  })
  const reads = proxy.faultline.adminReadPaths
  for (const expected of ['/routes', '/chaos', '/chaos/routes/:route', '/chaos/routes/:route/faults', '/report', '/experiments', '/experiments/report']) {
    t.ok(reads.includes(expected), `${expected} is among the scanned endpoints`)
  }
  for (const path of reads) {
    const url = path.replace(':route', 'svc').replace(':id', '0')
    const res = await fetchText(`${proxy.adminUrl}${url}`)
    t.ok(res.status < 500, `GET ${url} answers ${res.status}`)
    t.notOk(res.body.includes(SECRET), `GET ${url} does not show the secret`)
  }
  // And the unredacted config really does hold it (the scan would catch a leak).
  t.match(JSON.stringify(proxy.faultline.currentConfig.routes[0]!.chaos), SECRET)
})

t.test('a request whose Host is not the admin address, localhost or a configured name is refused (DNS rebinding)', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { admin: { token: TOKEN, allowedHosts: ['faultline.internal'] }, routes: [route('svc', '/svc', up.url)] })
  const port = proxy.faultline.adminPort
  const get = async (host: string): Promise<number> => (await request(`${proxy.adminUrl}/routes`, { headers: { host } })).statusCode
  t.equal(await get(`rebound.attacker.example:${port}`), 403, 'a rebound name is refused')
  t.equal(await get('rebound.attacker.example'), 403)
  t.equal(await get(`127.0.0.1:${port}`), 200, 'the address itself')
  t.equal(await get(`localhost:${port}`), 200, 'localhost')
  t.equal(await get(`[::1]:${port}`), 200, 'an IPv6 literal')
  t.equal(await get(`FaultLine.Internal:${port}`), 200, 'a configured name, any case')
  const refused = await request(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: { host: 'evil.example', authorization: `Bearer ${TOKEN}` } })
  t.equal(refused.statusCode, 403, 'even with the token')
  t.match(await refused.body.text(), /host_not_allowed/)
})

t.test('the bearer scheme is case-insensitive; breaker actions come from an explicit table', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { admin: { token: TOKEN }, routes: [route('svc', '/svc', up.url, { resilience: { breaker: { consecutiveFailures: 5 } } })] })
  const lower = await fetchText(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: { authorization: `bearer ${TOKEN}` } })
  t.equal(lower.status, 200, 'a lowercase "bearer" is accepted')
  t.equal((await fetchText(`${proxy.adminUrl}/chaos/on`, { method: 'POST', headers: { authorization: `BEARER ${TOKEN}` } })).status, 200)
  t.notOk(proxy.logs.lines.some((l) => String(l.msg).includes('wrong bearer token')), 'and not counted as a failed attempt')
  for (const action of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    const res = await fetchText(`${proxy.adminUrl}/routes/svc/breaker/${action}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
    t.equal(res.status, 404, `${action} is not a breaker action`)
  }
  t.equal((await fetchText(`${proxy.adminUrl}/routes/svc/breaker/reset`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status, 200)
})
