/**
 * The intent engine's planned faults (src/faults/planned.ts) as the fault
 * stage draws from them: the per-request roll, the weighted pick, and the
 * budget as a hard cap on planned injections per first attempt. The rolls
 * come from a scripted source, so each edge is hit exactly. Through the
 * proxy, test/intent/engine.test.ts checks the cap with real traffic.
 */
import t from 'tap'
import { PlannedFaults } from '../../src/faults/planned.js'
import { FaultSet } from '../../src/faults/fault-set.js'
import { chaosSchema } from '../../src/faults/schema.js'
import { faultSchema } from '../../src/faults/registry.js'
import { Metrics } from '../../src/metrics/metrics.js'
import { RouteMetrics } from '../../src/metrics/route-metrics.js'
import type { RequestContext } from '../../src/core/context.js'

function planned (): { faults: PlannedFaults, set: FaultSet, changes: () => number } {
  const metrics = new Metrics({ defaultMetrics: false })
  const set = new FaultSet('r', chaosSchema.parse({ enabled: true }), new RouteMetrics(metrics, 'r'))
  const faults = new PlannedFaults({ arm: (config) => set.arm(config, undefined, false), injecting: () => set.isEnabled })
  let changes = 0
  faults.onChange(() => { changes++ })
  return { faults, set, changes: () => changes }
}

const plan = (entries: Array<[name: string, weight: number]>): Array<{ config: ReturnType<typeof faultSchema.parse>, weight: number }> =>
  entries.map(([name, weight]) => ({ config: faultSchema.parse({ kind: 'abort', name, status: 503 }), weight }))

/** Only `attempts` is read by choose(): the attempt number of the request drawing. */
const attempt = (n: number): RequestContext => ({ attempts: n }) as unknown as RequestContext

/** A random source that returns the given values in turn. */
function rolls (...values: number[]): () => number {
  let i = 0
  return () => {
    if (i >= values.length) throw new Error('more rolls than scripted')
    return values[i++]!
  }
}

t.test('one roll against the plan\'s probability, then a weighted pick by the cumulative weights', async (t) => {
  const { faults } = planned()
  faults.setPlan(plan([['a', 1], ['b', 2], ['c', 1]]), 0.5, 1)
  t.equal(faults.probability, 0.5)
  t.equal(faults.choose(attempt(1), rolls(0.5)), undefined, 'a roll equal to the probability misses')
  t.equal(faults.choose(attempt(1), rolls(0.49, 0))?.id, 'a')
  t.equal(faults.choose(attempt(1), rolls(0.49, 0.2499))?.id, 'a', 'just under a\'s quarter')
  t.equal(faults.choose(attempt(1), rolls(0.49, 0.25))?.id, 'b', 'the edge of a\'s share is b\'s')
  t.equal(faults.choose(attempt(1), rolls(0.49, 0.7499))?.id, 'b')
  t.equal(faults.choose(attempt(1), rolls(0.49, 0.75))?.id, 'c')
  t.equal(faults.choose(attempt(1), rolls(0.49, 0.9999))?.id, 'c', 'the last entry takes the rest')
  t.same(faults.plannedBooks(), { seen: 7, injected: 6, probability: 0.5, budget: 1 })
})

t.test('the budget caps planned injections per first attempt; retries are not counted as seen', async (t) => {
  const { faults } = planned()
  faults.setPlan(plan([['a', 1]]), 1, 0.25)
  t.equal(faults.probability, 0.25, 'the probability is held to the budget')
  const always = (): number => 0
  const got: boolean[] = []
  for (let i = 0; i < 8; i++) got.push(faults.choose(attempt(1), always) !== undefined)
  t.same(got, [false, false, false, true, false, false, false, true], 'one in four: the fourth request is the first whose share allows one')
  t.same(faults.plannedBooks(), { seen: 8, injected: 2, probability: 0.25, budget: 0.25 })
  t.equal(faults.choose(attempt(2), always), undefined, 'a retry is not a new request: the cap holds')
  t.equal(faults.plannedBooks().seen, 8)
  t.equal(faults.choose(attempt(1), always), undefined, 'the ninth: 3 > 0.25 x 9')
  t.equal(faults.plannedBooks().injected, 2)
})

t.test('a new plan keeps the books unless the budget changed; an empty plan injects nothing', async (t) => {
  const { faults, changes } = planned()
  faults.setPlan(plan([['a', 1]]), 1, 0.5)
  const before = changes()
  faults.choose(attempt(1), () => 0)
  faults.choose(attempt(1), () => 0)
  t.same(faults.plannedBooks(), { seen: 2, injected: 1, probability: 0.5, budget: 0.5 })
  faults.setPlan(plan([['b', 1]]), 0.4, 0.5)
  t.equal(changes(), before + 1, 'the stage is told of the new plan')
  t.same(faults.plannedBooks(), { seen: 2, injected: 1, probability: 0.4, budget: 0.5 }, 'same budget: the books go on')
  faults.setPlan(plan([['b', 1]]), 0.4, 0.3)
  t.same(faults.plannedBooks(), { seen: 0, injected: 0, probability: 0.3, budget: 0.3 }, 'a new budget: new books')
  faults.setPlan([], 1, 1)
  t.equal(faults.probability, 0, 'nothing planned: probability 0')
  t.equal(faults.choose(attempt(1), () => 0), undefined)
})

t.test('GET /routes: each planned fault with its weight share and its real rate, 0 while chaos is off here', async (t) => {
  const { faults, set } = planned()
  faults.setPlan(plan([['a', 1], ['b', 3]]), 0.2, 1)
  const on = faults.snapshot(true)
  t.same(on.map((f) => [f.id, f.weight, Math.round(f.effectiveProbability * 1e9) / 1e9, f.probability]), [['a', 0.25, 0.05, undefined], ['b', 0.75, 0.15, undefined]],
    'the plan\'s probability times the share; no probability of its own')
  t.same(faults.snapshot(false).map((f) => f.effectiveProbability), [0, 0])
  t.equal(faults.injecting, true)
  set.setEnabled(false)
  t.equal(faults.injecting, false, 'the route\'s switch, read through the link')
})

t.test('the halt: told to the stage once per change', async (t) => {
  const { faults, changes } = planned()
  const start = changes()
  faults.setHalted(true)
  faults.setHalted(true)
  t.equal(faults.halted, true)
  t.equal(changes(), start + 1, 'setting the same halt again is no change')
  faults.setHalted(false)
  t.equal(faults.halted, false)
  t.equal(changes(), start + 2)
})
