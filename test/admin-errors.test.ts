// One error vocabulary: every faultline error carries a stable `code`, and
// the admin API says `no_route` for an unknown route on every endpoint
// (GET /report and the breaker actions said `no_such_route` before).
import t from 'tap'
import { startProxy, startUpstream, fetchText, rawExchange, route, scrape, sumOf } from './helpers.js'
import { ConfigError } from '../src/config/errors.js'
import { TriggerError } from '../src/faults/trigger.js'
import { ClientCutError } from '../src/faults/io.js'
import { DuplicateFaultError, EndedFaultError } from '../src/faults/fault-set.js'
import { GlobError } from '../src/faults/glob.js'
import { ExperimentBusyError } from '../src/intent/experiment.js'
import { BadPathError } from '../src/core/path.js'
import { ClientCancelledError, FaultlineError, PolicyRejectionError, RequestBodyFragmentedError, RequestBodyTooLargeError, UpstreamError } from '../src/core/errors.js'
import { ADMIN_ERRORS } from '../src/admin/server.js'

const TOKEN = 'test-admin-token-0123456789'

t.test('every faultline error has its stable code', async (t) => {
  const errors: Array<[FaultlineError, string]> = [
    [new ConfigError('f.yaml', [{ path: 'x', message: 'bad' }]), 'invalid_config'],
    [new TriggerError('bad'), 'invalid_fault_trigger'],
    [new ClientCutError('reset', 'cut'), 'client_cut'],
    [new DuplicateFaultError('a'), 'duplicate_fault'],
    [new EndedFaultError('2000-01-01T00:00:00Z'), 'invalid_fault'],
    [new GlobError('bad'), 'invalid_glob'],
    [new ExperimentBusyError('uniform'), 'experiment_running'],
    [new BadPathError('bad'), 'bad_path'],
    [new ClientCancelledError(), 'client_cancelled'],
    [new RequestBodyTooLargeError(10), 'request_body_too_large'],
    [new RequestBodyFragmentedError(10_000, 1000, 64), 'request_body_fragmented'],
    [new PolicyRejectionError('short_circuited', 'open', 1), 'short_circuited'],
    [new UpstreamError('timeout', 'slow', { code: 'UND_ERR_HEADERS_TIMEOUT' }), 'upstream_timeout']
  ]
  for (const [err, code] of errors) {
    t.ok(err instanceof FaultlineError, `${err.name} is a FaultlineError`)
    t.equal(err.code, code, `${err.name}: ${code}`)
  }
  t.equal(new UpstreamError('connect', 'refused', { code: 'ECONNREFUSED' }).causeCode, 'ECONNREFUSED', 'the low-level code is kept as causeCode')
  // The admin codes the errors map to are in the admin table.
  for (const code of ['invalid_config', 'duplicate_fault', 'invalid_fault', 'experiment_running'] as const) t.ok(code in ADMIN_ERRORS, code)
})

t.test('an unknown route is `no_route` on every admin endpoint', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { admin: { token: TOKEN }, routes: [route('svc', '/svc', upstream.url)] })
  const auth = { authorization: `Bearer ${TOKEN}` }
  const answers = await Promise.all([
    fetchText(`${proxy.adminUrl}/report?route=nope`),
    fetchText(`${proxy.adminUrl}/routes/nope/breaker/reset`, { method: 'POST', headers: auth }),
    fetchText(`${proxy.adminUrl}/chaos/routes/nope`)
  ])
  for (const res of answers) {
    t.equal(res.status, 404)
    t.equal((JSON.parse(res.body) as { error: string }).error, 'no_route', res.body)
  }
})

t.test('a wrong method on an admin path is a 405 with Allow, a path no endpoint has a 404, and every answer is counted', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { admin: { token: TOKEN }, routes: [route('svc', '/svc', upstream.url)] })
  const auth = { authorization: `Bearer ${TOKEN}` }
  const cases: Array<[string, string, Record<string, string>, number, string | undefined]> = [
    // QUERY without Content-Type got fastify's 400 ("must provide a Content-Type") before the path was looked at.
    ['QUERY', '/routes', auth, 405, 'GET, HEAD'],
    ['PROPFIND', '/routes', auth, 405, 'GET, HEAD'],
    ['GET', '/reload', {}, 405, 'POST'],
    ['GET', '/routes/svc/breaker/open', {}, 405, 'POST'],
    ['POST', '/healthz', auth, 405, 'GET, HEAD'],
    ['QUERY', '/nope', auth, 404, undefined],
    ['PROPFIND', '/nope', auth, 404, undefined],
    ['GET', '/nope', {}, 404, undefined]
  ]
  for (const [method, path, headers, status, allow] of cases) {
    const res = await fetchText(`${proxy.adminUrl}${path}`, { method, headers, body: method === 'QUERY' ? 'q' : undefined })
    t.equal(res.status, status, `${method} ${path}: ${status}`)
    t.equal(res.headers.allow, allow, `${method} ${path}: Allow ${allow ?? 'absent'}`)
    const body = JSON.parse(res.body) as { error: string, message: string, allowed?: string[] }
    t.equal(body.error, status === 405 ? 'method_not_allowed' : 'not_found', `${method} ${path}: ${res.body}`)
    if (status === 405) t.same(body.allowed, allow?.split(', '), 'the allowed methods in the body too')
  }
  // A state-changing method still needs the token first: no token, no word on which paths exist.
  t.equal((await fetchText(`${proxy.adminUrl}/healthz`, { method: 'POST' })).status, 401, 'POST without a token: 401 before 405')
  t.equal((await fetchText(`${proxy.adminUrl}/healthz`)).status, 200)
  t.match(await rawExchange(proxy.faultline.adminPort, 'NOT A REQUEST\r\n\r\n'), /^HTTP\/1\.1 400 /, 'a request the parser refuses')

  const samples = await scrape(proxy)
  const count = (labels: Record<string, string>): number => sumOf(samples, 'faultline_admin_requests_total', labels)
  t.equal(count({ code: '405' }), 5, 'every 405 counted')
  t.equal(count({ endpoint: 'unmatched', method: 'QUERY', code: '405' }), 1, 'by method and code, the path kept out of the labels')
  t.equal(count({ endpoint: 'unmatched', code: '404' }), 3, 'every 404 counted')
  t.equal(count({ code: '401' }), 1, 'the refusal for a missing token counted')
  t.equal(count({ endpoint: '/healthz', method: 'GET', code: '200' }), 1, 'an answered endpoint under its pattern')
  t.equal(count({ endpoint: 'malformed', code: '400' }), 1, 'a request the parser refused counted')
})
