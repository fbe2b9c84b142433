/**
 * Sentences of docs/INTENT.md that no other test held the code to,
 * checked through the admin API of a running proxy.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'

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

t.test('POST /routes/:route/intent/resume clears a real guardrail halt: planned faults are injected again at once', async (t) => {
  let slow = false
  const upstream = await startUpstream(t, (_req, res) => {
    res.setHeader('content-type', 'application/json')
    if (slow) setTimeout(() => res.end('{"id":1,"data":"late"}'), 250)
    else res.end('{"id":1,"data":"ok"}')
  })
  const proxy = await startProxy(t, {
    admin: { token: TOKEN },
    controller: { evaluationMs: 200, cooldownMs: 600_000, holdWindows: 2, minRequests: 5 },
    routes: [route('svc', '/svc', upstream.url, {
      // Consistency faults keep the status and the pace: the level climbs while the upstream is
      // fast. A slow upstream then breaks the p99 with faults in the window: a chaos breach.
      intent: { criticality: 'optional', protects: 'consistency', slo: { p99Ms: 150, errorRate: 0.5 }, sensitivity: 0 },
      chaos: { enabled: true, budget: 1, seed: 7 }
    })]
  })
  const controller = async (): Promise<{ halted: boolean, level: number }> => {
    const body = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as { routes: Array<{ state: { intent: { controller: { halted: boolean, level: number } } } }> }
    return body.routes[0]!.state.intent.controller
  }
  const chaosActive = async (): Promise<{ reason: string | undefined, value: number | undefined }> => {
    const sample = (await scrape(proxy)).find((s) => s.name === 'faultline_chaos_active' && s.labels.route === 'svc')
    return { reason: sample?.labels.reason, value: sample?.value }
  }
  const injectedSoFar = async (): Promise<number> => sumOf(await scrape(proxy), 'faultline_faults_injected_total', { route: 'svc' })
  /** Sends up to `max` requests from `callers` loops (until `stop()`); returns how many faults were injected meanwhile. */
  const injected = async (max: number, callers = 1, stop = async () => false): Promise<number> => {
    const before = await injectedSoFar()
    let sent = 0
    const loop = async (): Promise<void> => {
      while (sent < max && !(await stop())) {
        sent++
        await fetchText(`${proxy.url}/svc/x`, { timeoutMs: 2_000 }).catch(() => undefined)
      }
    }
    await Promise.all(Array.from({ length: callers }, loop))
    return await injectedSoFar() - before
  }

  // Bounded: each phase stops after 8 s whatever happens, and the assertions say what was missed.
  let until = performance.now() + 8_000
  while ((await controller()).level < 0.3 && performance.now() < until) await injected(10)
  t.ok((await controller()).level >= 0.3, 'the level climbed past one step while the SLO held')
  slow = true
  until = performance.now() + 8_000
  while (!(await controller()).halted && performance.now() < until) await injected(20, 10)
  slow = false
  const halted = await controller()
  t.equal(halted.halted, true, 'the slow upstream broke the p99 with faults injected: the guardrail halted the route')
  t.equal(halted.level, 0)
  t.same(await chaosActive(), { reason: 'guardrail', value: 0 }, 'faultline_chaos_active says the guardrail holds it')
  t.equal(await injected(20), 0, 'nothing is injected while halted (the cool-down is 10 minutes)')

  const resumed = await fetchText(`${proxy.adminUrl}/routes/svc/intent/resume`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(resumed.status, 200, resumed.body)
  // Read at once, before the next window ends: the faults themselves are no longer held.
  t.same(await chaosActive(), { reason: 'planned', value: 1 }, 'faultline_chaos_active says planned chaos is on again')
  t.equal(JSON.parse(resumed.body).level, 0.15, 'back at one step, below the level that broke the SLO')
  t.equal((await controller()).halted, false, 'the halt is cleared')
  const base = await injectedSoFar()
  t.ok(await injected(100, 1, async () => await injectedSoFar() > base) > 0, 'planned faults are injected again, long before the cool-down ends')
})
