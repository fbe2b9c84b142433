/**
 * The intent engine window by window: `tick()` driven by the test instead
 * of the evaluation timer, with the real parts a route wires to it (the
 * route's fault set, its planned faults, the kill switch, the metrics).
 * Through the proxy, test/intent/engine.test.ts and control-plane.test.ts
 * cover the same paths with real traffic; here each branch of a window's
 * judgement is pinned at its edge, fast enough to mutation-test.
 */
import t from 'tap'
import { IntentEngine, type ChaosMode } from '../../src/intent/engine.js'
import { controllerSchema, intentSchema } from '../../src/intent/schema.js'
import { PlannedFaults } from '../../src/faults/planned.js'
import { FaultSet } from '../../src/faults/fault-set.js'
import { ChaosSwitch } from '../../src/faults/switch.js'
import { chaosSchema } from '../../src/faults/schema.js'
import { Metrics } from '../../src/metrics/metrics.js'
import { RouteMetrics } from '../../src/metrics/route-metrics.js'
import type { FleetFigures } from '../../src/fleet/prometheus-source.js'

interface Setup {
  engine: IntentEngine
  planned: PlannedFaults
  metrics: Metrics
  chaosSwitch: ChaosSwitch
  /** How many planned faults were armed so far (a new plan arms its entries). */
  arms: () => number
}

interface Options { mode?: ChaosMode, budget?: number, controller?: Record<string, unknown>, intent?: Record<string, unknown> }

/** A degradable route (SLO p99 1000 ms, 5% errors; step 0.1, margin 0.25, ceiling 0.8), wired as src/proxy/route.ts wires it. */
function setup (options: Options = {}): Setup {
  const metrics = new Metrics({ defaultMetrics: false })
  const budget = options.budget ?? 0.2
  const faultSet = new FaultSet('r', chaosSchema.parse({ enabled: true, budget }), new RouteMetrics(metrics, 'r'))
  const chaosSwitch = new ChaosSwitch()
  let arms = 0
  const planned = new PlannedFaults({
    arm: (fault) => { arms++; return faultSet.arm(fault, undefined, false) },
    injecting: () => faultSet.isEnabled && chaosSwitch.enabled
  })
  const controller = controllerSchema.parse({ minRequests: 5, cooldownMs: 60_000, ...options.controller })
  const engine = new IntentEngine('r', intentSchema.parse(options.intent ?? {}), true, budget, planned, metrics, controller, options.mode ?? 'intent')
  return { engine, planned, metrics, chaosSwitch, arms: () => arms }
}

async function gauge (metrics: Metrics, name: string): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name)
  if (metric === undefined) throw new Error(`no metric ${name}`)
  return (await metric.get()).values.find((v) => v.labels.route === 'r')?.value
}

/** One window's requests: `ok` fast answers, `failed` surfaced failures; `fault` marks them injected. */
function traffic (engine: IntentEngine, ok: number, failed = 0, fault?: string): void {
  for (let i = 0; i < ok; i++) engine.record(10, false, fault)
  for (let i = 0; i < failed; i++) engine.record(10, true, fault)
}

function fleetFigures (over: Partial<FleetFigures>): FleetFigures {
  return { requests: 50, errorRate: 0, p99Ms: 10, injected: 5, ageSeconds: 1, scrapedAt: 1, ...over }
}

const approx = (a: number, b: number): boolean => Math.abs(a - b) < 1e-9

t.test('at start: the SLO targets are exported, the halt counter exists at 0, and the first level is planned', async (t) => {
  const { engine, planned, metrics } = setup()
  t.equal(await gauge(metrics, 'faultline_slo_target_p99_seconds'), 1)
  t.equal(await gauge(metrics, 'faultline_slo_target_error_rate'), 0.05)
  t.equal(await gauge(metrics, 'faultline_guardrail_halts_total'), 0, 'the series exists before any halt')
  t.equal(engine.level, 0.1, 'intent mode starts at one step')
  t.equal(await gauge(metrics, 'faultline_chaos_level'), 0.1)
  t.ok(approx((await gauge(metrics, 'faultline_chaos_fault_probability'))!, 0.1 * 0.2), 'level times budget')
  t.ok(approx(planned.probability, 0.02))
  t.equal(planned.snapshot(true).length, engine.plan.entries.length, 'every entry of the plan is armed')
  t.ok(engine.plan.entries.length > 0)
  t.equal(engine.sourceDown, undefined)

  const off = setup({ mode: 'off' })
  t.equal(off.engine.level, 0)
  t.equal(off.planned.probability, 0)
  t.equal(await gauge(off.metrics, 'faultline_chaos_fault_probability'), 0)

  const uniform = setup({ mode: 'uniform' })
  t.equal(uniform.engine.level, 1, 'uniform is always the full level')
  t.equal(uniform.planned.probability, 0.2, 'at the full budget')
  t.equal(await gauge(uniform.metrics, 'faultline_chaos_fault_probability'), 0.2)
  const kinds = new Set(uniform.planned.snapshot(true).map((f) => f.kind))
  t.equal(kinds.size, uniform.planned.snapshot(true).length, 'one entry per kind')
  t.ok(kinds.size > engine.plan.entries.length, 'every kind, not only the intent\'s mix')
})

