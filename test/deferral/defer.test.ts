import t from 'tap'
import { fetchText, scrape, startProxy, sumOf } from '../helpers.js'
import { admin, deferConfig, flakyUpstream, tempDir, until } from './fixtures.js'

const write = (key: string | undefined, body = '{"amount":12}'): { method: string, headers: Record<string, string>, body: string } => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(key !== undefined ? { 'idempotency-key': key } : {}) },
  body
})

t.test('a write during an outage is stored, answered 202, and delivered once the upstream is back', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url))
  const res = await fetchText(`${proxy.url}/pay/capture`, write('order-1'))
  t.equal(res.status, 202)
  t.equal(res.headers['x-faultline-outcome'], 'deferred')
  const answer = JSON.parse(res.body)
  t.equal(answer.state, 'pending')
  t.equal(res.headers.location, `/deferrals/${answer.id as string}`)
  t.equal(upstream.received.length, 0, 'nothing reached the upstream yet')

  const pending = await admin(proxy.adminUrl, `/deferrals/${answer.id as string}`)
  t.equal(pending.json().state, 'pending')

  await upstream.up()
  t.ok(await until(() => upstream.received.length === 1), 'delivered after recovery')
  const got = upstream.received[0]!
  t.equal(got.key, 'order-1', 'the original Idempotency-Key is forwarded')
  t.equal(got.url, '/pay/capture')
  t.equal(got.body, '{"amount":12}')
  t.equal(got.headers['content-type'], 'application/json')

  t.ok(await until(async () => (await admin(proxy.adminUrl, `/deferrals/${answer.id as string}`)).json().state === 'delivered'))
  const done = (await admin(proxy.adminUrl, `/deferrals/${answer.id as string}`)).json()
  t.equal(done.result.status, 201, "the upstream's status")
  t.same(done.result.body, { encoding: 'utf8', text: JSON.stringify({ created: '{"amount":12}' }) }, 'and its body')
  t.ok(done.attempts >= 1, 'attempts are counted')

  // The client's retry with the same key is answered from the delivery, without a second write.
  const again = await fetchText(`${proxy.url}/pay/capture`, write('order-1'))
  t.equal(again.status, 201)
  t.equal(again.body, JSON.stringify({ created: '{"amount":12}' }))
  t.equal(again.headers['x-faultline-deferral'], answer.id)
  t.equal(upstream.received.length, 1, 'still one write upstream')

  t.ok(await until(async () => sumOf(await scrape(proxy), 'faultline_deferral_deliveries_total', { route: 'pay', result: 'delivered' }) === 1), 'one delivery counted')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_deferrals_accepted_total', { route: 'pay', injected: 'false' }), 1)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'pay', outcome: 'deferred' }), 2)
  t.equal(sumOf(m, 'faultline_deferral_queue_depth', { route: 'pay' }), 0)
})

t.test('the same key twice while deferred is one entry, one id, one delivery', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url))
  const first = JSON.parse((await fetchText(`${proxy.url}/pay/x`, write('same'))).body)
  const second = await fetchText(`${proxy.url}/pay/x`, write('same'))
  t.equal(second.status, 202)
  t.equal(JSON.parse(second.body).id, first.id, 'the same deferral id')
  const listed = (await admin(proxy.adminUrl, '/deferrals?route=pay')).json().deferrals
  t.equal(listed.length, 1)
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_deferral_queue_depth', { route: 'pay' }), 1)
  t.ok(sumOf(m, 'faultline_deferral_oldest_age_seconds', { route: 'pay' }) >= 0)

  const reused = await fetchText(`${proxy.url}/pay/x`, write('same', '{"amount":99}'))
  t.equal(reused.status, 422, 'the same key with another body is refused')
  t.match(JSON.parse(reused.body), { error: 'idempotency_key_reused', id: first.id })

  await upstream.up()
  t.ok(await until(() => upstream.received.length === 1))
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.equal(upstream.received.length, 1, 'delivered once')
})

t.test('what is not deferred: no key, a read, a body over maxBodyBytes, an auth failure', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, { maxBodyBytes: 16 }))
  const noKey = await fetchText(`${proxy.url}/pay/x`, write(undefined))
  t.equal(noKey.status, 502, 'no Idempotency-Key: the failure goes out as it is')
  t.equal(noKey.headers['x-faultline-outcome'], 'failed')
  const read = await fetchText(`${proxy.url}/pay/x`, { headers: { 'idempotency-key': 'r' } })
  t.equal(read.status, 502, 'GET is not a write')
  const big = await fetchText(`${proxy.url}/pay/x`, write('big', 'x'.repeat(64)))
  t.equal(big.status, 502, 'larger than maxBodyBytes')
  await upstream.up((_req, res) => { res.writeHead(401); res.end() })
  const auth = await fetchText(`${proxy.url}/pay/x`, write('auth'))
  t.equal(auth.status, 401, 'auth fails closed: never deferred')
  t.equal((await admin(proxy.adminUrl, '/deferrals')).json().deferrals.length, 0)
})

