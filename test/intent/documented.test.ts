/**
 * Sentences of docs/INTENT.md that no other test held the code to,
 * checked through the admin API of a running proxy.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

const TOKEN = 'intent-token-0123456789abcdef'
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }

t.test('a reload ends a running experiment with what it has, and its report is published', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const config = {
    admin: { token: TOKEN },
    routes: [route('svc', '/svc', upstream.url, { intent: { protects: 'consistency' }, chaos: { enabled: true, seed: 1 } })]
  }
  const file = join(t.testdir({}), 'config.json')
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 } }))
  const proxy = await startProxy(t, config, { configFile: file })
  const started = await fetchText(`${proxy.adminUrl}/experiments`, { method: 'POST', headers: auth, body: JSON.stringify({ mode: 'intent', durationMs: 600_000 }) })
  t.equal(started.status, 202)
  for (let i = 0; i < 10; i++) await fetchText(`${proxy.url}/svc/x`)
  t.not(JSON.parse((await fetchText(`${proxy.adminUrl}/experiments`)).body).running, null, 'running before the reload')

  const reload = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(reload.status, 200, reload.body)
  const after = JSON.parse((await fetchText(`${proxy.adminUrl}/experiments`)).body) as { running: unknown, last: { mode: string } | null }
  t.equal(after.running, null, 'the reload ended it, long before its 10 minutes')
  t.equal(after.last?.mode, 'intent', 'with a report of what it had')
  const report = await fetchText(`${proxy.adminUrl}/experiments/report`)
  t.equal(report.status, 200)
  t.equal((await fetchText(`${proxy.adminUrl}/experiments`, { method: 'POST', headers: auth, body: JSON.stringify({ mode: 'uniform', durationMs: 60_000 }) })).status, 202, 'and a new one may start')
})

t.test('POST /routes/:route/intent/resume needs the token and a route with an intent engine', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    admin: { token: TOKEN },
    routes: [
      route('svc', '/svc', upstream.url, { intent: { protects: 'consistency' }, chaos: { enabled: true, seed: 1 } }),
      route('plain', '/plain', upstream.url)
    ]
  })
  t.equal((await fetchText(`${proxy.adminUrl}/routes/svc/intent/resume`, { method: 'POST' })).status, 401)
  t.equal((await fetchText(`${proxy.adminUrl}/routes/plain/intent/resume`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status, 404)
  const resumed = await fetchText(`${proxy.adminUrl}/routes/svc/intent/resume`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(resumed.status, 200)
  t.match(JSON.parse(resumed.body), { route: 'svc', level: Number })
})
