import t from 'tap'
import { faultSchema } from '../../src/faults/registry.js'
import { controllerSettings, planFor, uniformPlan } from '../../src/intent/planner.js'
import { controllerSchema, intentSchema, PROTECTS } from '../../src/intent/schema.js'

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

t.test('controller settings, exactly as docs/INTENT.md says: margin = base + 0.4 x sensitivity, step = 0.15 - 0.10 x sensitivity, back-off 0.5', async (t) => {
  const rows: Array<[string, number | undefined, { ceiling: number, margin: number, step: number }]> = [
    ['critical', undefined, { ceiling: 0.4, margin: 0.42, step: 0.07 }],
    ['degradable', undefined, { ceiling: 0.8, margin: 0.25, step: 0.1 }],
    ['optional', undefined, { ceiling: 1, margin: 0.08, step: 0.13 }],
    ['degradable', 0, { ceiling: 0.8, margin: 0.05, step: 0.15 }],
    ['degradable', 1, { ceiling: 0.8, margin: 0.45, step: 0.05 }],
    ['optional', 0.3, { ceiling: 1, margin: 0.12, step: 0.12 }]
  ]
  for (const [criticality, sensitivity, want] of rows) {
    const got = controllerSettings(intentSchema.parse({ criticality, sensitivity }))
    t.same({ ceiling: got.ceiling, margin: got.margin, step: got.step, backoff: got.backoff }, { ...want, backoff: 0.5 }, `${criticality}, sensitivity ${sensitivity ?? 'default'}`)
  }
  const windows = { minRequests: 7, holdWindows: 4, cooldownMs: 1234 }
  t.match(controllerSettings(intentSchema.parse({}), { ...controllerSchema.parse({}), ...windows }), windows, 'the windows come from the controller config')
  t.match(controllerSettings(intentSchema.parse({})), { minRequests: controllerSchema.parse({}).minRequests, holdWindows: controllerSchema.parse({}).holdWindows, cooldownMs: controllerSchema.parse({}).cooldownMs }, 'or its defaults')
  t.match(planFor(intentSchema.parse({ criticality: 'critical' }), { ...controllerSchema.parse({}), ...windows }).controller, { ...windows, ceiling: 0.4 }, 'planFor passes them on')
})

t.test('a level outside 0..1 is held to it; sizes are whole milliseconds', async (t) => {
  const latency = planFor(intentSchema.parse({ protects: 'latency', slo: { p99Ms: 300 } })).entries.find((e) => e.kind === 'latency')!
  t.equal(latency.build(2).ms, 600, 'above 1: as at 1')
  t.equal(latency.build(-1).ms, 150, 'below 0: as at 0')
  t.equal(latency.build(0.3).ms, 285, '300 x (0.5 + 1.5 x 0.3)')
  t.ok(Number.isInteger(latency.build(0.123).ms), 'rounded')
})

t.test('schemaDrift drifts the route\'s declared fields, else id and data', async (t) => {
  // driftFields is not in the intent schema: a caller building the intent in code may set it.
  const drift = (extra: Record<string, unknown>): unknown =>
    planFor({ ...intentSchema.parse({ protects: 'consistency' }), ...extra }).entries.find((e) => e.kind === 'schemaDrift')!.build(0.5)
  t.match(drift({}), { kind: 'schemaDrift', drop: ['data'], retype: { id: 'string' } })
  t.match(drift({ driftFields: ['sku', 'price', 'name'] }), { drop: ['price', 'name'], retype: { sku: 'string' } })
})

t.test('uniform plan: the full budget (ceiling 1) and no fail-closed mark, whatever the intent; each kind at its mid severity', async (t) => {
  const intent = intentSchema.parse({ protects: 'security', criticality: 'critical', slo: { p99Ms: 300 } })
  const plan = uniformPlan(intent)
  t.equal(plan.controller.ceiling, 1, 'not the critical route\'s 0.4')
  t.equal(plan.controller.margin, controllerSettings(intent).margin, 'the rest of the settings are the intent\'s')
  t.equal(plan.failClosed, false)
  t.equal(plan.protects, 'security')
  t.ok(plan.entries.every((e) => e.why === 'uniform: every kind equally likely'))
  const latency = plan.entries.find((e) => e.kind === 'latency')!
  const planned = planFor(intentSchema.parse({ protects: 'latency', slo: { p99Ms: 300 } })).entries.find((e) => e.kind === 'latency')!
  t.same(latency.build(0), planned.build(0.5), 'the first plan naming a kind gives its mid severity')
})

