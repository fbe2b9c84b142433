// One error vocabulary: every faultline error carries a stable `code`, and
// the admin API says `no_route` for an unknown route on every endpoint
// (GET /report and the breaker actions said `no_such_route` before).
import t from 'tap'
import { startProxy, startUpstream, fetchText, route } from './helpers.js'
import { ConfigError } from '../src/config/errors.js'
import { TriggerError } from '../src/faults/trigger.js'
import { ClientCutError } from '../src/faults/io.js'
import { DuplicateFaultError, EndedFaultError } from '../src/faults/fault-set.js'
import { GlobError } from '../src/faults/glob.js'
import { ExperimentBusyError } from '../src/intent/experiment.js'
import { BadPathError } from '../src/core/path.js'
import { ClientCancelledError, FaultlineError, PolicyRejectionError, RequestBodyTooLargeError, UpstreamError } from '../src/core/errors.js'
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
