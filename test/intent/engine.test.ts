/**
 * The intent engine end to end: real upstreams, real traffic through the
 * proxy, the controller on short evaluation windows.
 */
import t from 'tap'
import { request } from 'undici'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, type StartedProxy } from '../helpers.js'

const TOKEN = 'intent-token-0123456789abcdef'
const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/**
 * GETs from `callers` concurrent loops for `ms` (bounded by `max` in all), or until `done()` says
 * so (asked every 100 ms): a phase ends when what it waits for happened. Returns how many were sent.
 */
async function traffic (url: string, ms: number, max = 5_000, callers = 1, done?: () => Promise<boolean>): Promise<number> {
  const until = performance.now() + ms
  let n = 0
  let reached = false
  const watch = async (): Promise<void> => {
    while (done !== undefined && !reached && performance.now() < until && n < max) {
      await sleep(100)
      reached = await done()
    }
  }
  const loop = async (): Promise<void> => {
    while (!reached && performance.now() < until && n < max) {
      n++
      try {
        const res = await request(url, { headersTimeout: 2_000, bodyTimeout: 2_000 })
        await res.body.dump()
      } catch { /* injected resets end some exchanges */ }
    }
  }
  await Promise.all([watch(), ...Array.from({ length: callers }, loop)])
  return n
}

async function gauge (proxy: StartedProxy, name: string, route: string): Promise<number> {
  return sumOf(await scrape(proxy), name, { route })
}

t.test('the controller ramps up while the SLO holds, and the guardrail halts injection when the upstream turns slow', async (t) => {
  let slow = false
  const alerts: Array<{ type: string, route: string, details: Record<string, unknown> }> = []
  const receiver = await startUpstream(t, (req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => { alerts.push(JSON.parse(body) as never); res.end() })
  })
  const upstream = await startUpstream(t, (_req, res) => {
    res.setHeader('content-type', 'application/json')
    if (slow) setTimeout(() => res.end('{"id":1,"data":"late"}'), 600)
    else res.end('{"id":1,"data":"ok"}')
  })
  const proxy = await startProxy(t, {
    controller: { evaluationMs: 400, cooldownMs: 60_000, holdWindows: 2, minRequests: 5 },
    alerts: { webhooks: [{ url: receiver.url, types: ['guardrail_halt'] }] },
    routes: [route('svc', '/svc', upstream.url, {
      // Consistency faults (truncated, corrupt, drifted bodies) keep status 200 and the pace: the
      // client-visible SLO holds, so the level must climb. A slow upstream then breaks the p99.
      resilience: { timeoutMs: 1000 },
      intent: { criticality: 'optional', protects: 'consistency', slo: { p99Ms: 400, errorRate: 0.5 }, sensitivity: 0 },
      chaos: { enabled: true, budget: 0.5, seed: 3 }
    })]
  })
  const start = await gauge(proxy, 'faultline_chaos_level', 'svc')
  t.equal(start, 0.15, 'starts at one step (optional, sensitivity 0)')
  await traffic(`${proxy.url}/svc`, 4_000, 5_000, 1, async () => await gauge(proxy, 'faultline_chaos_level', 'svc') > start)
  const ramped = await gauge(proxy, 'faultline_chaos_level', 'svc')
  t.ok(ramped > start, `the level climbed from ${start} to ${ramped}`)
  t.equal(await gauge(proxy, 'faultline_guardrail_halts_total', 'svc'), 0, 'no halt while the SLO holds')
  t.equal(await gauge(proxy, 'faultline_slo_target_p99_seconds', 'svc'), 0.4)

  slow = true
  // Enough callers that a 400 ms window of 600 ms answers still holds minRequests.
  await traffic(`${proxy.url}/svc`, 4_000, 5_000, 12, async () => await gauge(proxy, 'faultline_guardrail_halts_total', 'svc') >= 1)
  t.ok(await gauge(proxy, 'faultline_guardrail_halts_total', 'svc') >= 1, 'the breach halted injection')
  t.equal(await gauge(proxy, 'faultline_chaos_level', 'svc'), 0, 'level 0 at once')
  t.equal(await gauge(proxy, 'faultline_chaos_fault_probability', 'svc'), 0)
  t.ok(proxy.logs.lines.some((l) => l.level === 40 && String(l.msg).startsWith('guardrail')), 'the halt is logged as a warning')
  for (let i = 0; i < 40 && alerts.length === 0; i++) await sleep(50)
  t.equal(alerts[0]?.type, 'guardrail_halt', 'and posted to the webhook')
  t.equal(alerts[0]?.route, 'svc')
  t.ok((alerts[0]?.details.brokeAtLevel as number) > 0)
  const before = sumOf(await scrape(proxy), 'faultline_faults_injected_total', { route: 'svc' })
  await traffic(`${proxy.url}/svc`, 500)
  t.equal(sumOf(await scrape(proxy), 'faultline_faults_injected_total', { route: 'svc' }), before, 'nothing is injected during the cool-down')
  const routes = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as { routes: Array<{ state: { intent: { controller: { halted: boolean, disablingLevel: number } } } }> }
  t.equal(routes.routes[0]!.state.intent.controller.halted, true)
  t.ok(routes.routes[0]!.state.intent.controller.disablingLevel > 0, 'the breaking level is recorded')
})

