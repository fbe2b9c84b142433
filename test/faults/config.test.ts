import t from 'tap'
import { parseConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/config/errors.js'
import { FAULT_KINDS } from '../../src/faults/registry.js'

function problems (chaos: unknown): string[] {
  try {
    parseConfig({ routes: [{ name: 'svc', match: { pathPrefix: '/svc' }, upstream: { url: 'http://127.0.0.1:1' }, chaos }] }, 'faultline.yaml')
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n')
    throw err
  }
  return []
}

t.test('a bad fault config names its path and what was expected', async (t) => {
  t.same(problems({ faults: [{ kind: 'latency', ms: 10 }, { kind: 'abort', probability: 2 }] }),
    ['faultline.yaml: routes[0].chaos.faults[1].probability: expected a number <= 1, got 2'])
  t.same(problems({ faults: [{ kind: 'lag' }] }),
    [`faultline.yaml: routes[0].chaos.faults[0].kind: expected one of ${FAULT_KINDS.map((k) => JSON.stringify(k.kind)).join(' | ')}, got "lag"`])
  t.match(problems({ faults: [{ kind: 'abort', stauts: 503 }] }), [/^faultline\.yaml: routes\[0\]\.chaos\.faults\[0\]: unknown key "stauts" \(did you mean "status"\?\); expected one of kind, name, probability, at, match, .*status/])
  t.same(problems({ faults: [{ kind: 'latency', ms: 10, distribution: { type: 'normal', meanMs: 1, stddevMs: 1 } }] }),
    ['faultline.yaml: routes[0].chaos.faults[0].ms: expected either ms (with optional jitterMs) or distribution, not both or neither'])
  t.same(problems({ faults: [{ kind: 'latency', distribution: { type: 'weibull' } }] }),
    ['faultline.yaml: routes[0].chaos.faults[0].distribution.type: expected one of "uniform" | "normal" | "lognormal" | "pareto", got "weibull"'])
  t.same(problems({ faults: [{ kind: 'abort', at: 'server' }] }), ['faultline.yaml: routes[0].chaos.faults[0].at: expected one of "upstream" | "client", got "server"'])
  t.same(problems({ faults: [{ kind: 'abort', name: 'x' }, { kind: 'reset', name: 'x' }] }),
    ['faultline.yaml: routes[0].chaos.faults[1].name: expected a unique fault name, "x" is also faults[0]'])
  t.same(problems({ faults: [{ kind: 'schemaDrift' }] }), ['faultline.yaml: routes[0].chaos.faults[0].drop: expected at least one field to drop, rename or retype'])
  t.same(problems({ faults: [{ kind: 'throttle', bytesPerSecond: 0 }] }), ['faultline.yaml: routes[0].chaos.faults[0].bytesPerSecond: expected a number > 0, got 0'])
  t.same(problems({ faults: [{ kind: 'abort', match: { methods: ['FETCH'] } }] }),
    ['faultline.yaml: routes[0].chaos.faults[0].match.methods[0]: expected one of "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "TRACE", got "FETCH"'])
  t.same(problems({ faults: [{ kind: 'abort', match: { methods: [] } }] }),
    ['faultline.yaml: routes[0].chaos.faults[0].match.methods: expected at least 1 item(s), got 0 item(s)'])
  const many = { methods: ['GET', 'POST'], path: '/svc/*', headers: { 'x-a': 'b', 'x-c': true } }
  t.same(problems({ faults: [{ kind: 'abort', match: many }] }), [], 'several methods, a path, several headers')
  t.same(problems({ faults: [{ kind: 'abort', match: { path: '' } }] }),
    ['faultline.yaml: routes[0].chaos.faults[0].match.path: expected at least 1 character(s), got ""'])
  t.same(problems({ faults: [{ kind: 'abort', match: { path: `/a/+(${'b'.repeat(100)})` } }] }),
    [`faultline.yaml: routes[0].chaos.faults[0].match.path: extglobs like "+(...)" are not supported, got "/a/+(${'b'.repeat(75)}"`],
    'the glob is quoted, cut at 80 characters')
  t.same(problems({ faults: [{ kind: 'abort', match: { headers: { '': 'x' } } }] }),
    ['faultline.yaml: routes[0].chaos.faults[0].match.headers.: expected at least 1 character(s), got ""'])
  t.same(problems({ enabled: 'yes' }), ['faultline.yaml: routes[0].chaos.enabled: expected boolean, got "yes"'])
})

t.test('defaults: chaos off, no faults; a fault defaults to probability 1 at the upstream side', async (t) => {
  const config = parseConfig({ routes: [{ name: 'svc', match: { pathPrefix: '/svc' }, upstream: { url: 'http://127.0.0.1:1' }, chaos: { faults: [{ kind: 'reset' }] } }] }, 'x')
  t.match(config.routes[0]?.chaos, { enabled: false, allowHeaderTriggers: false, exposeHeaders: false, faults: [{ kind: 'reset', probability: 1, at: 'upstream', phase: 'headers', afterBytes: 0 }] })
  const bare = parseConfig({ routes: [{ name: 'svc', match: { pathPrefix: '/svc' }, upstream: { url: 'http://127.0.0.1:1' } }] }, 'x')
  t.same(bare.routes[0]?.chaos.faults, [])
})

t.test('every registered kind has a one-line summary and validates its minimal form', async (t) => {
  const minimal: Record<string, Record<string, unknown>> = {
    latency: { ms: 1 },
    slowHeaders: { ms: 1 },
    throttle: { bytesPerSecond: 1 },
    truncate: { bytes: 1 },
    schemaDrift: { drop: ['a'] }
  }
  for (const kind of FAULT_KINDS) {
    t.ok(kind.summary.length > 10, `${kind.kind} has a summary`)
    t.same(problems({ faults: [{ kind: kind.kind, ...minimal[kind.kind] }] }), [], `${kind.kind} minimal config is valid`)
  }
})

t.test('config/chaos.example.yaml is valid', async (t) => {
  const { loadConfigFile } = await import('../../src/config/load.js')
  const config = await loadConfigFile(new URL('../../config/chaos.example.yaml', import.meta.url).pathname, {})
  t.equal(config.routes[0]?.chaos.faults.length, 5)
  t.equal(config.routes[0]?.chaos.seed, 42)
})
