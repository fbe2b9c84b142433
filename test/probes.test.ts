/**
 * The probe listener (config `probes`): health and readiness on a port of
 * their own, nothing else there, so the kubelet can probe faultline while
 * the admin API stays behind its token and network policy.
 */
import t from 'tap'
import { parseConfig } from '../src/config/load.js'
import { ConfigError } from '../src/config/errors.js'
import { fetchText, route, startProxy, startUpstream } from './helpers.js'

const TOKEN = 'probe-test-token-0123456789'

t.test('the probe port answers /healthz and /readyz and nothing else', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { admin: { token: TOKEN }, probes: { host: '127.0.0.1', port: 0 }, routes: [route('svc', '/svc', upstream.url)] })
  const probes = `http://127.0.0.1:${proxy.faultline.probesPort}`
  t.ok(proxy.faultline.probesPort > 0, 'a probe listener is bound')
  t.not(proxy.faultline.probesPort, proxy.faultline.adminPort)

  const health = await fetchText(`${probes}/healthz`)
  t.equal(health.status, 200)
  t.same(JSON.parse(health.body), { status: 'ok' })
  t.equal(health.headers['cache-control'], 'no-store')
  const ready = await fetchText(`${probes}/readyz`)
  t.equal(ready.status, 200)
  t.same(JSON.parse(ready.body), { status: 'ready' })
  t.equal((await fetchText(`${probes}/healthz`, { method: 'HEAD' })).status, 200, 'HEAD works too')

  // Nothing else: no metrics, no config, no control, with or without a token.
  for (const [method, path] of [['GET', '/metrics'], ['GET', '/routes'], ['GET', '/report'], ['GET', '/'], ['POST', '/reload'], ['POST', '/chaos/off']] as const) {
    const res = await fetchText(`${probes}${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } })
    t.equal(res.status, 404, `${method} ${path} is not served on the probe port`)
  }
  // The admin API still serves them.
  t.equal((await fetchText(`${proxy.adminUrl}/metrics`)).status, 200)
})

t.test('readiness on the probe port drops when shutdown starts', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { probes: { host: '127.0.0.1', port: 0 }, shutdown: { drainMs: 400, mode: 'keep-accepting' }, routes: [route('svc', '/svc', upstream.url)] })
  const probes = `http://127.0.0.1:${proxy.faultline.probesPort}`
  const closing = proxy.faultline.close()
  t.equal((await fetchText(`${probes}/readyz`)).status, 503, 'not ready during the drain')
  t.equal((await fetchText(`${probes}/healthz`)).status, 200, 'but alive: the liveness probe must not restart it mid-drain')
  await closing
  await t.rejects(fetchText(`${probes}/healthz`, { timeoutMs: 1_000 }), 'the probe listener closes with the proxy')
})

t.test('without `probes` there is no probe listener', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { routes: [route('svc', '/svc', upstream.url)] })
  t.equal(proxy.faultline.probesPort, 0)
})

t.test('probes.port must differ from the proxy and admin ports', async (t) => {
  const base = { routes: [route('svc', '/svc', 'http://127.0.0.1:1')] }
  const problems = (config: Record<string, unknown>): unknown => {
    try { parseConfig({ ...base, ...config }, 'f.yaml'); return undefined } catch (err) { return err instanceof ConfigError ? err.problems : err }
  }
  t.same(problems({ listen: { port: 8080 }, admin: { port: 9901 }, probes: { port: 9901 } }),
    [{ path: 'probes.port', message: 'expected a port different from listen.port (8080) and admin.port (9901)' }])
  t.same(problems({ probes: { port: 8080 } }), [{ path: 'probes.port', message: 'expected a port different from listen.port (8080) and admin.port (9901)' }])
  t.equal(parseConfig({ ...base, probes: { port: 9902 } }, 'f.yaml').probes?.host, '0.0.0.0', 'binds all interfaces by default: the kubelet probes the pod IP')
})
