/**
 * docs/POLICIES.md "State across reloads" and docs/CONFIG.md on bad files,
 * through a running proxy: a reload that keeps a policy's options keeps its
 * state; a TLS file that cannot be read refuses the reload and the old
 * config stays live.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fetchText, route, startProxy, startUpstream } from './helpers.js'

const TOKEN = 'reload-state-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }

t.test('the cache stays warm and the bulkhead keeps counting across a reload with the same options', async (t) => {
  let failing = false
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const upstream = await startUpstream(t, (req, res) => {
    if (req.url === '/b/hold') { void held.then(() => res.end('held')); return }
    if (failing) { res.writeHead(503).end('down'); return }
    res.end(`fresh ${req.url}`)
  })
  const config = {
    admin: { token: TOKEN },
    routes: [
      route('c', '/c', upstream.url, { resilience: { fallback: ['cache'] } }),
      route('b', '/b', upstream.url, { resilience: { bulkhead: { maxConcurrent: 1, maxQueue: 0 } } })
    ]
  }
  const file = join(t.testdir({}), 'config.json')
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 } }))
  const proxy = await startProxy(t, config, { configFile: file })
  t.equal((await fetchText(`${proxy.url}/c/x`)).body, 'fresh /c/x')
  const holding = fetchText(`${proxy.url}/b/hold`)
  for (let i = 0; i < 100 && upstream.hits() < 2; i++) await new Promise((resolve) => setTimeout(resolve, 10))

  // A new route appears; c and b keep their options.
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 }, routes: [...config.routes, route('n', '/n', upstream.url)] }))
  const reload = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })
  t.equal(reload.status, 200, reload.body)
  t.equal((await fetchText(`${proxy.url}/n/y`)).body, 'fresh /n/y', 'the reload took effect')

  const second = await fetchText(`${proxy.url}/b/other`)
  t.equal(second.status, 503, 'the request in flight from before the reload still holds the only slot')
  t.equal(second.headers['x-faultline-outcome'], 'rejected_bulkhead')
  release()
  t.equal((await holding).body, 'held')

  failing = true
  const cached = await fetchText(`${proxy.url}/c/x`)
  t.equal(cached.status, 200, 'the entry stored before the reload answers the failure after it')
  t.equal(cached.body, 'fresh /c/x')
  t.equal(cached.headers['x-faultline-fallback'], 'cache')
})

t.test('the retry budget keeps what it spent across a reload with the same options', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(503).end('down') })
  // One retry per minute window, none earned by requests: the first request spends it.
  const retry = { attempts: 3, backoff: { baseMs: 1, maxMs: 1, jitter: 'none' }, budgetRatio: 0, budgetMinRetries: 1, budgetWindowMs: 60_000 }
  const config = { admin: { token: TOKEN }, routes: [route('r', '/r', upstream.url, { resilience: { retry } })] }
  const file = join(t.testdir({}), 'config.json')
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 } }))
  const proxy = await startProxy(t, config, { configFile: file })
  const first = await fetchText(`${proxy.url}/r/x`)
  t.equal(first.headers['x-faultline-attempts'], '2', 'the first request spent the only retry of the window')
  t.equal(upstream.hits(), 2)

  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 }, routes: [...config.routes, route('n', '/n', upstream.url)] }))
  const reload = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })
  t.equal(reload.status, 200, reload.body)
  t.equal((await fetchText(`${proxy.url}/n/y`)).status, 503, 'the reload took effect')

  const second = await fetchText(`${proxy.url}/r/x`)
  t.equal(second.status, 503)
  t.equal(second.headers['x-faultline-attempts'], '1', 'no retry after the reload: the budget is the same, still spent')
  t.equal(upstream.hits(), 4, 'one attempt each for /n/y and the second /r/x')

  // A changed budget option starts a fresh budget.
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 }, routes: [route('r', '/r', upstream.url, { resilience: { retry: { ...retry, budgetMinRetries: 2 } } })] }))
  t.equal((await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })).status, 200)
  t.equal((await fetchText(`${proxy.url}/r/x`)).headers['x-faultline-attempts'], '3', 'a fresh budget of two retries')
})

t.test('a reload naming a TLS file that cannot be read is refused, naming it; the old config stays live', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const config = { admin: { token: TOKEN }, routes: [route('a', '/a', upstream.url)] }
  const dir = t.testdir({})
  const file = join(dir, 'config.json')
  await writeFile(file, JSON.stringify({ ...config, listen: { host: '127.0.0.1', port: 0 } }))
  const proxy = await startProxy(t, config, { configFile: file })
  const missing = join(dir, 'no-such-ca.pem')
  await writeFile(file, JSON.stringify({
    ...config,
    listen: { host: '127.0.0.1', port: 0 },
    routes: [route('a', '/a', 'https://127.0.0.1:1', { upstream: { url: 'https://127.0.0.1:1', tls: { ca: missing } } })]
  }))
  const reload = await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })
  t.equal(reload.status, 400, 'a config error, not a 500')
  t.match(reload.body, /no-such-ca\.pem/, 'naming the file')
  t.match(reload.body, /routes\[0\]\.upstream\.tls\.ca/, 'and the path in the config')
  const res = await fetchText(`${proxy.url}/a`)
  t.equal(res.status, 200, 'the old route still answers')
  t.equal(res.body, 'ok')
})