t.test('record keeps the books per fault label; a window\'s point splits real and injected failures', async (t) => {
  const { engine } = setup()
  engine.record(10, false, undefined)
  engine.record(10, true, undefined)
  engine.record(10, false, 'latency')
  engine.record(10, true, 'abort,latency')
  engine.record(10, true, 'latency')
  const books = engine.booksSoFar
  t.equal(books.requests, 5)
  t.equal(books.surfaced, 3)
  t.same(books.byFault.get('latency'), { requests: 3, surfaced: 2, toFirstSurfaced: 2 })
  t.same(books.byFault.get('abort'), { requests: 1, surfaced: 1, toFirstSurfaced: 1 })
  engine.tick(performance.now())
  const point = books.timeline[0]!
  t.equal(point.requests, 5)
  t.equal(point.injected, 3, 'requests that carried a fault')
  const h = engine.history[0]!
  t.ok(approx(h.realErrorRate, 1 / 5))
  t.ok(approx(h.injectedErrorRate, 2 / 5))
  t.ok(h.p99Ms >= 9.9 && h.p99Ms <= 10.1, `p99 ${h.p99Ms}`)
  t.equal(h.p99Ms, Math.round(h.p99Ms * 10) / 10, 'rounded to a tenth of a ms')
  traffic(engine, 2)
  engine.tick(performance.now())
  t.equal(engine.history[1]!.realErrorRate, 0, 'the failures of the window before are not carried over')
  t.equal(engine.history[1]!.injectedErrorRate, 0)
  engine.tick(performance.now())
  const empty = { level: engine.level, headroom: null, requests: 0, realErrorRate: 0, injectedErrorRate: 0 }
  t.same(engine.history[2], { ...engine.history[2], ...empty },
    'the next window starts from nothing: an empty window has no headroom and no error rates')
  t.equal(books.timeline[1]!.injected, 0)
  t.equal(books.timeline[2]!.injected, 0)
})

t.test('a window is judged from minRequests on; the level before it is kept; breaches halt and count', async (t) => {
  const { engine, planned, metrics } = setup()
  const now = performance.now()
  traffic(engine, 4, 0, 'latency')
  t.has(engine.tick(now), { type: 'insufficient' }, 'four requests: too few')
  traffic(engine, 5, 0, 'latency')
  t.has(engine.tick(now + 1), { type: 'raise', level: 0.2 }, 'exactly minRequests: judged')
  const books = engine.booksSoFar
  t.equal(books.windowsTooFew, 1)
  t.equal(books.windows, 1)
  t.equal(books.windowsWithinSlo, 1)
  t.equal(books.timeline[0]!.headroom, null, 'not judged: no headroom')
  const h = books.timeline[1]!.headroom!
  t.ok(h > 0.98 && h < 1, `headroom ${h}`)
  t.equal(h, Math.round(h * 1000) / 1000, 'rounded to three decimals')
  t.equal(await gauge(metrics, 'faultline_chaos_level'), 0.2)
  t.equal(planned.halted, false, 'a healthy window halts nothing')
  t.equal(engine.history[1]!.headroom, books.timeline[1]!.headroom, 'the status page shows the judged window\'s headroom')
  t.equal(engine.history[0]!.headroom, h, 'and a window too small to judge still has one there')
  t.ok(approx((await gauge(metrics, 'faultline_slo_p99_seconds'))!, engine.sloSnapshot().p99Ms / 1000))

  traffic(engine, 0, 5, 'abort')
  const breach = engine.tick(now + 2)
  t.has(breach, { type: 'breach', brokeAt: 0.2 })
  t.equal(books.windowsBreached, 1)
  t.ok(books.timeline[2]!.headroom! < 0)
  t.same(books.levels, [0.1, 0.1, 0.2], 'each window records the level it ran at')
  t.same(books.timeline.map((p) => p.level), [0.1, 0.1, 0.2])
  t.same(engine.history.map((p) => p.level), [0.1, 0.1, 0.2], 'so does the status page\'s history')
  t.equal(await gauge(metrics, 'faultline_guardrail_halts_total'), 1)
  t.equal(planned.halted, true, 'the halt holds every fault on the route')
  t.equal(planned.probability, 0)
  t.same(planned.snapshot(true), [], 'at level 0 nothing is planned (GET /routes lists no planned fault)')
  t.equal(await gauge(metrics, 'faultline_slo_error_rate'), 5 / 14, 'the SLO gauge is over the SLO window, not the last evaluation window')

  traffic(engine, 5, 0, 'latency')
  t.has(engine.tick(now + 3), { type: 'halted' })
  t.equal(planned.halted, true, 'still halted during the cool-down')
  t.equal(await gauge(metrics, 'faultline_guardrail_halts_total'), 1, 'a halt is counted once')
})

