import t from 'tap'
import { IntensityController, headroom, type ControllerSettings } from '../../src/intent/controller.js'

const SETTINGS: ControllerSettings = { ceiling: 0.6, step: 0.1, backoff: 0.5, margin: 0.3, minRequests: 20, holdWindows: 3, cooldownMs: 10_000 }
const SLO = { p99Ms: 300, errorRate: 0.02 }
const healthy = { requests: 100, errorRate: 0, p99Ms: 50 }

t.test('headroom is the tighter of the two thresholds', async (t) => {
  t.equal(headroom({ requests: 1, errorRate: 0.01, p99Ms: 60 }, SLO), 0.5)
  t.ok(Math.abs(headroom({ requests: 1, errorRate: 0, p99Ms: 240 }, SLO) - 0.2) < 1e-9)
  t.ok(headroom({ requests: 1, errorRate: 0.03, p99Ms: 10 }, SLO) < 0)
  t.equal(headroom({ requests: 1, errorRate: 0, p99Ms: 0 }, { p99Ms: 100, errorRate: 0 }), 1)
  t.equal(headroom({ requests: 1, errorRate: 0.1, p99Ms: 0 }, { p99Ms: 100, errorRate: 0 }), -1, 'a zero-error SLO is breached by any error')
})

t.test('ramps additively while healthy, never past the ceiling', async (t) => {
  const c = new IntensityController(SETTINGS, SLO)
  const levels: number[] = []
  for (let i = 0; i < 10; i++) levels.push(c.evaluate(healthy, i * 5000).level)
  t.same(levels, [0.2, 0.3, 0.4, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
  t.equal(c.report(50_000).resilienceMargin, 0.6, 'held at the ceiling for 3 windows')
})

t.test('backs off multiplicatively inside the margin and records the significant level', async (t) => {
  const c = new IntensityController(SETTINGS, SLO, 0.4)
  const near = { requests: 100, errorRate: 0, p99Ms: 250 } // headroom 0.17 < 0.3
  const e = c.evaluate(near, 0)
  t.same(e, { type: 'backoff', level: 0.2, headroom: 1 - 250 / 300 })
  t.equal(c.report(0).significantLevel, 0.4)
})

t.test('guardrail: a breach halts injection at once, for the cool-down, and caps the level below the breaking one', async (t) => {
  const c = new IntensityController(SETTINGS, SLO, 0.5)
  const e = c.evaluate({ requests: 100, errorRate: 0.05, p99Ms: 50 }, 1_000)
  t.same(e, { type: 'breach', level: 0, brokeAt: 0.5, headroom: 1 - 0.05 / 0.02 })
  t.equal(c.level, 0)
  t.has(c.evaluate(healthy, 5_000), { type: 'halted', level: 0 })
  t.equal(c.report(5_000).halted, true)
  t.same(c.evaluate(healthy, 11_001), { type: 'resume', level: 0.1 })
  const levels: number[] = []
  for (let i = 0; i < 8; i++) levels.push(c.evaluate(healthy, 12_000 + i * 5000).level)
  t.equal(Math.max(...levels), 0.4, 'never back to 0.5, the level that broke the SLO')
  const r = c.report(60_000)
  t.equal(r.disablingLevel, 0.5)
  t.equal(r.breaches, 1)
})

t.test('guardrail: exactly at a threshold (zero headroom) is a breach, not a backoff', async (t) => {
  const atP99 = new IntensityController(SETTINGS, SLO, 0.5)
  t.has(atP99.evaluate({ requests: 100, errorRate: 0, p99Ms: 300 }, 0), { type: 'breach', level: 0, brokeAt: 0.5, headroom: 0 }, 'p99 equal to the SLO')
  const atErrors = new IntensityController(SETTINGS, SLO, 0.5)
  t.has(atErrors.evaluate({ requests: 100, errorRate: 0.02, p99Ms: 10 }, 0), { type: 'breach', level: 0, brokeAt: 0.5 }, 'error rate equal to the SLO')
  t.equal(atErrors.level, 0)
  const justInside = new IntensityController(SETTINGS, SLO, 0.5)
  t.has(justInside.evaluate({ requests: 100, errorRate: 0, p99Ms: 299 }, 0), { type: 'backoff' }, '1 ms inside the SLO only backs off')
})

t.test('windows with too few requests are not judged', async (t) => {
  const c = new IntensityController(SETTINGS, SLO)
  t.same(c.evaluate({ requests: 5, errorRate: 1, p99Ms: 10_000 }, 0), { type: 'insufficient', level: 0.1, requests: 5 })
  t.equal(c.report(0).breaches, 0)
})

t.test('the resilience margin is the highest level held for holdWindows consecutive healthy windows', async (t) => {
  const c = new IntensityController({ ...SETTINGS, ceiling: 1 }, SLO)
  for (let i = 0; i < 4; i++) c.evaluate(healthy, i) // levels judged: 0.1 0.2 0.3 0.4
  t.equal(c.report(4).resilienceMargin, 0.2, 'windows at 0.2, 0.3, 0.4 held: min is 0.2')
  c.evaluate({ requests: 100, errorRate: 1, p99Ms: 10 }, 5) // breach at 0.5
  t.equal(c.report(5).resilienceMargin, 0.2)
  t.equal(c.report(5).disablingLevel, 0.5)
})

t.test('admin halt and resume', async (t) => {
  const c = new IntensityController(SETTINGS, SLO, 0.5)
  c.halt(0)
  t.equal(c.level, 0)
  t.has(c.evaluate(healthy, 1), { type: 'halted' })
  c.resume()
  t.equal(c.level, 0.1)
})

t.test('the cool-down ends exactly at its end; the report says how long is left', async (t) => {
  const c = new IntensityController(SETTINGS, SLO, 0.5)
  c.evaluate({ requests: 100, errorRate: 1, p99Ms: 10 }, 1_000) // breach: halted until 11_000
  t.same(c.report(10_999), { ...c.report(10_999), halted: true, resumesInMs: 1 })
  t.has(c.evaluate(healthy, 10_999), { type: 'halted', level: 0, resumesInMs: 1 }, 'one millisecond before the end: still halted')
  t.equal(c.report(11_000).halted, false)
  t.equal(c.report(11_000).resumesInMs, undefined)
  t.same(c.evaluate(healthy, 11_000), { type: 'resume', level: 0.1 }, 'at the end: resumed')
  t.equal(c.report(11_000).windows, 3, 'every window is counted, halted ones too')
})

t.test('a window with exactly minRequests requests is judged', async (t) => {
  const c = new IntensityController(SETTINGS, SLO)
  t.has(c.evaluate({ requests: 20, errorRate: 1, p99Ms: 10 }, 0), { type: 'breach' })
  t.has(new IntensityController(SETTINGS, SLO).evaluate({ requests: 19, errorRate: 1, p99Ms: 10 }, 0), { type: 'insufficient' })
})

t.test('a breach forgets the healthy windows before it: the margin counts only windows held since', async (t) => {
  const c = new IntensityController(SETTINGS, SLO)
  c.evaluate(healthy, 0) // held at 0.1
  c.evaluate(healthy, 1) // held at 0.2
  c.evaluate({ requests: 100, errorRate: 1, p99Ms: 10 }, 2) // breach at 0.3
  t.has(c.evaluate(healthy, 20_000), { type: 'resume', level: 0.1 })
  c.evaluate(healthy, 20_001) // held at 0.1: one window since the breach, of three needed
  t.equal(c.report(20_001).resilienceMargin, 0, 'no level was held for 3 windows in a row')
})

t.test('the significant level is the first that backed off; the level holds at the ceiling', async (t) => {
  const c = new IntensityController(SETTINGS, SLO, 0.4)
  const near = { requests: 100, errorRate: 0, p99Ms: 250 }
  t.has(c.evaluate(near, 0), { type: 'backoff', level: 0.2 })
  t.has(c.evaluate(near, 1), { type: 'backoff', level: 0.1 })
  t.equal(c.report(1).significantLevel, 0.4, 'the first, not the latest')
  const top = new IntensityController(SETTINGS, SLO, 0.6)
  t.same(top.evaluate(healthy, 0), { type: 'hold', level: 0.6, headroom: 1 - 50 / 300 }, 'at the ceiling: hold, not raise')
})

t.test('exactly at the margin is safe: the level rises; a rise is reported as one', async (t) => {
  const c = new IntensityController({ ...SETTINGS, margin: 0.5 }, { p99Ms: 200, errorRate: 0.02 }, 0.2)
  t.same(c.evaluate({ requests: 100, errorRate: 0, p99Ms: 100 }, 0), { type: 'raise', level: 0.3, headroom: 0.5 })
})

t.test('a breach at the first step caps the level at 0: after the cool-down it holds at 0, judged as usual', async (t) => {
  const c = new IntensityController(SETTINGS, SLO)
  t.has(c.evaluate({ requests: 100, errorRate: 1, p99Ms: 10 }, 0), { type: 'breach', brokeAt: 0.1 })
  t.same(c.evaluate(healthy, 10_000), { type: 'resume', level: 0 }, 'the cool-down ends once')
  t.same(c.evaluate(healthy, 15_000), { type: 'hold', level: 0, headroom: 1 - 50 / 300 }, 'then it is an ordinary window: no second resume')
})

t.test('the margin never falls: backing off below it later keeps the level once held', async (t) => {
  const c = new IntensityController(SETTINGS, SLO)
  for (let i = 0; i < 3; i++) c.evaluate(healthy, i) // held 0.1, 0.2, 0.3
  t.equal(c.report(3).resilienceMargin, 0.1)
  const near = { requests: 100, errorRate: 0, p99Ms: 250 }
  for (let i = 0; i < 4; i++) c.evaluate(near, 10 + i) // judged at 0.4, 0.2, 0.1, 0.05: backing off, within the SLO
  t.equal(c.report(20).resilienceMargin, 0.2, 'the best run of three (0.2, 0.3, 0.4) gave 0.2; lower runs later do not lower it')
})

t.test('after an admin resume the controller judges windows again', async (t) => {
  const c = new IntensityController(SETTINGS, SLO, 0.5)
  c.halt(0)
  c.resume()
  t.equal(c.report(1).halted, false)
  t.has(c.evaluate(healthy, 1), { type: 'raise', level: 0.2 })
})