t.test('the budget is a hard cap; report figures equal /metrics; the same seed gives the same report', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const config = {
    admin: { token: TOKEN },
    controller: { evaluationMs: 60_000 },
    routes: [route('svc', '/svc', upstream.url, {
      // Injected delays (1.25 s at uniform severity) still time out; a healthy answer on a busy CI machine does not.
      resilience: { timeoutMs: 800 },
      chaos: { enabled: true, budget: 0.1, seed: 42 }
    })]
  }
  const runOnce = async (): Promise<{ report: Record<string, any>, samples: Awaited<ReturnType<typeof scrape>> }> => {
    const proxy = await startProxy(t, config)
    const started = await fetchText(`${proxy.adminUrl}/experiments`, { method: 'POST', headers: auth, body: JSON.stringify({ mode: 'uniform', durationMs: 60_000 }) })
    t.equal(started.status, 202)
    for (let i = 0; i < 300; i++) {
      try { await (await request(`${proxy.url}/svc/${i}`, { headersTimeout: 2_000, bodyTimeout: 2_000 })).body.dump() } catch { /* a reset */ }
    }
    const stopped = await fetchText(`${proxy.adminUrl}/experiments/stop`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
    t.equal(stopped.status, 200)
    return { report: JSON.parse(stopped.body) as Record<string, any>, samples: await scrape(proxy) }
  }
  // Two proxies, each with its own seed sequence and its own sequential requests: run side by side
  // (most of each run is spent waiting for injected delays to time out).
  const [a, b] = await Promise.all([runOnce(), runOnce()])
  const route0 = a.report.routes[0]
  const injected = sumOf(a.samples, 'faultline_faults_injected_total', { route: 'svc' })
  t.ok(injected > 0, `${injected} faults injected`)
  t.ok(injected <= 0.1 * 300, `never more than the 10% budget: ${injected} <= 30`)
  t.equal(route0.totalInjected, injected, 'the report\'s injected count is the /metrics count')
  t.equal(route0.requests, sumOf(a.samples, 'faultline_requests_total', { route: 'svc' }), 'and so is its request count')
  for (const [outcome, n] of Object.entries(route0.outcomes as Record<string, number>)) {
    t.equal(n, sumOf(a.samples, 'faultline_requests_total', { route: 'svc', outcome }), `outcome ${outcome}`)
  }
  const strip = (r: Record<string, any>): unknown => r.routes.map((x: Record<string, unknown>) => ({ faultsInjected: x.faultsInjected, outcomes: x.outcomes, caller: x.caller, weaknesses: x.weaknesses }))
  t.same(strip(b.report), strip(a.report), 'same seed, same requests: the same report')
})

t.test('experiments on the admin API need the token, run one at a time, and publish a Markdown report', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    admin: { token: TOKEN },
    routes: [route('svc', '/svc', upstream.url, { intent: { protects: 'consistency' }, chaos: { enabled: true, seed: 1 } })]
  })
  const body = JSON.stringify({ mode: 'intent', durationMs: 60_000 })
  t.equal((await fetchText(`${proxy.adminUrl}/experiments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status, 401)
  const bad = await fetchText(`${proxy.adminUrl}/experiments`, { method: 'POST', headers: auth, body: JSON.stringify({ mode: 'chaos', durationMs: 10 }) })
  t.equal(bad.status, 400)
  t.match((JSON.parse(bad.body) as { message: string }).message, /mode: expected one of "intent" \| "uniform", got "chaos"/)
  t.equal((await fetchText(`${proxy.adminUrl}/experiments/report`)).status, 404, 'no report before the first experiment')
  t.equal((await fetchText(`${proxy.adminUrl}/experiments`, { method: 'POST', headers: auth, body })).status, 202)
  t.equal((await fetchText(`${proxy.adminUrl}/experiments`, { method: 'POST', headers: auth, body })).status, 409, 'one at a time')
  const running = JSON.parse((await fetchText(`${proxy.adminUrl}/experiments`)).body) as { running: { mode: string, routes: string[] } }
  t.same(running.running.routes, ['svc'])
  await traffic(`${proxy.url}/svc`, 300, 100)
  t.equal((await fetchText(`${proxy.adminUrl}/experiments/stop`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status, 200)
  const md = await fetchText(`${proxy.adminUrl}/experiments/report?format=markdown`)
  t.equal(md.status, 200)
  t.match(md.body, /^# faultline experiment: intent mode/)
  t.match(md.body, /\| svc \| degradable, consistency \|/)
  t.ok(proxy.logs.lines.some((l) => l.audit === 'experiment.start'), 'audited')
})
