import t from 'tap'
import { readFile } from 'node:fs/promises'
import { parseConfigText } from '../../src/config/load.js'
import { PolicyRegistry } from '../../src/policies/registry.js'
import { buildPolicies } from '../../src/policies/index.js'
import { Metrics } from '../../src/metrics/metrics.js'
import { RouteMetrics } from '../../src/metrics/route-metrics.js'

t.test('the example config validates, with defaults filled in', async (t) => {
  const config = parseConfigText(await readFile('config/policies.example.yaml', 'utf8'), 'policies.example.yaml', {})
  const catalog = config.routes[0]!.resilience
  t.equal(catalog.retry?.backoff.jitter, 'full')
  t.same(catalog.fallback.map((f) => f.kind), ['cache', 'alternate', 'static'])
  t.equal(config.routes[1]!.resilience.failFast, true)
})

t.test('pipelines hold only the configured policies, outermost first', async (t) => {
  const config = parseConfigText(await readFile('config/policies.example.yaml', 'utf8'), 'policies.example.yaml', {})
  const metrics = new Metrics({ defaultMetrics: false })
  const registry = new PolicyRegistry()
  const deps = (name: string) => ({ registry, metrics, routeMetrics: new RouteMetrics(metrics, name), upstreamLabel: 'u:1', alternates: [], attemptOptions: { bodyIdleTimeoutMs: 1000, backstopMs: 1000 } })
  const catalog = buildPolicies(config.routes[0]!, deps('catalog'))
  t.same(catalog.map((p) => p.name), ['fallback', 'bulkhead', 'totalTimeout', 'retry', 'breaker', 'attemptTimeout'])
  const payments = buildPolicies(config.routes[1]!, deps('payments'))
  t.same(payments.map((p) => p.name), ['bulkhead', 'authGuard', 'breaker', 'attemptTimeout'])
  const bare = parseConfigText('routes: [{ name: b, match: { pathPrefix: /b }, upstream: { url: "http://b:1" } }]', 'b.yaml', {})
  t.same(buildPolicies(bare.routes[0]!, deps('b')).map((p) => p.name), ['attemptTimeout'], 'a bare route pays for nothing else')

  // State is shared while a generation holds it and dropped when the last one lets go.
  const size = registry.size
  const again = buildPolicies(config.routes[0]!, deps('catalog'))
  t.equal(registry.size, size, 'a second generation with the same config reuses every entry')
  for (const p of catalog) p.dispose?.()
  t.equal(registry.size, size, 'still held by the newer generation')
  for (const p of [...again, ...payments]) p.dispose?.()
  t.equal(registry.size, 0, 'released when no route uses it')
})

t.test('a fallback step with two kinds says which and how to write them', async (t) => {
  const text = 'routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: "http://a:1" }\n    resilience:\n      fallback:\n        - cache: {}\n          static: { status: 200, body: x }\n'
  t.throws(() => parseConfigText(text, 'f.yaml', {}), {
    message: /f\.yaml: routes\[0\]\.resilience\.fallback\[0\]: expected one of cache, static or defer per fallback step, got cache and static: make each its own step, in the order they are tried \(fallback: \[\{ cache: \.\.\. \}, \{ static: \.\.\. \}\]\)/
  })
  const empty = text.replace(/ {8}- cache: \{\}\n {10}static: \{ status: 200, body: x \}\n/, '        - {}\n')
  t.throws(() => parseConfigText(empty, 'f.yaml', {}), { message: /fallback\[0\]: expected one of cache, static or defer in a fallback step, got an empty object/ })
})

t.test('a fallback step in the tagged form GET /routes shows is accepted as written', async (t) => {
  const text = 'routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: "http://a:1", alternates: ["http://b:1"] }\n    resilience:\n      fallback:\n' +
    '        - { kind: cache, maxEntries: 10 }\n        - { kind: alternate }\n        - { kind: static, status: 200, body: x }\n'
  const steps = parseConfigText(text, 'f.yaml', {}).routes[0]!.resilience.fallback
  t.same(steps.map((f) => f.kind), ['cache', 'alternate', 'static'])
  t.match(steps[0], { kind: 'cache', maxEntries: 10 })
  t.match(steps[2], { kind: 'static', status: 200, body: 'x' })
  // What the admin API shows is what the config takes: the round trip is exact.
  t.same(parseConfigText(text.replace('{ kind: static, status: 200, body: x }', JSON.stringify(steps[2])), 'f.yaml', {}).routes[0]!.resilience.fallback[2], steps[2])
  // A mistake inside a tagged step is reported at its own path, as in the keyed form.
  t.throws(() => parseConfigText(text.replace('status: 200', 'status: 99'), 'f.yaml', {}), { message: /fallback\[2\]\.static\.status/ })
})
