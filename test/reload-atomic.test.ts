import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fetchText, route, startProxy, startUpstream } from './helpers.js'
import { CLI } from './repo.js'

const TOKEN = 'reload-token-0123456789abcdef'
const auth = { authorization: `Bearer ${TOKEN}` }

/** The exposition without the lines a reload attempt may change (its own counter, process figures). */
async function exposition (adminUrl: string): Promise<string> {
  const text = (await fetchText(`${adminUrl}/metrics`)).body
  return text.split('\n').filter((l) => !/^(# \w+ )?(faultline_config_reloads_total|process_|nodejs_|faultline_admin)/.test(l)).join('\n')
}

// issue 13: an invalid validate.schema passed `check`, crashed `run`, answered 500 on reload and left
// the routes built before it wired (policy leases, metric series).
t.test('a reload with an invalid schema is refused whole: 400, nothing left behind', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"ok":true}') })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const v1 = { admin: { token: TOKEN }, routes: [route('svc', '/svc', up.url, { validate: { schema: { type: 'object' } } })] }
  await writeFile(file, JSON.stringify(v1))
  const proxy = await startProxy(t, v1, { configFile: file })
  t.equal((await fetchText(`${proxy.url}/svc`)).status, 200)
  const before = await exposition(proxy.adminUrl)

  const bad = {
    ...v1,
    routes: [
      route('extra', '/extra', up.url, { resilience: { breaker: { consecutiveFailures: 2 }, bulkhead: { maxConcurrent: 4 } }, intent: { criticality: 'critical' } }),
      route('svc', '/svc', up.url, { validate: { schema: { type: 'no-such-type' } } })
    ]
  }
  await writeFile(file, JSON.stringify(bad))
  const answer = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })
  t.equal(answer.status, 400, 'refused as a config error, not a 500')
  const body = JSON.parse(answer.body) as { error: string, problems: Array<{ path: string, message: string }> }
  t.equal(body.error, 'invalid_config')
  t.equal(body.problems[0]?.path, 'routes[1].validate.schema')
  t.match(body.problems[0]?.message, /JSON Schema/)
  t.equal(await exposition(proxy.adminUrl), before, 'no metric series of the refused config exists')
  t.equal((await fetchText(`${proxy.url}/extra`)).status, 404, 'the refused route was never served')
  t.equal((await fetchText(`${proxy.url}/svc`)).status, 200, 'the old config stays live')

  // `check` runs the same build: the file that reload refused fails it, exit 2, naming the path.
  const check = spawnSync(process.execPath, [...CLI, 'check', file], { encoding: 'utf8', timeout: 60_000 })
  t.equal(check.status, 2)
  t.match(check.stderr, /routes\[1\]\.validate\.schema: expected a JSON Schema that compiles/)
})

t.test('config errors never echo a secret: a short admin token is not shown', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const v1 = { admin: { token: TOKEN }, routes: [route('svc', '/svc', up.url)] }
  await writeFile(file, JSON.stringify(v1))
  const proxy = await startProxy(t, v1, { configFile: file })
  await writeFile(file, JSON.stringify({ ...v1, admin: { token: 'hunter2-short' } }))
  const answer = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })
  t.equal(answer.status, 400)
  t.notMatch(answer.body, /hunter2/, 'not in the answer')
  t.match(answer.body, /admin\.token/)
  t.notOk(proxy.logs.lines.some((l) => JSON.stringify(l).includes('hunter2')), 'not in the log')
})
