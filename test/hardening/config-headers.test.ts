/**
 * Header names and values set in config or through the admin API are
 * well-formed and never framing or hop-by-hop fields, whatever their
 * case: otherwise a response could carry two framings (a smuggling shape
 * for a front proxy) or a CR/LF could split it.
 */
import t from 'tap'
import { request } from 'undici'
import { ConfigError } from '../../src/config/errors.js'
import { parseConfig } from '../../src/config/load.js'
import { rawExchange, route, startUpstream } from '../helpers.js'
import { TOKEN, chaosProxy, auth } from '../faults/fixtures.js'

function problems (extra: Record<string, unknown>): string[] {
  try {
    parseConfig({ routes: [route('svc', '/svc', 'http://127.0.0.1:1', extra)] }, 'faultline.yaml')
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n')
    throw err
  }
  return []
}

t.test('framing and hop-by-hop headers are refused in any case, with the path named', async (t) => {
  for (const name of ['Content-Length', 'TRANSFER-ENCODING', 'Connection', 'keep-alive', 'Upgrade', 'TE', 'Trailer']) {
    const fault = problems({ chaos: { faults: [{ kind: 'abort', headers: { [name]: '5' } }] } }).join('\n')
    t.match(fault, new RegExp(`routes\\[0\\]\\.chaos\\.faults\\[0\\]\\.headers\\.${name}: expected no ${name.toLowerCase()} header`), `abort.headers ${name}`)
    const fallback = problems({ resilience: { fallback: [{ static: { status: 200, headers: { [name]: 'chunked' } } }] } }).join('\n')
    t.match(fallback, /routes\[0\]\.resilience\.fallback\[0\].*headers.*expected no .* header/, `static fallback headers ${name}`)
  }
})

t.test('header names must be tokens and values must be field values', async (t) => {
  t.match(problems({ chaos: { faults: [{ kind: 'abort', headers: { 'x-a': 'one\r\nx-b: two' } }] } }).join('\n'), /headers\.x-a: expected a header value without CR, LF, NUL/)
  t.match(problems({ chaos: { faults: [{ kind: 'abort', headers: { 'x-a': 'nul\u0000' } }] } }).join('\n'), /expected a header value without/)
  t.match(problems({ chaos: { faults: [{ kind: 'abort', headers: { 'bad name': 'v' } }] } }).join('\n'), /expected a header name made of RFC 9110 token characters/)
  t.match(problems({ chaos: { faults: [{ kind: 'abort', headers: { 'X-A': '1', 'x-a': '2' } }] } }).join('\n'), /expected each header once/)
  t.match(problems({ chaos: { faults: [{ kind: 'auth', realm: 'api\r\nx-injected: 1' }] } }).join('\n'), /faults\[0\]\.realm: expected a header value without CR, LF/)
  t.match(problems({ chaos: { faults: [{ kind: 'auth', realm: 'a"b' }] } }).join('\n'), /realm: expected text without quotes or backslashes/)
  t.same(problems({ chaos: { faults: [{ kind: 'abort', headers: { 'X-Custom': 'a value', 'Content-Type': 'text/plain' } }] } }), [], 'plain headers are fine')
})

t.test('the admin API refuses the same headers, and a valid mixed-case header is written once', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await chaosProxy(t, upstream.url, {})
  const post = async (fault: unknown): Promise<{ status: number, body: string }> => {
    const res = await request(`${proxy.adminUrl}/chaos/routes/svc/faults`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(fault) })
    return { status: res.statusCode, body: await res.body.text() }
  }
  const refused = await post({ kind: 'abort', status: 503, headers: { 'Transfer-Encoding': 'chunked' } })
  t.equal(refused.status, 400)
  t.match(refused.body, /expected no transfer-encoding header/)
  t.equal((await post({ kind: 'auth', realm: 'x\r\ny' })).status, 400)
  t.equal((await post({ kind: 'abort', status: 503, body: 'down', headers: { 'Content-Type': 'text/x-down' } })).status, 201)
  const raw = await rawExchange(Number(new URL(proxy.url).port), 'GET /svc/x HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 503 /)
  t.equal(raw.match(/^content-type:/gim)?.length, 1, 'one Content-Type, the configured one')
  t.match(raw, /content-type: text\/x-down/i)
  t.equal(raw.match(/^content-length:/gim)?.length, 1, 'one framing')
  t.notMatch(raw, /transfer-encoding/i)
  t.ok(TOKEN.length > 0)
})
