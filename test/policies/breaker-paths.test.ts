/**
 * The breaker policy's less travelled paths, through the proxy: thrown
 * upstream failures, a trial request whose client leaves, a reload that
 * keeps the breaker, the admin API on routes with other policies, and the
 * marks and log lines a route's own breaker leaves.
 */
import t from 'tap'
import { writeFile, mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'
import { ADMIN_TOKEN, scriptedUpstream } from './fixtures.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('connection resets trip the breaker; a thrown failure outside `on` does not', async (t) => {
  const upstream = await scriptedUpstream(t, ['reset'])
  const proxy = await startProxy(t, {
    routes: [
      route('r', '/r', upstream.url, { resilience: { breaker: { consecutiveFailures: 2, openMs: 30_000 } } })
    ]
  })
  for (let i = 0; i < 2; i++) t.equal((await fetchText(`${proxy.url}/r`)).status, 502, `reset ${i + 1} goes out as a 502`)
  const shorted = await fetchText(`${proxy.url}/r`)
  t.equal(shorted.headers['x-faultline-outcome'], 'short_circuited', 'two resets in a row opened it')
  t.equal(upstream.hits(), 2)

  const other = await scriptedUpstream(t, ['reset'])
  const proxy2 = await startProxy(t, {
    routes: [route('r', '/r', other.url, { resilience: { breaker: { consecutiveFailures: 2, openMs: 30_000, on: ['http_5xx'] } } })]
  })
  for (let i = 0; i < 3; i++) t.equal((await fetchText(`${proxy2.url}/r`)).status, 502)
  t.equal(other.hits(), 3, 'resets are not in `on`: the breaker stays closed')
})

t.test('a trial request whose client leaves frees the trial for the next request', async (t) => {
  let mode: 'down' | 'hang' | 'up' = 'down'
  const upstream = await startUpstream(t, (_req, res) => {
    if (mode === 'hang') return
    res.writeHead(mode === 'down' ? 503 : 200, { 'content-length': '2' }).end('ok')
  })
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, { resilience: { breaker: { consecutiveFailures: 1, openMs: 150, halfOpenProbes: 1 } } })]
  })
  t.equal((await fetchText(`${proxy.url}/r`)).status, 503)
  await sleep(200)
  mode = 'hang'
  const leaving = new AbortController()
  const trial = request(`${proxy.url}/r`, { signal: leaving.signal }).catch(() => 'aborted')
  const deadline = Date.now() + 5000
  while (upstream.hits() < 2 && Date.now() < deadline) await sleep(10)
  t.equal(upstream.hits(), 2, 'the trial reached the upstream')
  t.equal((await fetchText(`${proxy.url}/r`)).headers['x-faultline-outcome'], 'short_circuited', 'while it is in flight, others are held back')
  leaving.abort()
  t.equal(await trial, 'aborted')
  mode = 'up'
  let next = await fetchText(`${proxy.url}/r`)
  // The proxy sees the client leave a moment after it does.
  for (let i = 0; i < 50 && next.headers['x-faultline-outcome'] === 'short_circuited'; i++) {
    await sleep(20)
    next = await fetchText(`${proxy.url}/r`)
  }
  t.equal(next.status, 200, 'the next request is the trial, and closes the breaker')
  const routes = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body)
  t.equal(routes.routes[0].state.breaker.state, 'closed')
})

