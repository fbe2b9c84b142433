/**
 * faultline_chaos_active{route, reason} (Grafana's chaos-period
 * annotations) and faultline_build_info{version, node}, scraped from a
 * real proxy while chaos is switched on and off, halted by a guardrail,
 * and a route is removed by a reload.
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fetchText, route, scrape, startProxy, startUpstream, type Sample, type StartedProxy } from '../helpers.js'

const TOKEN = 'chaos-active-token-0123456789'
const auth = { authorization: `Bearer ${TOKEN}` }

/** The route's faultline_chaos_active series as reason=value pairs. */
async function chaosActive (proxy: StartedProxy, routeName: string): Promise<string[]> {
  const samples: Sample[] = await scrape(proxy)
  return samples.filter((s) => s.name === 'faultline_chaos_active' && s.labels.route === routeName).map((s) => `${s.labels.reason}=${s.value}`)
}

t.test('faultline_build_info carries the package version and the Node.js version', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { routes: [route('svc', '/svc', upstream.url)] })
  const pkg = JSON.parse(await readFile(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  const info = (await scrape(proxy)).filter((s) => s.name === 'faultline_build_info')
  t.equal(info.length, 1, 'one series')
  t.same(info[0]?.labels, { version: pkg.version, node: process.version })
  t.equal(info[0]?.value, 1)
})

t.test('faultline_chaos_active: one series per live route, 1 while injecting, 0 with the reason it stopped', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const config = {
    admin: { token: TOKEN },
    routes: [
      route('plain', '/plain', upstream.url),
      route('faulty', '/faulty', upstream.url, { chaos: { enabled: true, faults: [{ kind: 'abort', status: 503, probability: 0.1 }] } }),
      route('triggers', '/triggers', upstream.url, { chaos: { enabled: true, allowHeaderTriggers: true } }),
      route('planned', '/planned', upstream.url, { intent: { protects: 'availability' }, chaos: { enabled: true, budget: 0.1 } }),
      route('armed-nothing', '/nothing', upstream.url, { chaos: { enabled: true } })
    ]
  }
  await writeFile(file, JSON.stringify(config))
  const proxy = await startProxy(t, config, { configFile: file })

  t.same(await chaosActive(proxy, 'plain'), ['disabled=0'], 'a route without chaos: 0, disabled')
  t.same(await chaosActive(proxy, 'faulty'), ['faults=1'], 'hand-written faults armed: 1')
  t.same(await chaosActive(proxy, 'triggers'), ['header_triggers=1'], 'header triggers allowed: 1')
  t.same(await chaosActive(proxy, 'planned'), ['planned=1'], 'an intent plan injecting: 1')
  t.same(await chaosActive(proxy, 'armed-nothing'), ['idle=0'], 'enabled with nothing to inject: 0, idle')

  // The kill switch stops every route; the old reason's series goes away (no stale 1).
  t.equal((await fetchText(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: auth })).status, 200)
  t.same(await chaosActive(proxy, 'faulty'), ['kill_switch=0'])
  t.same(await chaosActive(proxy, 'planned'), ['kill_switch=0'])
  t.equal((await fetchText(`${proxy.adminUrl}/chaos/on`, { method: 'POST', headers: auth })).status, 200)
  t.same(await chaosActive(proxy, 'faulty'), ['faults=1'], 'and back on')

  // A route switched off on its own.
  const off = await fetchText(`${proxy.adminUrl}/chaos/routes/faulty`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ enabled: false }) })
  t.equal(off.status, 200, off.body)
  t.same(await chaosActive(proxy, 'faulty'), ['disabled=0'], 'switched off on the route: 0, disabled')

  // A reload that removes a route removes its series.
  await writeFile(file, JSON.stringify({ ...config, routes: config.routes.filter((r) => r.name !== 'triggers') }))
  t.equal((await fetchText(`${proxy.adminUrl}/reload`, { method: 'POST', headers: auth })).status, 200)
  t.same(await chaosActive(proxy, 'triggers'), [], 'a removed route leaves no series')
  t.same(await chaosActive(proxy, 'planned'), ['planned=1'])
})

t.test('faultline_chaos_active: a guardrail halt reads 0, guardrail', async (t) => {
  let slow = false
  const upstream = await startUpstream(t, (_req, res) => { if (slow) setTimeout(() => res.end('late'), 150); else res.end('ok') })
  const proxy = await startProxy(t, {
    controller: { evaluationMs: 200, cooldownMs: 60_000, minRequests: 3 },
    routes: [route('svc', '/svc', upstream.url, {
      resilience: { timeoutMs: 1000 },
      intent: { criticality: 'optional', protects: 'consistency', slo: { p99Ms: 100, errorRate: 0.5 }, sensitivity: 0 },
      chaos: { enabled: true, budget: 0.1, seed: 1 }
    })]
  })
  t.same(await chaosActive(proxy, 'svc'), ['planned=1'])
  slow = true
  const until = Date.now() + 8_000
  let now: string[] = []
  // Bounded: at most 8 s of 6 concurrent slow callers.
  while (Date.now() < until) {
    await Promise.all(Array.from({ length: 6 }, async () => await fetchText(`${proxy.url}/svc`).catch(() => undefined)))
    now = await chaosActive(proxy, 'svc')
    if (now[0] === 'guardrail=0') break
  }
  t.same(now, ['guardrail=0'], 'the breach halted planned chaos: 0, guardrail')
})
