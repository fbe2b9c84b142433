/**
 * Who ends the deliverer's work: shutdown aborts a delivery in flight (not
 * counted as an attempt), a reload that drops `defer` stops the route's
 * deliverer; and what wakes it: the route's breaker closing ends its
 * backoff at once.
 */
import t from 'tap'
import { parseConfig } from '../../src/config/load.js'
import { JournalStore } from '../../src/deferral/journal-store.js'
import { fetchText, startProxy } from '../helpers.js'
import { admin, deferConfig, flakyUpstream, tempDir, until } from './fixtures.js'

const write = (key: string): { method: string, headers: Record<string, string>, body: string } => ({ method: 'POST', headers: { 'idempotency-key': key }, body: '{}' })

t.test('shutdown aborts the delivery in flight at once; the entry stays pending for the next start', async (t) => {
  const upstream = await flakyUpstream(t)
  const dir = await tempDir(t)
  const proxy = await startProxy(t, deferConfig(dir, upstream.url, { attemptTimeoutMs: 10_000 }))
  const id = JSON.parse((await fetchText(`${proxy.url}/pay/x`, write('hang'))).body).id as string
  // The upstream comes back but never answers: the delivery hangs.
  await upstream.up(() => {})
  t.ok(await until(() => upstream.received.length === 1), 'a delivery is in flight')
  const attempts = (await admin(proxy.adminUrl, `/deferrals/${id}`)).json().attempts as number
  const started = Date.now()
  await proxy.faultline.close()
  t.ok(Date.now() - started < 3_000, `close() did not wait for the hanging delivery (${Date.now() - started} ms)`)
  const store = await JournalStore.open({ dir, retainMs: 60_000, compactBytes: 1024 * 1024 })
  t.teardown(async () => { await store.close() })
  const entry = await store.get(id)
  t.equal(entry?.state, 'pending', 'still pending')
  t.equal(entry?.attempts, attempts, 'the aborted delivery is not counted as an attempt')
})

t.test('a reload that drops defer stops the route\'s deliverer; one that keeps it keeps it', async (t) => {
  const upstream = await flakyUpstream(t)
  const dir = await tempDir(t)
  const proxy = await startProxy(t, deferConfig(dir, upstream.url))
  const before = proxy.faultline.deferrals.deliverer('pay')
  t.ok(before, 'a deliverer for the route')
  proxy.faultline.applyConfig(parseConfig({ ...deferConfig(dir, upstream.url, { ratePerSecond: 7 }), listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0, token: 'deferral-test-token-0123456789' } }, 'test'))
  t.ok(await until(() => proxy.faultline.deferrals.deliverer('pay') === before), 'the same deliverer, new options')
  const plain = deferConfig(dir, upstream.url) as { routes: Array<{ resilience: Record<string, unknown> }> }
  plain.routes[0]!.resilience = { timeoutMs: 2_000 }
  proxy.faultline.applyConfig(parseConfig({ ...plain, listen: { host: '127.0.0.1', port: 0 }, admin: { host: '127.0.0.1', port: 0, token: 'deferral-test-token-0123456789' } }, 'test'))
  t.ok(await until(() => proxy.faultline.deferrals.deliverer('pay') === undefined), 'stopped')
  t.ok(before!.stopped)
})

t.test('the breaker closing ends the deliverer\'s backoff at once', async (t) => {
  const upstream = await flakyUpstream(t)
  // A long backoff and a breaker that stays open: only the breaker's closing can make the delivery prompt.
  const proxy = await startProxy(t, deferConfig(await tempDir(t), upstream.url, { backoff: { baseMs: 20_000, maxMs: 20_000, jitter: 'none' } }, {
    resilience: { breaker: { consecutiveFailures: 1, openMs: 60_000 } }
  }))
  t.equal((await fetchText(`${proxy.url}/pay/x`, write('b'))).status, 202)
  await upstream.up()
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(upstream.received.length, 0, 'not delivered while the breaker is open and the backoff runs')
  const reset = await admin(proxy.adminUrl, '/routes/pay/breaker/reset', 'POST')
  t.equal(reset.status, 200)
  t.ok(await until(() => upstream.received.length === 1, 2_000), 'delivered promptly once the breaker closed')
})
