/**
 * The docker-compose demo service (src/demo/client.ts), run for real:
 * through faultline with docker/faultline.yaml's routes to the bundled demo
 * upstream, all on 127.0.0.1.
 */
import t from 'tap'
import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { parse as parseYaml } from 'yaml'
import { loadConfigFile } from '../src/config/load.js'
import { startDemoClient, DEMO_CALLS } from '../src/demo/client.js'
import { startDemoUpstream } from '../src/demo/upstream.js'
import { closedPort, scrape, startProxy, startUpstream, sumOf } from './helpers.js'
import { REPO } from './docker-files.js'

t.test('the client holds its rate through the sidecar, and faultline counts what it saw', async (t) => {
  const upstream = await startDemoUpstream({ seed: 7 })
  t.teardown(upstream.close)
  // Validated as the container would load it...
  await loadConfigFile(join(REPO, 'docker/faultline.yaml'), { FAULTLINE_ADMIN_TOKEN: 'test-admin-token-0123456789' })
  // ...then its routes as written (a parsed route is not config input: `fallback: [cache]` becomes
  // { kind: 'cache', ... }), with the compose service name swapped for the local upstream.
  const written = parseYaml(await readFile(join(REPO, 'docker/faultline.yaml'), 'utf8')) as { routes: Array<{ upstream: Record<string, unknown> }> }
  // The orders route defers writes: its journal goes in a directory of this test's.
  const routes = written.routes.map((r) => ({ ...r, upstream: { ...r.upstream, url: upstream.url } }))
  const proxy = await startProxy(t, { deferral: { dir: t.testdir({}) }, routes } as Parameters<typeof startProxy>[1])

  const lines: string[] = []
  const rate = 100
  const durationS = 1.5
  const client = startDemoClient({ target: proxy.url, rate, durationS, reportEveryMs: 500, log: (l) => lines.push(l) })
  const total = await client.done

  t.equal(total.requests, rate * durationS, 'rate x duration calls, however late the timers fire')
  t.same(total.errors, {}, 'every call got a response')
  for (const call of DEMO_CALLS) t.ok(total.byRoute[call.route]!.requests >= total.requests / DEMO_CALLS.length - 1, `${call.route} gets its share`)
  t.equal(total.byRoute.catalog!.ok, total.byRoute.catalog!.requests, 'catalog is healthy')
  t.equal(total.byRoute.orders!.ok, total.byRoute.orders!.requests, 'orders (POST, rewritten) is healthy')
  t.ok((total.byClass['5xx'] ?? 0) > 0, 'inventory and pricing fail sometimes, as designed')

  const samples = await scrape(proxy)
  for (const call of DEMO_CALLS) {
    t.equal(sumOf(samples, 'faultline_requests_total', { route: call.route }), total.byRoute[call.route]!.requests, `faultline counted every ${call.route} call`)
  }
  t.equal(sumOf(samples, 'faultline_requests_total', { status_class: '5xx' }), total.byClass['5xx'] ?? 0, 'and the same 5xx')

  t.match(lines[0], /^demo client: 100 requests\/s to http:\/\/127\.0\.0\.1:\d+ for 1\.5 s/)
  t.ok(lines.filter((l) => /^demo client: \d+ requests in [\d.]+ s .*p99=[\d.]+ms \| catalog \d+\/\d+ ok/.test(l)).length >= 2, 'a summary line per window')
  t.match(lines.at(-1), new RegExp(`^demo client total: ${total.requests} requests in `))
})

t.test('stop() ends the run early; a refused connection is counted, not thrown', async (t) => {
  const lines: string[] = []
  const client = startDemoClient({ target: `http://127.0.0.1:${await closedPort()}`, rate: 50, durationS: 60, log: (l) => lines.push(l) })
  await new Promise((resolve) => setTimeout(resolve, 300))
  const t0 = performance.now()
  const total = await client.stop()
  t.ok(performance.now() - t0 < 2000, 'stops promptly')
  t.ok(total.requests > 5, `${total.requests} calls were made`)
  t.same(total.errors, { ECONNREFUSED: total.requests }, 'each one a refused connection')
  t.equal(await client.done, total, 'done resolves with the same tally')
  t.equal(await client.stop(), total, 'stop() twice is harmless')
  t.match(lines.at(-1), /errors=\d+ \(ECONNREFUSED=\d+\)/)
})

t.test('a call that hangs mid-body ends at timeoutMs, so the run still ends', async (t) => {
  // Headers at once, then one byte now and then, forever: no idle timeout would fire.
  const drip = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    const timer = setInterval(() => res.write('.'), 50)
    res.on('close', () => { clearInterval(timer) })
  })
  const client = startDemoClient({ target: drip.url, rate: 20, durationS: 0.5, timeoutMs: 300, log: () => {} })
  const t0 = performance.now()
  const total = await client.done
  t.ok(performance.now() - t0 < 0.5 * 1000 + 300 + 1000, 'done within duration + timeout (+ slack)')
  t.ok(total.requests >= 5, `${total.requests} calls`)
  t.same(total.errors, { TimeoutError: total.requests }, 'every call cut by its deadline')
})
