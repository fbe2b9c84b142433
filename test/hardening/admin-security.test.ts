/**
 * The admin port under attack: token guessing is throttled and logged,
 * browsers are refused (no CORS), bodies are bounded and validated, and
 * credentials in config never leave through GET /routes or the log.
 */
import t from 'tap'
import { request } from 'undici'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

const TOKEN = 'test-token-0123456789abcdef'

t.test('failed token attempts are rate-limited per remote and logged', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end() })
  const proxy = await startProxy(t, { admin: { token: TOKEN, maxAuthFailures: 3, authFailureWindowMs: 60_000 }, routes: [route('a', '/a', upstream.url)] })
  const post = async (token: string): Promise<{ status: number, headers: Record<string, unknown> }> =>
    await fetchText(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
  t.equal((await post(TOKEN)).status, 200, 'the right token works')
  for (let i = 0; i < 3; i++) t.equal((await post(`wrong-token-guess-${i}-xxxxxxxx`)).status, 401)
  const blocked = await post('wrong-token-guess-4-xxxxxxxx')
  t.equal(blocked.status, 429, 'past the limit: 429')
  t.ok(Number(blocked.headers['retry-after']) > 0, 'with Retry-After')
  t.equal((await post('wrong-token-guess-5-xxxxxxxx')).status, 429, 'wrong tokens keep getting 429 for the window')
  t.equal((await post(TOKEN)).status, 200, 'the right token is never refused: the emergency stop cannot be locked out (issue 12)')
  const refusals = proxy.logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('admin call refused'))
  t.ok(refusals.length >= 5, 'every refusal is logged')
  t.ok(refusals.some((l) => l.failures === 3 && l.remote === '127.0.0.1'), 'with the remote and the failure count')
  t.notOk(JSON.stringify(proxy.logs.lines).includes('wrong-token-guess'), 'presented tokens are never logged')
  t.equal((await fetchText(`${proxy.adminUrl}/healthz`)).status, 200, 'reads stay open')
})

t.test('no CORS, no browsers: requests with an Origin are refused and nothing grants access', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end() })
  const proxy = await startProxy(t, { admin: { token: TOKEN }, routes: [route('a', '/a', upstream.url)] })
  const preflight = await fetchText(`${proxy.adminUrl}/chaos/off`, {
    method: 'OPTIONS',
    headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' }
  })
  t.ok(preflight.status >= 400, `preflight refused (${preflight.status})`)
  const read = await fetchText(`${proxy.adminUrl}/routes`, { headers: { origin: 'http://evil.example' } })
  t.equal(read.status, 403)
  const write = await fetchText(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: { origin: 'http://127.0.0.1', authorization: `Bearer ${TOKEN}` } })
  t.equal(write.status, 403, 'even with the token: a same-origin page may be a DNS rebinding')
  for (const res of [preflight, read, write, await fetchText(`${proxy.adminUrl}/routes`)]) {
    t.notOk(Object.keys(res.headers).some((h) => h.startsWith('access-control-')), 'no access-control-* header ever')
  }
})

t.test('admin bodies are size-limited and validated', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end() })
  const proxy = await startProxy(t, { admin: { token: TOKEN }, routes: [route('svc', '/svc', upstream.url)] })
  const headers = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
  const huge = await fetchText(`${proxy.adminUrl}/chaos/routes/svc/faults`, { method: 'POST', headers, body: JSON.stringify({ kind: 'abort', body: 'x'.repeat(100_000) }) })
  t.equal(huge.status, 413, 'a body over 64 KiB is refused')
  const malformed = await fetchText(`${proxy.adminUrl}/chaos/routes/svc/faults`, { method: 'POST', headers, body: '{"kind": "abort",' })
  t.equal(malformed.status, 400)
  const invalid = await fetchText(`${proxy.adminUrl}/chaos/routes/svc/faults`, { method: 'POST', headers, body: JSON.stringify({ kind: 'abort', status: 'x' }) })
  t.equal(invalid.status, 400)
  t.match(invalid.body, /status: expected/, 'the error names the path')
  const ok = await fetchText(`${proxy.adminUrl}/chaos/routes/svc/faults`, { method: 'POST', headers, body: JSON.stringify({ kind: 'abort' }) })
  t.equal(ok.status, 201)
})

t.test('credentials in config are redacted in GET /routes and in the log', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    admin: { token: TOKEN },
    log: { level: 'trace' },
    routes: [route('svc', '/svc', upstream.url, {
      resilience: { fallback: [{ static: { status: 503, headers: { 'set-cookie': 'sid=SECRET-COOKIE-1' }, body: 'degraded' } }] },
      chaos: { faults: [{ kind: 'abort', status: 503, match: { headers: { authorization: 'Bearer SECRET-AUTH-2' } } }] }
    })]
  })
  const routes = await fetchText(`${proxy.adminUrl}/routes`)
  t.equal(routes.status, 200)
  t.notMatch(routes.body, /SECRET-/, 'no secret in GET /routes')
  t.match(routes.body, /\[redacted\]/, 'the values are marked redacted, not silently dropped')
  // An admin call whose audited details carry a credential.
  const added = await fetchText(`${proxy.adminUrl}/chaos/routes/svc/faults`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'abort', name: 'k', match: { headers: { cookie: 'session=SECRET-COOKIE-3' } } })
  })
  t.equal(added.status, 201)
  // Requests carrying credentials through the proxy, at trace level.
  await fetchText(`${proxy.url}/svc`, { headers: { authorization: 'Bearer SECRET-AUTH-4', cookie: 'sid=SECRET-COOKIE-5' } })
  await request(`${proxy.adminUrl}/reload`, { method: 'POST', headers: { authorization: 'Bearer SECRET-GUESS-6-xxxxxxxx' } }).then(async (r) => await r.body.dump())
  await new Promise((resolve) => setTimeout(resolve, 100))
  const log = JSON.stringify(proxy.logs.lines)
  t.ok(proxy.logs.lines.some((l) => l.audit === 'chaos.fault.add'), 'the audit line is there')
  t.notMatch(log, /SECRET-/, 'no secret in any log line')
  t.notMatch(log, new RegExp(TOKEN), 'nor the admin token')
})