t.test('each entry says why it was deferred: the failure the chain replaced', async (t) => {
  const upstream = await flakyUpstream(t)
  const breaker = { consecutiveFailures: 1, openMs: 60_000 }
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, {}, { resilience: { breaker } }))
  const refused = JSON.parse((await fetchText(`${proxy.url}/pay/x`, write('down'))).body).id as string
  const shorted = JSON.parse((await fetchText(`${proxy.url}/pay/x`, write('open'))).body).id as string
  t.equal((await admin(proxy.adminUrl, `/deferrals/${refused}`)).json().reason, 'connect', 'the upstream refused the connection')
  t.equal((await admin(proxy.adminUrl, `/deferrals/${shorted}`)).json().reason, 'short_circuited', 'the open breaker refused the request')
})

t.test('generateKey: a request without a key gets one, sent live and on delivery', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, { generateKey: true }))
  const res = await fetchText(`${proxy.url}/pay/x`, write(undefined))
  t.equal(res.status, 202)
  await upstream.up()
  t.ok(await until(() => upstream.received.length === 1))
  t.match(upstream.received[0]!.key, /^[0-9a-f-]{36}$/, 'a made-up key went with the delivery')
})

t.test('entries are delivered in acceptance order', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url))
  const keys = ['k1', 'k2', 'k3', 'k4', 'k5']
  for (const key of keys) t.equal((await fetchText(`${proxy.url}/pay/${key}`, write(key))).status, 202)
  // The first delivery fails once (503): the later ones must not overtake it.
  let failedOnce = false
  await upstream.up((_req, res) => {
    if (!failedOnce) {
      failedOnce = true
      res.writeHead(503)
      res.end()
      return
    }
    res.writeHead(200)
    res.end('ok')
  })
  t.ok(await until(() => upstream.received.length === 6))
  t.same(upstream.received.map((r) => r.key), ['k1', 'k1', 'k2', 'k3', 'k4', 'k5'])
})

t.test('maxAttempts: a dead letter with its last error; retry, cancel and purge', async (t) => {
  const upstream = await flakyUpstream(t)
  await upstream.up((_req, res) => { res.writeHead(503); res.end() })
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, { maxAttempts: 3 }))
  const id = JSON.parse((await fetchText(`${proxy.url}/pay/x`, write('dead'))).body).id as string
  t.ok(await until(async () => (await admin(proxy.adminUrl, `/deferrals/${id}`)).json().state === 'dead'))
  const dead = (await admin(proxy.adminUrl, `/deferrals/${id}`)).json()
  t.equal(dead.attempts, 3)
  t.match(dead.lastError, /HTTP 503 \(after 3 attempts\)/)
  t.match(dead.history, [{ result: 'retry', error: 'HTTP 503' }, { result: 'retry' }, { result: 'dead' }], 'each attempt and its result')
  t.equal(upstream.received.length, 1 + 3, 'the live attempt and three deliveries')
  // The counter moves once the dead letter is on disk (the state shows a moment before).
  t.ok(await until(async () => sumOf(await scrape(proxy), 'faultline_deferral_deliveries_total', { route: 'pay', result: 'dead' }) === 1))
  let m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_deferral_dead_letters', { route: 'pay' }), 1)
  t.equal(sumOf(m, 'faultline_deferral_deliveries_total', { route: 'pay', result: 'retry' }), 2)
  t.equal(sumOf(m, 'faultline_deferral_deliveries_total', { route: 'pay', result: 'dead' }), 1)

  // The operator fixes the upstream and retries the dead letter.
  await upstream.up()
  const retried = await admin(proxy.adminUrl, `/deferrals/${id}/retry`, 'POST')
  t.equal(retried.status, 200)
  t.ok(await until(async () => (await admin(proxy.adminUrl, `/deferrals/${id}`)).json().state === 'delivered'))
  t.equal((await admin(proxy.adminUrl, `/deferrals/${id}/cancel`, 'POST')).status, 409, 'a delivered entry cannot be cancelled')

  await upstream.down()
  const other = JSON.parse((await fetchText(`${proxy.url}/pay/y`, write('cancel-me'))).body).id as string
  t.equal((await admin(proxy.adminUrl, `/deferrals/${other}/cancel`, 'POST')).status, 200)
  t.equal((await admin(proxy.adminUrl, `/deferrals/${other}`)).json().state, 'cancelled')
  t.equal((await admin(proxy.adminUrl, '/deferrals/dead', 'DELETE')).json().purged, 0)
  m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_deferral_queue_depth', { route: 'pay' }), 0)
})

t.test('maxAgeMs: an entry not delivered in time expires to a dead letter', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, { maxAgeMs: 150 }))
  const id = JSON.parse((await fetchText(`${proxy.url}/pay/x`, write('old'))).body).id as string
  t.ok(await until(async () => (await admin(proxy.adminUrl, `/deferrals/${id}`)).json().state === 'dead', 3_000))
  t.match((await admin(proxy.adminUrl, `/deferrals/${id}`)).json().lastError, /expired/)
  await upstream.up()
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.equal(upstream.received.length, 0, 'an expired write is never delivered')
  t.equal(sumOf(await scrape(proxy), 'faultline_deferral_deliveries_total', { route: 'pay', result: 'expired' }), 1)
  t.equal((await admin(proxy.adminUrl, '/deferrals/dead?route=pay', 'DELETE')).json().purged, 1)
})

