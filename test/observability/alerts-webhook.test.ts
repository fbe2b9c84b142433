/**
 * Webhook alerts against a real receiver on 127.0.0.1: what triggers
 * them, what they carry, and that deduplication, rate limits, retries and
 * a hanging receiver behave, without ever touching proxied requests.
 */
import t from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, type Teardown } from '../helpers.js'
import { parseConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/config/errors.js'

interface Received { body: Record<string, any>, headers: IncomingMessage['headers'] }

/** A webhook receiver; `answer` decides each reply (default 200). */
async function receiver (t: Teardown, answer: (n: number, res: ServerResponse) => boolean = () => false): Promise<{ url: string, received: Received[], posts: () => number }> {
  const received: Received[] = []
  let posts = 0
  const up = await startUpstream(t, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      posts++
      if (answer(posts, res)) return
      received.push({ body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, any>, headers: req.headers })
      res.end('ok')
    })
  })
  return { url: `${up.url}/hooks/faultline?token=secret`, received, posts: () => posts }
}

/** Polls until `check` holds; bounded in time. */
async function until (check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms
  for (let i = 0; i < 1000 && Date.now() < end; i++) {
    if (check()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return check()
}

t.test('config: webhooks are validated', async (t) => {
  const base = { routes: [route('a', '/a', 'http://127.0.0.1:1')] }
  t.throws(() => parseConfig({ ...base, alerts: { webhooks: [{ url: 'ftp://x' }] } }, 'x'), ConfigError)
  t.throws(() => parseConfig({ ...base, alerts: { webhooks: [{ url: 'http://u:p@127.0.0.1/x' }] } }, 'x'), ConfigError, 'no credentials in the URL')
  t.throws(() => parseConfig({ ...base, alerts: { webhooks: [{ url: 'http://127.0.0.1/x', types: ['nope'] }] } }, 'x'), ConfigError)
  const ok = parseConfig({ ...base, alerts: { webhooks: [{ url: 'http://127.0.0.1/x' }] } }, 'x')
  t.match(ok.alerts, { dedupeMs: 300_000, webhooks: [{ attempts: 4, perMinute: 20, timeoutMs: 5000 }], errorRate: { threshold: 0.05 } })
  t.same(parseConfig(base, 'x').alerts.webhooks, [], 'no webhooks by default')
})

t.test('breaker opened: one alert with context, repeats deduplicated', async (t) => {
  const hook = await receiver(t)
  const down = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('upstream says no') })
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: hook.url, headers: { authorization: 'Bearer hook-token' } }] },
    routes: [route('pay', '/pay', down.url, { resilience: { breaker: { consecutiveFailures: 3, openMs: 100 } } })]
  })
  for (let i = 0; i < 4; i++) await fetchText(`${proxy.url}/pay/charge/${i}`)
  t.ok(await until(() => hook.received.length >= 1), 'the alert arrived')
  const alert = hook.received[0]!
  t.equal(alert.headers['content-type'], 'application/json')
  t.equal(alert.headers.authorization, 'Bearer hook-token', 'configured headers are sent')
  t.match(alert.body, {
    source: 'faultline',
    type: 'breaker_opened',
    severity: 'page',
    route: 'pay',
    upstream: `127.0.0.1:${down.port}`,
    summary: /circuit breaker opened: route pay/,
    details: { from: 'closed', to: 'open' },
    // Built when the breaker opened: the failure that tripped it is still in flight, so two are on record.
    context: { errorClasses: { http_5xx: 2 }, sampleError: { status: 503, errorClass: 'http_5xx', path: /^\/pay\/charge\// } }
  })
  t.match(alert.body.id, /^[0-9a-f-]{36}$/)
  // Half-open probe fails: the breaker opens again, within the dedupe window.
  await new Promise((resolve) => setTimeout(resolve, 150))
  await fetchText(`${proxy.url}/pay/charge/9`)
  const s = await scrape(proxy)
  t.ok(sumOf(s, 'faultline_breaker_transitions_total', { route: 'pay', to: 'open' }) >= 2, 'the breaker opened twice')
  await proxy.faultline.alerts.idle()
  const after = await scrape(proxy)
  t.equal(sumOf(after, 'faultline_alerts_total', { type: 'breaker_opened', result: 'sent' }), 1)
  t.ok(sumOf(after, 'faultline_alerts_total', { type: 'breaker_opened', result: 'deduplicated' }) >= 1, 'the repeat was deduplicated')
  t.equal(hook.received.length, 1, 'the receiver got one alert')
})

t.test('auth guard tripped and error rate over the threshold', async (t) => {
  const hook = await receiver(t)
  const upstream = await startUpstream(t, (req, res) => {
    res.statusCode = req.url?.startsWith('/auth') === true ? 401 : 503
    res.end('<script>alert(1)</script>')
  })
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: hook.url }], errorRate: { threshold: 0.5, minRequests: 5, checkIntervalMs: 100 } },
    routes: [
      route('auth', '/auth', upstream.url, { resilience: { authGuard: { failures: 2, blockMs: 60_000 } } }),
      route('flaky', '/flaky', upstream.url)
    ]
  })
  for (let i = 0; i < 3; i++) await fetchText(`${proxy.url}/auth/me`)
  for (let i = 0; i < 6; i++) await fetchText(`${proxy.url}/flaky/x`)
  t.ok(await until(() => hook.received.some((r) => r.body.type === 'error_rate')), 'error-rate alert arrived')
  const auth = hook.received.find((r) => r.body.type === 'auth_guard_tripped')
  t.match(auth?.body, { route: 'auth', upstream: `127.0.0.1:${upstream.port}`, context: { errorClasses: { auth: 1 } } })
  const rate = hook.received.filter((r) => r.body.type === 'error_rate')
  t.equal(rate.length, 1, 'one alert per crossing, not one per check')
  t.match(rate[0]?.body, { route: 'flaky', details: { threshold: 0.5, window: '5m' }, context: { errorRate: 1 } })
  t.ok(rate[0]?.body.context.requests >= 5, 'at least minRequests behind it')
  t.notOk(hook.received.some((r) => r.body.type === 'error_rate' && r.body.route === 'auth'), 'auth: 3 requests, under minRequests')
})