t.test('the SLO broken with nothing injected is the upstream\'s: no halt, the level holds (exactly at a threshold too)', async (t) => {
  const { engine, planned, metrics } = setup({ controller: { minRequests: 20 } })
  traffic(engine, 19, 1)
  const event = engine.tick(performance.now())
  t.has(event, { type: 'upstream_breach', level: 0.1, headroom: 0 }, '1 in 20 is exactly the 5% threshold')
  t.equal(planned.halted, false)
  t.equal(await gauge(metrics, 'faultline_guardrail_halts_total'), 0)
  traffic(engine, 0, 19)
  t.has(engine.tick(performance.now()), { type: 'insufficient' }, 'below minRequests it is not judged at all')
  traffic(engine, 20)
  t.has(engine.tick(performance.now()), { type: 'raise', level: 0.2 }, 'a healthy window with nothing injected is judged as usual')
  traffic(engine, 19, 0)
  traffic(engine, 0, 1, 'abort')
  t.has(engine.tick(performance.now()), { type: 'breach', brokeAt: 0.2 }, 'one injected request in the window: chaos\'s breach')
  t.equal(engine.booksSoFar.windowsBreached, 2, 'exactly at the threshold is booked as breached, both times')
  t.equal(engine.booksSoFar.windowsWithinSlo, 1, 'the healthy one')
})

t.test('chaos off (kill switch, no budget): the level holds and nothing is judged; back on, judging resumes', async (t) => {
  const { engine, chaosSwitch } = setup()
  chaosSwitch.turnOff()
  traffic(engine, 10, 0, 'latency')
  t.same(engine.tick(performance.now()), { type: 'paused', level: 0.1 })
  traffic(engine, 0, 10, 'latency')
  t.same(engine.tick(performance.now()), { type: 'paused', level: 0.1 }, 'not even a breach is judged')
  chaosSwitch.turnOn()
  traffic(engine, 10, 0, 'latency')
  t.has(engine.tick(performance.now()), { type: 'raise', level: 0.2 })

  const none = setup({ budget: 0 })
  traffic(none.engine, 10, 0)
  t.same(none.engine.tick(performance.now()), { type: 'paused', level: 0.1 })
})

t.test('modes other than intent judge nothing; switching modes lifts a halt and re-plans', async (t) => {
  const { engine, planned, metrics } = setup()
  traffic(engine, 0, 5, 'abort')
  t.has(engine.tick(performance.now()), { type: 'breach' })
  engine.setMode('intent')
  t.equal(planned.halted, true, 'intent mode again: the guardrail\'s halt holds')
  engine.setMode('uniform')
  t.equal(planned.halted, false, 'uniform mode has no guardrail')
  t.equal(engine.level, 1)
  t.equal(planned.probability, 0.2)
  traffic(engine, 0, 5, 'abort')
  t.equal(engine.tick(performance.now()), undefined, 'uniform: not judged')
  t.equal(engine.booksSoFar.windowsBreached, 2, 'but booked')
  engine.setMode('off')
  t.equal(engine.level, 0)
  t.equal(planned.probability, 0)
  t.equal(await gauge(metrics, 'faultline_chaos_level'), 0)
})