t.test('a flapping upstream is not stampeded: backoff after each failure, a bounded rate after each success', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, { backoff: { baseMs: 100, maxMs: 100, jitter: 'none' }, ratePerSecond: 20 }))
  for (let i = 0; i < 6; i++) t.equal((await fetchText(`${proxy.url}/pay/${i}`, write(`f${i}`))).status, 202)
  // Every other answer fails.
  const hits: Array<{ at: number, status: number }> = []
  await upstream.up((_req, res) => {
    const status = hits.length % 2 === 0 ? 503 : 200
    hits.push({ at: performance.now(), status })
    res.writeHead(status)
    res.end()
  })
  t.ok(await until(() => hits.length >= 12, 5_000))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(hits.length, 12, 'each entry delivered once after one failure: no extra hits')
  for (let i = 1; i < hits.length; i++) {
    const gap = hits[i]!.at - hits[i - 1]!.at
    if (hits[i - 1]!.status === 503) t.ok(gap >= 95, `after a failure, a backoff (${Math.round(gap)} ms)`)
    else t.ok(gap >= 45, `after a success, the rate limit (${Math.round(gap)} ms)`)
  }
})

t.test('an injected failure is told apart: labelled injected, and the delivery is real', async (t) => {
  const upstream = await flakyUpstream(t)
  await upstream.up()
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, {}, {
    chaos: { enabled: true, budget: 1, faults: [{ kind: 'abort', status: 503, probability: 1, match: { methods: ['POST'] }, first: 1 }] }
  }))
  const res = await fetchText(`${proxy.url}/pay/x`, write('chaos'))
  t.equal(res.status, 202, 'the route\'s policies deferred it: that is what the caller gets')
  const id = JSON.parse(res.body).id as string
  t.ok(await until(() => upstream.received.length === 1), 'delivered to the real upstream, past the fault stage')
  const entry = (await admin(proxy.adminUrl, `/deferrals/${id}`)).json()
  t.equal(entry.injected, true)
  t.equal(entry.reason, 'HTTP 503', 'an answer the chain replaced is named by its status')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_deferrals_accepted_total', { route: 'pay', injected: 'true' }), 1)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'pay', outcome: 'deferred', injected: 'true' }), 1)
})

t.test('admin: every deferral endpoint needs the token, and stored secrets are never shown', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url))
  const res = await fetchText(`${proxy.url}/pay/x`, { method: 'POST', headers: { 'idempotency-key': 's', authorization: 'Bearer sk_live_SECRET', cookie: 'session=SECRET2' }, body: 'card=4242SECRET3' })
  const id = JSON.parse(res.body).id as string
  t.equal((await admin(proxy.adminUrl, '/deferrals', 'GET', null)).status, 401)
  t.equal((await admin(proxy.adminUrl, `/deferrals/${id}`, 'GET', null)).status, 401)
  t.equal((await admin(proxy.adminUrl, `/deferrals/${id}/retry`, 'POST', 'wrong-token-wrong-token')).status, 401)
  const shown = await admin(proxy.adminUrl, `/deferrals/${id}`)
  t.equal(shown.status, 200)
  t.notMatch(shown.body, /SECRET/, 'no credential or body content in the answer')
  t.match(shown.json().request, { bodyBytes: 16 })
  const list = await admin(proxy.adminUrl, '/deferrals')
  t.notMatch(list.body, /SECRET/)
  for (const line of proxy.logs.lines) t.notMatch(JSON.stringify(line), /SECRET/, 'nor in the logs')
  const unknown = await admin(proxy.adminUrl, '/deferrals/nope')
  t.equal(unknown.status, 404)
  t.equal(unknown.json().error, 'no_deferral', 'an unknown id has the admin table\'s code')
  // The stored request still carries them: the delivery needs its credentials.
  await upstream.up()
  t.ok(await until(() => upstream.received.length === 1))
  t.equal(upstream.received[0]!.headers.authorization, 'Bearer sk_live_SECRET')
})

t.test('allowHeaders: only the listed headers (and the key) are stored and replayed', async (t) => {
  const upstream = await flakyUpstream(t)
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, { allowHeaders: ['x-tenant'] }))
  await fetchText(`${proxy.url}/pay/x`, { method: 'POST', headers: { 'idempotency-key': 'h', 'x-tenant': 'acme', authorization: 'Bearer nope' }, body: '{}' })
  await upstream.up()
  t.ok(await until(() => upstream.received.length === 1))
  const h = upstream.received[0]!.headers
  t.equal(h['x-tenant'], 'acme')
  t.equal(h['idempotency-key'], 'h')
  t.equal(h.authorization, undefined, 'not in the allow-list: never stored')
})
