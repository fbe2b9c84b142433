import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from './helpers.js'

const TOKEN = 'reload-token-0123456789abcdef'
const auth = { authorization: `Bearer ${TOKEN}` }

t.test('reload: a good file swaps routes, a bad file keeps the old config live', async (t) => {
  const a = await startUpstream(t, (_req, res) => { res.end('from a') })
  const b = await startUpstream(t, (_req, res) => { res.end('from b') })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const v1 = { admin: { token: TOKEN }, routes: [route('svc', '/svc', a.url)] }
  await writeFile(file, JSON.stringify(v1))
  const proxy = await startProxy(t, v1, { configFile: file })
  t.equal((await fetchText(`${proxy.url}/svc`)).body, 'from a')

  await writeFile(file, JSON.stringify({ ...v1, routes: [route('svc', '/svc', b.url), route('extra', '/extra', a.url)] }))
  const ok = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })
  t.equal(ok.status, 200)
  t.same((JSON.parse(ok.body) as { routes: string[] }).routes, ['svc', 'extra'])
  t.equal((await fetchText(`${proxy.url}/svc`)).body, 'from b', 'the new upstream serves at once')
  t.equal((await fetchText(`${proxy.url}/extra`)).body, 'from a', 'the new route exists')

  await writeFile(file, JSON.stringify({ ...v1, routes: [route('svc', '/svc', 'not a url')] }))
  const bad = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })
  t.equal(bad.status, 400)
  const body = JSON.parse(bad.body) as { error: string, problems: Array<{ file: string, path: string, message: string }> }
  t.equal(body.error, 'invalid_config')
  t.same(body.problems, [{ file, path: 'routes[0].upstream.url', message: 'expected a URL, got "not a url"' }])
  t.equal((await fetchText(`${proxy.url}/svc`)).body, 'from b', 'the old config stays live')
  t.equal((await fetchText(`${proxy.url}/extra`)).body, 'from a')
  t.ok(proxy.logs.lines.some((l) => l.level === 50 && String(l.msg).includes('previous config stays live')), 'the log says why')

  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_config_reloads_total', { result: 'success' }), 1)
  t.equal(sumOf(samples, 'faultline_config_reloads_total', { result: 'failure' }), 1)
})

t.test('an in-flight request finishes on the config it started with', async (t) => {
  let release: (() => void) | undefined
  const a = await startUpstream(t, (_req, res) => {
    res.writeHead(200)
    res.write('old-')
    release = () => res.end('config')
  })
  const b = await startUpstream(t, (_req, res) => { res.end('new config') })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const v1 = { admin: { token: TOKEN }, routes: [route('svc', '/svc', a.url)] }
  await writeFile(file, JSON.stringify(v1))
  const proxy = await startProxy(t, v1, { configFile: file })

  const inflight = await request(`${proxy.url}/svc`)
  const text = inflight.body.text()
  await writeFile(file, JSON.stringify({ ...v1, routes: [route('svc', '/svc', b.url)] }))
  t.equal((await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })).status, 200)
  t.equal((await fetchText(`${proxy.url}/svc`)).body, 'new config')
  release?.()
  t.equal(await text, 'old-config', 'the old upstream pool finished the request it had')
})
