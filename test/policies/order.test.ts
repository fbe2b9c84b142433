// One place knows the pipeline order (src/policies/order.ts): a route built
// from config has its policies in exactly that order, with the conditional
// steps only when configured, and the docs show the same order.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import t from 'tap'
import { configSchema } from '../../src/config/schema.js'
import { Metrics } from '../../src/metrics/metrics.js'
import { PIPELINE_ORDER, inPipelineOrder, pipelineDiagram } from '../../src/policies/order.js'
import { PolicyRegistry } from '../../src/policies/registry.js'
import type { Policy } from '../../src/core/pipeline.js'
import { RouteRuntime } from '../../src/proxy/route.js'
import { UpstreamPools } from '../../src/proxy/upstreams.js'

const root = resolve(import.meta.dirname, '../..')

function routeWith (extra: Record<string, unknown>): RouteRuntime {
  const config = configSchema.parse({
    routes: [{ name: 'r', match: { pathPrefix: '/' }, upstream: { url: 'http://127.0.0.1:9', alternates: ['http://127.0.0.1:10'] }, ...extra }]
  })
  return new RouteRuntime(config.routes[0]!, { pools: new UpstreamPools(), metrics: new Metrics(), policyState: new PolicyRegistry() })
}

t.test('a route with every step configured has them all, in the table\'s order', async (t) => {
  const route = routeWith({
    resilience: {
      retry: { attempts: 2 },
      breaker: {},
      authGuard: {},
      bulkhead: { maxConcurrent: 4 },
      fallback: ['alternate']
    },
    validate: {},
    chaos: { enabled: true, faults: [{ kind: 'latency', ms: 1, probability: 0.5 }] }
  })
  t.teardown(() => { route.dispose() })
  t.same(route.policies.map((p) => p.name), PIPELINE_ORDER.map((s) => s.name))
})

t.test('a bare route has only the attempt timeout; the total timeout comes only with retry', async (t) => {
  const bare = routeWith({})
  t.teardown(() => { bare.dispose() })
  t.same(bare.policies.map((p) => p.name), ['attemptTimeout', 'faults'], 'the fault stage is kept for when chaos is switched on')
  const breakerOnly = routeWith({ resilience: { breaker: {} } })
  t.teardown(() => { breakerOnly.dispose() })
  t.same(breakerOnly.policies.map((p) => p.name), ['breaker', 'attemptTimeout', 'faults'], 'no total timeout without retry')
  const withRetry = routeWith({ resilience: { retry: { attempts: 2 } } })
  t.teardown(() => { withRetry.dispose() })
  t.same(withRetry.policies.map((p) => p.name), ['totalTimeout', 'retry', 'attemptTimeout', 'faults'])
})

t.test('inPipelineOrder sorts by the table and refuses unknown or doubled steps', async (t) => {
  const p = (name: string): Policy => ({ name, execute: async (ctx, next) => await next(ctx) })
  t.same(inPipelineOrder([p('faults'), undefined, p('retry'), p('fallback')]).map((x) => x.name), ['fallback', 'retry', 'faults'])
  t.throws(() => inPipelineOrder([p('mystery')]), /"mystery" has no place in PIPELINE_ORDER/)
  t.throws(() => inPipelineOrder([p('retry'), p('retry')]), /twice/)
})

t.test('docs/ARCHITECTURE.md and docs/POLICIES.md show the table\'s order', async (t) => {
  const diagram = pipelineDiagram()
  for (const doc of ['docs/ARCHITECTURE.md', 'docs/POLICIES.md']) {
    const text = readFileSync(resolve(root, doc), 'utf8')
    t.ok(text.includes(diagram), `${doc} has ${diagram}`)
    for (const step of PIPELINE_ORDER) t.ok(text.includes(`| \`${step.name}\` | ${step.when} |`), `${doc} says when ${step.name} is there`)
  }
})
