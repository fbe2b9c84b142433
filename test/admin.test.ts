import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Faultline } from '../src/faultline.js'
import { ConfigError } from '../src/config/errors.js'
import { parseConfig } from '../src/config/load.js'
import { createLogger } from '../src/log.js'
import { fetchText, route, startProxy, startUpstream } from './helpers.js'

const TOKEN = 'test-token-0123456789abcdef'

t.test('health, readiness, metrics and routes are open to read', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end() })
  const proxy = await startProxy(t, { routes: [route('a', '/a', upstream.url)] })
  t.equal((await fetchText(`${proxy.adminUrl}/healthz`)).status, 200)
  const ready = await fetchText(`${proxy.adminUrl}/readyz`)
  t.equal(ready.status, 200)
  t.same(JSON.parse(ready.body), { status: 'ready' })
  const metrics = await fetchText(`${proxy.adminUrl}/metrics`)
  t.equal(metrics.status, 200)
  t.match(metrics.headers['content-type'], /text\/plain/)
  t.match(metrics.body, /process_cpu_user_seconds_total/, 'process default metrics are exported')
  const routes = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as { routes: Array<{ name: string, upstream: { url: string } }> }
  t.equal(routes.routes[0]?.name, 'a')
  t.equal(routes.routes[0]?.upstream.url, upstream.url)
  const missing = await fetchText(`${proxy.adminUrl}/nope`)
  t.equal(missing.status, 404)
  t.equal((JSON.parse(missing.body) as { error: string }).error, 'not_found')
})

t.test('state-changing calls need the bearer token', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end() })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const config = { admin: { token: TOKEN }, routes: [route('a', '/a', upstream.url)] }
  await writeFile(file, JSON.stringify(config))
  const proxy = await startProxy(t, config, { configFile: file })
  const none = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST' })
  t.equal(none.status, 401)
  t.match(none.headers['www-authenticate'], /Bearer/)
  const wrong = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: { authorization: 'Bearer wrong-token-0123456789' } })
  t.equal(wrong.status, 401)
  const right = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(right.status, 200)
  t.equal((JSON.parse(right.body) as { generation: number }).generation, 2)
  t.ok(proxy.logs.lines.some((l) => l.audit === 'reload'), 'the accepted call is audited')
  t.ok(proxy.logs.lines.some((l) => typeof l.msg === 'string' && l.msg.includes('refused')), 'refusals are logged')
  t.notOk(JSON.stringify(proxy.logs.lines).includes(TOKEN), 'the token never reaches the log')
})

t.test('without a configured token, state-changing calls are refused outright', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end() })
  const proxy = await startProxy(t, { routes: [route('a', '/a', upstream.url)] })
  const res = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: { authorization: 'Bearer anything-at-all-here' } })
  t.equal(res.status, 403)
  t.equal((JSON.parse(res.body) as { error: string }).error, 'admin_token_not_configured')
})

t.test('the proxy refuses to start with a non-loopback admin address and no token', async (t) => {
  const input = { admin: { host: '0.0.0.0', port: 0 }, listen: { port: 0, host: '127.0.0.1' }, routes: [route('a', '/a', 'http://127.0.0.1:1')] }
  const err = await (async () => await Faultline.start(parseConfig(input, 'x.yaml'), { logger: createLogger('silent') }))().then(async (f) => { await f.close(); return null }, (e: unknown) => e)
  t.ok(err instanceof ConfigError, 'refused by validation, so `faultline check` refuses it too')
  t.match((err as Error).message, /admin\.host: expected a loopback address when no admin token is set, got "0\.0\.0\.0"/)
})

t.test('the token can come from a file (a mounted secret): it wins over token, and is re-read on reload', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end() })
  const dir = t.testdir({ token: `${TOKEN}\n` })
  const NEXT = 'rotated-token-fedcba9876543210'
  const config = { admin: { token: 'inline-token-0123456789abcdef', tokenFile: join(dir, 'token') }, routes: [route('a', '/a', upstream.url)] }
  const file = join(dir, 'config.json')
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 } }))
  const proxy = await startProxy(t, config, { configFile: file })
  const off = async (token: string): Promise<number> => (await fetchText(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status
  t.equal(await off('nope-nope-nope-nope'), 401)
  t.equal(await off('inline-token-0123456789abcdef'), 401, 'tokenFile wins over token')
  t.equal(await off(TOKEN), 200, 'the trimmed file token is accepted')
  t.equal(JSON.parse((await fetchText(`${proxy.adminUrl}/chaos`)).body).killSwitch, 'off', 'and the call took effect')

  await writeFile(join(dir, 'token'), NEXT)
  t.equal(await off(TOKEN), 200, 'the file is read at start and on reload, not per request')
  const reload = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(reload.status, 200, reload.body)
  t.equal(await off(TOKEN), 401, 'after a reload the old token is refused')
  t.equal(await off(NEXT), 200, 'and the rotated one accepted')
})