t.test('retried with backoff until the receiver accepts; a 4xx is not retried', async (t) => {
  const hook = await receiver(t, (n, res) => {
    if (n <= 2) { res.statusCode = 503; res.end('busy'); return true }
    return false
  })
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: hook.url, attempts: 4, backoff: { baseMs: 20, maxMs: 50 } }] },
    routes: [route('a', '/a', 'http://127.0.0.1:1')]
  })
  proxy.faultline.alerts.emit({ type: 'guardrail_halt', route: 'a', details: { guardrail: 'p99', observed: 1.2, limit: 0.5 } })
  await proxy.faultline.alerts.idle()
  t.equal(hook.posts(), 3, 'two 503s, then accepted')
  t.match(hook.received[0]?.body, { type: 'guardrail_halt', severity: 'ticket', route: 'a', details: { guardrail: 'p99' } })
  t.equal(sumOf(await scrape(proxy), 'faultline_alerts_total', { type: 'guardrail_halt', result: 'sent' }), 1)
  t.ok(proxy.logs.lines.some((l) => l.msg === 'alert webhook failed' && typeof l.webhook === 'string' && !String(l.webhook).includes('secret')), 'failures logged without the URL query')

  const refusing = await receiver(t, (_n, res) => { res.statusCode = 400; res.end('bad'); return true })
  const proxy2 = await startProxy(t, { alerts: { webhooks: [{ url: refusing.url, attempts: 4, backoff: { baseMs: 1, maxMs: 1 } }] }, routes: [route('a', '/a', 'http://127.0.0.1:1')] })
  proxy2.faultline.alerts.emit({ type: 'guardrail_halt', route: 'a' })
  await proxy2.faultline.alerts.idle()
  t.equal(refusing.posts(), 1, 'a 400 would fail again: not retried')
  t.equal(sumOf(await scrape(proxy2), 'faultline_alerts_total', { type: 'guardrail_halt', result: 'failed' }), 1)
})

t.test('rate-limited per webhook; types filter', async (t) => {
  const hook = await receiver(t)
  const other = await receiver(t)
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: hook.url, perMinute: 2 }, { url: other.url, types: ['breaker_opened'] }] },
    routes: [route('a', '/a', 'http://127.0.0.1:1')]
  })
  for (let i = 0; i < 5; i++) proxy.faultline.alerts.emit({ type: 'guardrail_halt', route: `r${i}` })
  await proxy.faultline.alerts.idle()
  t.equal(hook.received.length, 2, 'two a minute')
  t.equal(other.received.length, 0, 'the other webhook takes only breaker alerts')
  t.equal(sumOf(await scrape(proxy), 'faultline_alerts_total', { type: 'guardrail_halt', result: 'rate_limited' }), 3)
})

t.test('a hanging receiver never slows proxied requests', async (t) => {
  const hung: ServerResponse[] = []
  const hook = await receiver(t, (_n, res) => { hung.push(res); return true })
  const down = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('no') })
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: hook.url, timeoutMs: 10_000 }], errorRate: { threshold: 0.1, minRequests: 2, checkIntervalMs: 100 } },
    routes: [route('pay', '/pay', down.url, { resilience: { breaker: { consecutiveFailures: 2, openMs: 60_000 } } })]
  })
  for (let i = 0; i < 3; i++) await fetchText(`${proxy.url}/pay/x`)
  t.ok(await until(() => hook.posts() >= 1), 'an alert POST is hanging')
  const times: number[] = []
  for (let i = 0; i < 20; i++) times.push((await fetchText(`${proxy.url}/pay/x`)).ms)
  t.ok(Math.max(...times) < 2500, `requests stay fast while the webhook hangs (max ${Math.round(Math.max(...times))} ms)`)
  t.equal((await fetchText(`${proxy.url}/pay/x`)).status, 503, 'short-circuited as usual')
  // Shutdown does not wait for the hanging POST.
  const t0 = Date.now()
  await proxy.faultline.close()
  t.ok(Date.now() - t0 < 5000, 'close() abandons pending alerts')
  for (const res of hung) res.destroy()
})

t.test('webhooks added by a reload take effect; records survive it', async (t) => {
  const hook = await receiver(t)
  const dir = await mkdtemp(join(tmpdir(), 'faultline-alerts-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'faultline.json')
  const up = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('no') })
  const v1 = { routes: [route('a', '/a', up.url)] }
  await writeFile(file, JSON.stringify(v1))
  const proxy = await startProxy(t, v1, { configFile: file })
  proxy.faultline.alerts.emit({ type: 'guardrail_halt', route: 'a' })
  await fetchText(`${proxy.url}/a/x`)
  await writeFile(file, JSON.stringify({ ...v1, alerts: { webhooks: [{ url: hook.url }] } }))
  await proxy.faultline.reload()
  proxy.faultline.alerts.emit({ type: 'guardrail_halt', route: 'a' })
  await proxy.faultline.alerts.idle()
  t.equal(hook.received.length, 1, 'only the alert raised after the reload')
  t.match(hook.received[0]?.body, { context: { requests: 1, failed: 1 } }, 'the request before the reload is still on record')
})