t.test('the table of mixes, entry by entry, as docs/INTENT.md gives it: weights, and each fault at level 0 and at level 1', async (t) => {
  const table: Record<string, Array<[name: string, weight: number, at0: object, at1: object]>> = {
    latency: [
      ['latency', 0.5, { kind: 'latency', ms: 100, jitterMs: 20 }, { kind: 'latency', ms: 400, jitterMs: 80 }],
      ['slowHeaders', 0.2, { kind: 'slowHeaders', ms: 100 }, { kind: 'slowHeaders', ms: 400 }],
      ['timeout', 0.15, { kind: 'timeout' }, { kind: 'timeout' }],
      ['throttle', 0.15, { kind: 'throttle', bytesPerSecond: 64 * 1024 }, { kind: 'throttle', bytesPerSecond: 4 * 1024 }]
    ],
    availability: [
      ['abort-503', 0.25, { kind: 'abort', status: 503 }, { kind: 'abort', status: 503 }],
      ['abort-500', 0.15, { kind: 'abort', status: 500 }, { kind: 'abort', status: 500 }],
      ['reset', 0.3, { kind: 'reset', phase: 'headers' }, { kind: 'reset', phase: 'headers' }],
      ['timeout', 0.2, { kind: 'timeout' }, { kind: 'timeout' }],
      ['rateLimit', 0.1, { kind: 'rateLimit', retryAfterSeconds: 1 }, { kind: 'rateLimit', retryAfterSeconds: 5 }]
    ],
    security: [
      ['auth-unauthorized', 0.3, { kind: 'auth', variant: 'unauthorized' }, { kind: 'auth', variant: 'unauthorized' }],
      ['auth-expired', 0.25, { kind: 'auth', variant: 'expired' }, { kind: 'auth', variant: 'expired' }],
      ['auth-forbidden', 0.15, { kind: 'auth', variant: 'forbidden' }, { kind: 'auth', variant: 'forbidden' }],
      ['abort-503', 0.2, { kind: 'abort', status: 503 }, { kind: 'abort', status: 503 }],
      ['latency', 0.1, { kind: 'latency', ms: 100 }, { kind: 'latency', ms: 400 }]
    ],
    consistency: [
      ['truncate', 0.3, { kind: 'truncate', bytes: 512 }, { kind: 'truncate', bytes: 16 }],
      ['corrupt', 0.3, { kind: 'corrupt', mode: 'json' }, { kind: 'corrupt', mode: 'json' }],
      ['schemaDrift', 0.3, { kind: 'schemaDrift', drop: ['data'], retype: { id: 'string' } }, { kind: 'schemaDrift', drop: ['data'], retype: { id: 'string' } }],
      ['reset-body', 0.1, { kind: 'reset', phase: 'body', afterBytes: 64 }, { kind: 'reset', phase: 'body', afterBytes: 64 }]
    ]
  }
  for (const protects of PROTECTS) {
    const plan = planFor(intentSchema.parse({ protects, slo: { p99Ms: 200 } }))
    const expected = table[protects]!
    t.same(plan.entries.map((e) => [e.name, e.weight, e.build(0), e.build(1)]),
      expected.map(([name, weight, at0, at1]) => [name, weight, { ...at0, name }, { ...at1, name }]), `${protects}: the table`)
    for (const e of plan.entries) t.ok(e.why.length > 10, `${protects}/${e.name} says why it is in the plan`)
  }
  const latency = planFor(intentSchema.parse({ protects: 'latency', slo: { p99Ms: 200 } })).entries[0]!
  t.match(latency.why, /200 ms p99/, 'the latency entry names the route\'s threshold')
})
