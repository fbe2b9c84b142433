import t from 'tap'
import { faultSchema } from '../../src/faults/registry.js'
import { controllerSettings, planFor, uniformPlan } from '../../src/intent/planner.js'
import { intentSchema, PROTECTS } from '../../src/intent/schema.js'

const EXPECTED_KINDS: Record<string, string[]> = {
  latency: ['latency', 'slowHeaders', 'timeout', 'throttle'],
  availability: ['abort', 'abort', 'reset', 'timeout', 'rateLimit'],
  security: ['auth', 'auth', 'auth', 'abort', 'latency'],
  consistency: ['truncate', 'corrupt', 'schemaDrift', 'reset']
}

t.test('every protects value gets its mix; weights sum to 1; every planned fault is a valid chaos config', async (t) => {
  for (const protects of PROTECTS) {
    const plan = planFor(intentSchema.parse({ protects, slo: { p99Ms: 200 } }))
    t.same(plan.entries.map((e) => e.kind), EXPECTED_KINDS[protects], `${protects}: kinds`)
    t.ok(Math.abs(plan.entries.reduce((s, e) => s + e.weight, 0) - 1) < 1e-9, `${protects}: weights sum to 1`)
    t.equal(new Set(plan.entries.map((e) => e.name)).size, plan.entries.length, `${protects}: names are unique (metric labels)`)
    for (const e of plan.entries) {
      for (const level of [0, 0.1, 0.5, 1]) {
        const parsed = faultSchema.safeParse(e.build(level))
        t.ok(parsed.success, `${protects}/${e.name} at level ${level} is a valid fault`)
      }
    }
    t.equal(plan.failClosed, protects === 'security', `${protects}: fails closed only for security`)
  }
})

t.test('latency faults are sized 0.5x to 2x the p99 threshold', async (t) => {
  const plan = planFor(intentSchema.parse({ protects: 'latency', slo: { p99Ms: 300 } }))
  const latency = plan.entries.find((e) => e.kind === 'latency')!
  t.equal(latency.build(0).ms, 150)
  t.equal(latency.build(1).ms, 600)
  t.ok((latency.build(0.5).ms as number) > 300, 'mid level already crosses the threshold')
  const throttle = plan.entries.find((e) => e.kind === 'throttle')!
  t.ok((throttle.build(1).bytesPerSecond as number) < (throttle.build(0).bytesPerSecond as number), 'throttling tightens with the level')
})

t.test('criticality sets the ceiling; sensitivity widens the margin and shrinks the step', async (t) => {
  const c = (criticality: string, sensitivity?: number): ReturnType<typeof controllerSettings> =>
    controllerSettings(intentSchema.parse({ criticality, sensitivity }))
  t.ok(c('critical').ceiling < c('degradable').ceiling && c('degradable').ceiling < c('optional').ceiling)
  t.ok(c('degradable', 0.9).margin > c('degradable', 0.1).margin)
  t.ok(c('degradable', 0.9).step < c('degradable', 0.1).step)
  t.equal(intentSchema.parse({ criticality: 'critical' }).slo.errorRate, 0.01, 'defaults per criticality')
})

t.test('uniform plan: every kind once, equal weights, fixed severity', async (t) => {
  const plan = uniformPlan(intentSchema.parse({ protects: 'latency' }))
  const kinds = plan.entries.map((e) => e.kind)
  t.equal(new Set(kinds).size, kinds.length)
  t.ok(kinds.length >= 10, `${kinds.length} kinds`)
  t.ok(plan.entries.every((e) => Math.abs(e.weight - 1 / kinds.length) < 1e-12))
  t.same(plan.entries[0]!.build(0), plan.entries[0]!.build(1), 'severity does not move with the level')
})