t.test('reloads: a kept breaker counts a transition once; options that went away and came back start a fresh breaker', async (t) => {
  const upstream = await scriptedUpstream(t, [503])
  const dir = await mkdtemp(join(tmpdir(), 'faultline-breaker-'))
  const file = join(dir, 'config.json')
  const withOpenMs = (openMs: number): Parameters<typeof startProxy>[1] => ({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    routes: [route('r', '/r', upstream.url, { resilience: { breaker: { consecutiveFailures: 2, openMs } } })]
  })
  await writeFile(file, JSON.stringify(withOpenMs(30_000)))
  const proxy = await startProxy(t, withOpenMs(30_000), { configFile: file })
  await proxy.faultline.reload()
  for (let i = 0; i < 2; i++) await fetchText(`${proxy.url}/r`)
  t.equal((await fetchText(`${proxy.url}/r`)).headers['x-faultline-outcome'], 'short_circuited')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_breaker_transitions_total', { route: 'r', from: 'closed', to: 'open' }), 1, 'the retired generation does not count it again')

  await writeFile(file, JSON.stringify(withOpenMs(20_000)))
  await proxy.faultline.reload()
  await writeFile(file, JSON.stringify(withOpenMs(30_000)))
  await proxy.faultline.reload()
  const hits = upstream.hits()
  const fresh = await fetchText(`${proxy.url}/r`)
  t.equal(fresh.headers['x-faultline-outcome'], 'failed', 'the open breaker of two configs ago was let go: this one is closed')
  t.equal(upstream.hits(), hits + 1)
})

t.test('admin: a route whose first policy is not the breaker still finds it; a route with other policies and no breaker is a 409', async (t) => {
  const upstream = await scriptedUpstream(t, [200])
  const proxy = await startProxy(t, {
    admin: { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN },
    routes: [
      route('both', '/both', upstream.url, { resilience: { retry: { attempts: 2 }, breaker: { consecutiveFailures: 3 } } }),
      route('retry', '/retry', upstream.url, { resilience: { retry: { attempts: 2 } } })
    ]
  })
  const post = async (path: string): Promise<{ status: number, body: any }> => {
    const res = await request(`${proxy.adminUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    return { status: res.statusCode, body: await res.body.json() }
  }
  const opened = await post('/routes/both/breaker/force-open')
  t.equal(opened.status, 200)
  t.equal(opened.body.state.state, 'forced_open')
  t.same(opened.body.routes, ['both'], 'the route without a breaker does not share it')
  t.equal((await fetchText(`${proxy.url}/both`)).headers['x-faultline-outcome'], 'short_circuited')
  t.equal((await post('/routes/retry/breaker/force-open')).status, 409, 'retry only: no breaker to force')
})

t.test('a short-circuit by a route\'s own breaker is counted as injected; a route that sent nothing writes no log line', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.writeHead(200, { 'content-length': '2' }).end('ok') })
  const breaker = { consecutiveFailures: 2, openMs: 30_000 }
  const proxy = await startProxy(t, {
    routes: [
      route('canary', '/canary', upstream.url, { resilience: { breaker }, chaos: { enabled: true, allowHeaderTriggers: true } }),
      route('idle', '/idle', upstream.url, { resilience: { breaker } })
    ]
  })
  for (let i = 0; i < 2; i++) await fetchText(`${proxy.url}/canary`, { headers: { 'x-faultline-fault': 'abort=503' } })
  const shorted = await fetchText(`${proxy.url}/canary`)
  t.equal(shorted.headers['x-faultline-outcome'], 'short_circuited')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'canary', outcome: 'short_circuited', injected: 'true' }), 1, 'chaos shaped this answer')
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'canary', outcome: 'short_circuited', injected: 'false' }), 0)

  // The shared breaker: opened by real failures on a third route; the idle route shares it and sent nothing.
  const down = await scriptedUpstream(t, [503])
  const proxy2 = await startProxy(t, {
    routes: [
      route('busy', '/busy', down.url, { resilience: { breaker } }),
      route('idle', '/idle', down.url, { resilience: { breaker } })
    ]
  })
  for (let i = 0; i < 2; i++) await fetchText(`${proxy2.url}/busy`)
  const lines = proxy2.logs.lines.filter((l) => String(l.msg).startsWith('circuit breaker opened'))
  t.equal(lines.length, 1, 'one line, from the route whose request tripped it')
  t.equal(lines[0]?.route, 'busy')
})