t.test('fleet figures (controller.source prometheus): judged instead of the local window; missing ones stop planned chaos', async (t) => {
  const prometheus = { source: 'prometheus', prometheus: { url: 'http://127.0.0.1:9' } }
  const { engine, planned, metrics } = setup({ controller: prometheus })
  t.equal(engine.sourceDown, 'empty', 'nothing read yet: nothing planned')
  t.equal(planned.probability, 0)
  t.equal(await gauge(metrics, 'faultline_chaos_level'), 0)
  t.equal(setup({ controller: prometheus, mode: 'off' }).engine.sourceDown, undefined, 'only intent mode reports it')

  t.same(engine.tick(1, { ok: false, reason: 'unreachable', detail: 'x' }), { type: 'source_down', level: 0.1, reason: 'unreachable' })
  t.equal(engine.sourceDown, 'unreachable')
  t.equal(engine.snapshot(1).sourceDown, 'unreachable')

  // The local window is empty: the fleet's figures are what is judged.
  t.has(engine.tick(2, { ok: true, figures: fleetFigures({ scrapedAt: 100 }) }), { type: 'raise', level: 0.2 })
  t.equal(engine.sourceDown, undefined, 'figures are back')
  t.notOk('sourceDown' in engine.snapshot(2))
  t.ok(approx(planned.probability, 0.2 * 0.2))
  t.same(engine.tick(3, { ok: true, figures: fleetFigures({ scrapedAt: 100 }) }), { type: 'unchanged', level: 0.2 }, 'the same scrape is not judged twice')

  t.has(engine.tick(4, { ok: true, figures: fleetFigures({ scrapedAt: 101, errorRate: 1, injected: 0.4 }) }), { type: 'upstream_breach' },
    'under half a request injected per window across the fleet is nothing injected')
  t.has(engine.tick(5, { ok: false, reason: 'stale', detail: 'x' }), { type: 'source_down' })
  t.equal(planned.probability, 0)
  t.has(engine.tick(6, { ok: true, figures: fleetFigures({ scrapedAt: 102, errorRate: 1, injected: 0 }) }), { type: 'upstream_breach' })
  t.ok(approx(planned.probability, 0.2 * 0.2), 'figures back: planned again at the level held, whatever the window\'s verdict')
  t.equal(await gauge(metrics, 'faultline_chaos_level'), 0.2)
  t.has(engine.tick(7, { ok: true, figures: fleetFigures({ scrapedAt: 103, errorRate: 1, injected: 0.5 }) }), { type: 'breach' })
})

t.test('a follower keeps the fleet\'s level, but a breach it sees halts; halted, it reports the halt', async (t) => {
  const { engine, planned } = setup()
  engine.fleet = { role: 'follows', evaluatedBy: 'replica-a' }
  const edge = setup()
  edge.engine.fleet = { role: 'follows', evaluatedBy: 'replica-a' }
  traffic(edge.engine, 4)
  traffic(edge.engine, 0, 1, 'abort')
  t.has(edge.engine.tick(1), { type: 'breach' }, 'a breach in a window of exactly minRequests halts')
  traffic(engine, 10, 0, 'latency')
  t.same(engine.tick(1), { type: 'following', level: 0.1 })
  traffic(engine, 0, 4, 'abort')
  t.same(engine.tick(1.5), { type: 'following', level: 0.1 }, 'a bad window too small to judge: still following')
  traffic(engine, 19)
  traffic(engine, 0, 1, 'abort')
  t.has(engine.tick(2), { type: 'breach' }, 'its own breach, exactly at the 5% threshold, halts the route')
  t.equal(planned.halted, true)
  traffic(engine, 10, 0, 'latency')
  t.has(engine.tick(3), { type: 'halted' }, 'during the halt it does not merely follow')
  t.equal(engine.snapshot(3).scope, 'fleet')
  t.same(engine.snapshot(3).fleet, { role: 'follows', evaluatedBy: 'replica-a' })

  const evaluates = setup()
  evaluates.engine.fleet = { role: 'local', evaluatedBy: undefined }
  t.equal(evaluates.engine.snapshot(0).scope, 'local', 'a replica alone is local')
  t.equal(setup().engine.snapshot(0).scope, 'local')
  t.notOk('fleet' in setup().engine.snapshot(0))
})

