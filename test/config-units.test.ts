/**
 * Durations and shares as people write them: `1s`, `250ms`, `2m` where a
 * duration is configured and `5%` where a probability or share is, in the
 * file and on the admin API; the numeric forms stay valid.
 */
import t from 'tap'
import { request } from 'undici'
import { ConfigError } from '../src/config/errors.js'
import { parseConfigText } from '../src/config/load.js'
import { parseDurationMs, parsePercent } from '../src/config/units.js'
import { startProxy, startUpstream } from './helpers.js'

const ROUTE = 'routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: "http://x:1", connectTimeoutMs: 1.5s }\n'

function problems (text: string): string[] {
  try {
    parseConfigText(text, 'fl.yaml', {})
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n')
    throw err
  }
  return []
}

t.test('the parsers', async (t) => {
  t.equal(parseDurationMs('250ms'), 250)
  t.equal(parseDurationMs('1s'), 1000)
  t.equal(parseDurationMs('1.5s'), 1500)
  t.equal(parseDurationMs('2m'), 120_000)
  t.equal(parseDurationMs('1h'), 3_600_000)
  t.equal(parseDurationMs('10'), undefined, 'a bare number string is not a duration')
  t.equal(parseDurationMs('1d'), undefined)
  t.equal(parsePercent('5%'), 0.05)
  t.equal(parsePercent('0.5 %'), 0.005)
  t.equal(parsePercent('5'), undefined)
})

t.test('durations and percentages in a config file, numbers still valid', async (t) => {
  const config = parseConfigText(`listen: { requestTimeoutMs: 2m, headersTimeoutMs: 10s }\nshutdown: { drainMs: 500ms }\ncontroller: { evaluationMs: 5s, cooldownMs: 1m }\n${ROUTE}    resilience:\n      timeoutMs: 2s\n      attemptTimeoutMs: 800\n      retry: { backoff: { baseMs: 25ms }, budgetRatio: 20% }\n      breaker: { failureRate: 50%, windowMs: 10s, openMs: 5s }\n    chaos:\n      enabled: true\n      budget: 5%\n      faults:\n        - { kind: latency, ms: 1s, jitterMs: 100ms, probability: 10% }\n        - { kind: latency, distribution: { type: lognormal, medianMs: 200ms, sigma: 0.5 }, probability: 0.2 }\n        - { kind: timeout, closeAfterMs: 3s }\n    intent: { slo: { p99Ms: 300ms, errorRate: 1%, windowMs: 30s } }\n`, 'fl.yaml', {})
  t.equal(config.listen.requestTimeoutMs, 120_000)
  t.equal(config.listen.headersTimeoutMs, 10_000)
  t.equal(config.shutdown.drainMs, 500)
  t.equal(config.controller.evaluationMs, 5_000)
  t.equal(config.controller.cooldownMs, 60_000)
  const route = config.routes[0]!
  t.equal(route.upstream.connectTimeoutMs, 1500)
  t.equal(route.resilience.timeoutMs, 2000)
  t.equal(route.resilience.attemptTimeoutMs, 800, 'a number is still milliseconds')
  t.equal(route.resilience.retry!.backoff.baseMs, 25)
  t.equal(route.resilience.retry!.budgetRatio, 0.2)
  t.equal(route.resilience.breaker!.failureRate, 0.5)
  t.equal(route.resilience.breaker!.windowMs, 10_000)
  t.equal(route.chaos.budget, 0.05)
  t.match(route.chaos.faults[0], { kind: 'latency', ms: 1000, jitterMs: 100, probability: 0.1 })
  t.match(route.chaos.faults[1], { distribution: { medianMs: 200 }, probability: 0.2 })
  t.match(route.chaos.faults[2], { kind: 'timeout', closeAfterMs: 3000 })
  t.match(route.intent, { slo: { p99Ms: 300, errorRate: 0.01, windowMs: 30_000 } })
})

t.test('a wrong form says which forms are accepted; bounds still hold after conversion', async (t) => {
  t.same(problems(`${ROUTE}    resilience: { timeoutMs: soon }\n`), ['fl.yaml: routes[0].resilience.timeoutMs: expected a duration such as 250ms, 1s or 2m (or a number of milliseconds), got "soon"'])
  t.same(problems(`${ROUTE}    chaos: { budget: lots }\n`), ['fl.yaml: routes[0].chaos.budget: expected a share such as 0.05 or "5%", got "lots"'])
  t.same(problems(`${ROUTE}    chaos: { budget: 150% }\n`), ['fl.yaml: routes[0].chaos.budget: expected a number <= 1, got 1.5'])
  t.same(problems(`${ROUTE}    resilience: { timeoutMs: 0.5ms }\n`), ['fl.yaml: routes[0].resilience.timeoutMs: expected an integer, got 0.5'])
})

t.test('the admin API takes the same forms', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const token = 'a-test-token-of-enough-length'
  const proxy = await startProxy(t, { admin: { token }, routes: [{ name: 'svc', match: { pathPrefix: '/svc' }, upstream: { url: upstream.url } }] })
  const res = await request(`${proxy.adminUrl}/chaos/routes/svc/faults`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'latency', name: 'slow', ms: '250ms', probability: '5%' })
  })
  t.equal(res.statusCode, 201)
  t.match(await res.body.json(), { fault: { id: 'slow', ms: 250, probability: 0.05 } })
  const bad = await request(`${proxy.adminUrl}/experiments`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ mode: 'intent', durationMs: 'a while' })
  })
  t.equal(bad.statusCode, 400)
  t.match(await bad.body.json(), { message: /durationMs: expected a duration such as 250ms, 1s or 2m/ })
})
