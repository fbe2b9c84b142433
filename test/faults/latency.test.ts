import t from 'tap'
import { scrape, sumOf } from '../helpers.js'
import { chaosProxy, jsonUpstream, see } from './fixtures.js'
import { delaySampler } from '../../src/faults/delay.js'
import { seededRandom } from '../../src/util/random.js'

t.test('upstream-side latency delays the request before the upstream sees it', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'latency', ms: 300 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.ok(res.ms >= 280, `took ${Math.round(res.ms)} ms, expected >= 300`)
  t.ok(res.ms < 2_000, 'but not much more')
  t.equal(res.headers['x-faultline-fault'], 'latency')
  t.equal(upstream.hits(), 1)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'latency' }), 1)
})

t.test('the attempt timeout cuts an injected delay: a timeout the policies see, the upstream never called', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'latency', ms: 5_000, name: 'slow' }] }, { resilience: { timeoutMs: 200 } })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 504)
  t.ok(res.ms < 2_000, `took ${Math.round(res.ms)} ms, the 200 ms timeout should end it`)
  t.match(JSON.parse(res.body.toString()), { class: 'timeout' })
  t.equal(res.headers['x-faultline-fault'], 'slow')
  t.equal(upstream.hits(), 0)
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'timeout' }), 1)
  t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: 'slow' }), 1)
})

t.test('client-side latency holds the answer back, past the route timeout, without failing it', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'latency', ms: 400, at: 'client' }] }, { resilience: { timeoutMs: 200 } })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200, 'the route timeout does not apply to a client-side fault')
  t.ok(res.ms >= 380, `took ${Math.round(res.ms)} ms`)
  t.same(JSON.parse(res.body.toString()), { id: 1, name: 'lamp', price: 25 })
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc' }), 0)
})

t.test('delay samplers: fixed, jitter and distributions stay in bounds and replay from a seed', async (t) => {
  const draw = (config: Parameters<typeof delaySampler>[0], seed: number, n: number): number[] => {
    const sample = delaySampler(config)
    const random = seededRandom(seed)
    return Array.from({ length: n }, () => sample(random))
  }
  t.same(draw({ ms: 50, maxMs: 1000 }, 1, 3), [50, 50, 50])
  const jittered = draw({ ms: 100, jitterMs: 20, maxMs: 1000 }, 1, 200)
  t.ok(jittered.every((v) => v >= 80 && v <= 120), 'jitter within ms ± jitterMs')
  t.ok(new Set(jittered).size > 50, 'and actually varies')
  const uniform = draw({ distribution: { type: 'uniform', minMs: 10, maxMs: 20 }, maxMs: 1000 }, 2, 200)
  t.ok(uniform.every((v) => v >= 10 && v <= 20))
  const normal = draw({ distribution: { type: 'normal', meanMs: 100, stddevMs: 10 }, maxMs: 1000 }, 3, 2000)
  const mean = normal.reduce((a, b) => a + b, 0) / normal.length
  t.ok(mean > 97 && mean < 103, `normal mean ${mean.toFixed(1)} near 100`)
  const lognormal = draw({ distribution: { type: 'lognormal', medianMs: 50, sigma: 1 }, maxMs: 500 }, 4, 2001)
  const median = [...lognormal].sort((a, b) => a - b)[1000]!
  t.ok(median > 40 && median < 60, `lognormal median ${median.toFixed(1)} near 50`)
  t.ok(lognormal.every((v) => v <= 500), 'capped at maxMs')
  const pareto = draw({ distribution: { type: 'pareto', scaleMs: 10, alpha: 1.5 }, maxMs: 1000 }, 5, 500)
  t.ok(pareto.every((v) => v >= 10 && v <= 1000), 'pareto >= scale, capped')
  t.same(draw({ distribution: { type: 'pareto', scaleMs: 10, alpha: 1.5 }, maxMs: 1000 }, 5, 500), pareto, 'same seed, same draws')
})