t.test('adopting the fleet\'s state plans at its level and holds for its halt; outside intent mode it is ignored', async (t) => {
  const { engine, planned } = setup()
  const state = { ...engine.fleetState(), level: 0.3 }
  engine.adopt(state, 0, 0)
  t.equal(engine.level, 0.3)
  t.ok(approx(planned.probability, 0.3 * 0.2))
  t.equal(planned.halted, false)
  engine.adopt(state, 5_000, 0)
  t.equal(planned.halted, true, 'the fleet\'s halt holds here too')
  engine.adopt(state, 0, 0)
  t.equal(planned.halted, false)

  const off = setup({ mode: 'off' })
  off.engine.adopt(state, 5_000, 0)
  t.equal(off.engine.level, 0)
  t.equal(off.planned.halted, false)
})

t.test('resume judges afresh from the resume and tells fleet control only of an operator\'s resume', async (t) => {
  const { engine, planned } = setup()
  let told = 0
  engine.onResume = () => { told++ }
  traffic(engine, 5, 0, 'latency')
  t.has(engine.tick(0), { type: 'raise', level: 0.2 })
  traffic(engine, 0, 5, 'abort')
  t.has(engine.tick(1), { type: 'breach', brokeAt: 0.2 })
  traffic(engine, 0, 5, 'abort')
  traffic(engine, 0, 2)
  engine.resume()
  t.equal(planned.halted, false)
  t.equal(told, 1)
  t.equal(engine.level, 0.1, 'one step, under the level that broke')
  t.ok(approx(planned.probability, 0.1 * 0.2), 'planned faults again at once')
  traffic(engine, 2)
  t.has(engine.tick(2), { type: 'insufficient', requests: 2 }, 'the failures before the resume are not judged again')
  t.equal(engine.history[engine.history.length - 1]!.realErrorRate, 0)
  t.equal(engine.history[engine.history.length - 1]!.injectedErrorRate, 0)
  t.equal(engine.booksSoFar.timeline[2]!.injected, 0, 'nor counted as this window\'s injected requests')
  engine.resume('fleet')
  t.equal(told, 1, 'a resume from the fleet is not echoed back')
})

t.test('fresh books start a fresh controller and re-plan; the plan is re-armed only when the level changes', async (t) => {
  const { engine, planned, arms } = setup()
  const perPlan = engine.plan.entries.length
  t.equal(arms(), perPlan)
  traffic(engine, 2)
  engine.tick(1)
  t.equal(arms(), perPlan, 'same level: the armed faults are kept')
  traffic(engine, 5, 0, 'latency')
  engine.tick(2)
  t.equal(engine.level, 0.2)
  t.equal(arms(), 2 * perPlan, 'a new level: a new plan')
  traffic(engine, 0, 5, 'abort')
  engine.tick(3)
  t.equal(planned.halted, true)
  engine.resetBooks()
  t.equal(engine.booksSoFar.requests, 0)
  t.equal(engine.booksSoFar.windows, 0)
  t.equal(engine.level, 0.1, 'the controller starts again at one step')
  t.equal(planned.halted, false)
  t.equal(engine.controllerReport(4).breaches, 0)
  const before = arms()
  engine.resetBooks()
  t.equal(arms(), before + perPlan, 'fresh books re-plan even at the same level (a new experiment counts its own faults)')
})

t.test('the level history and the timeline are bounded; the status page keeps at most 900 windows', async (t) => {
  const { engine } = setup()
  for (let i = 0; i < 905; i++) engine.tick(i)
  t.equal(engine.booksSoFar.levels.length, 720)
  t.equal(engine.booksSoFar.timeline.length, 720)
  t.equal(engine.history.length, 900)
  t.ok(engine.history.every((p) => p.headroom === null && p.requests === 0))
})

t.test('GET /routes: what the snapshot says', async (t) => {
  const { engine } = setup({ intent: { criticality: 'critical', protects: 'latency' } })
  const s = engine.snapshot(0)
  t.equal(s.mode, 'intent')
  t.equal(s.declared, true)
  t.equal(s.budget, 0.2)
  t.equal(s.level, engine.level)
  t.equal(s.intent.criticality, 'critical')
  t.same(s.plan, engine.plan.entries.map((e) => ({ name: e.name, kind: e.kind, weight: e.weight })))
  t.equal(s.controller.halted, false)
  t.equal(s.slo.requests, 0)
})
