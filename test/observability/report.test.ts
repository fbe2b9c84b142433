/**
 * GET /report against a real proxy and real upstreams: counts that can be
 * worked out from the traffic sent, suggestions that follow from them, and
 * the bounds that keep the report's memory fixed.
 */
import t from 'tap'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'
import { normalisePath, TopFailures } from '../../src/failure-report/endpoints.js'
import { RouteRecord, SLOT_MS, SLOTS } from '../../src/failure-report/recorder.js'
import { startBusyProxy } from './workload.js'

interface Summary {
  requests: number
  failed: number
  errorClasses: Record<string, number>
  fallbacks: Record<string, number>
  shortCircuited: number
  retries: { made: number, succeeded: number, successRate: number | null, byClass: Record<string, { made: number, succeeded: number }> }
  sampleError?: { status: number, errorClass?: string, path: string }
  injected: { requests: number, failed: number, shortCircuited: number, fallbacks: number }
}
interface Report { routes: Array<{ route: string, upstreams: Array<{ upstream: string, windows: Record<'5m' | '1h', Summary> }>, worstEndpoints: Array<{ method: string, path: string, failures: number }>, suggestions: string[] }> }

async function report (adminUrl: string, query = ''): Promise<Report> {
  const res = await fetchText(`${adminUrl}/report${query}`)
  if (res.status !== 200) throw new Error(`GET /report${query}: ${res.status} ${res.body}`)
  return JSON.parse(res.body) as Report
}

t.test('paths are normalised so ids do not multiply endpoints', async (t) => {
  t.equal(normalisePath('/orders/123/items?x=1'), '/orders/:id/items')
  t.equal(normalisePath('/u/0b8e2f1c-6f6d-4d5e-9c1a-2f3b4c5d6e7f'), '/u/:id')
  t.equal(normalisePath('/blob/9f86d081884c7d659a2feaa0c55ad015'), '/blob/:id')
  t.equal(normalisePath('/catalog/shoes'), '/catalog/shoes', 'words stay')
  t.equal(normalisePath('/a/b/c/d/e/f/g/h'), '/a/b/c/d/e/f/...', 'depth is capped')
  t.ok(normalisePath('/' + 'x'.repeat(1000)).length <= 163, 'length is capped')
  t.equal(normalisePath('/'), '/')
})

t.test('worst endpoints: bounded memory, heavy hitters still found', async (t) => {
  const top = new TopFailures(8)
  for (let i = 0; i < 2000; i++) {
    top.record('GET', `/noise/n${i}x/${i % 3 === 0 ? 'a' : 'b'}${i}`, 'reset')
    if (i % 4 === 0) top.record('POST', `/checkout/${i}`, 'http_5xx')
  }
  t.ok(top.size <= 8, `${top.size} counters kept`)
  const [first] = top.top(3)
  t.equal(first?.path, '/checkout/:id')
  t.equal(first?.method, 'POST')
  t.ok((first?.failures ?? 0) >= 500, 'its count is at least the true count (Space-Saving over-counts, never under)')
})

t.test('the slot ring forgets traffic older than an hour', async (t) => {
  const r = new RouteRecord()
  const at = 1_700_000_000_000
  const req = { upstream: 'u:1', method: 'GET', req: { url: '/x' }, outcome: 'failed' as const, attempts: 1, errorClass: 'reset' as const, fallback: undefined }
  r.record(req, 502, at)
  r.record(req, 502, at + SLOT_MS * SLOTS)
  const up = r.upstreams.get('u:1')!
  t.equal(up.recent(at + SLOT_MS * SLOTS, 60 * 60_000).reduce((a, s) => a + s.requests, 0), 1, 'the hour-old slot was reused, not summed')
  t.equal(up.slots.length, SLOTS, 'fixed number of slots')
})

t.test('GET /report: per route and upstream, from real traffic', async (t) => {
  const busy = await startBusyProxy(t)
  await busy.round()
  const r = await report(busy.proxy.adminUrl)
  t.same(r.routes.map((x) => x.route).sort(), ['payments', 'shop'])
  const shop = r.routes.find((x) => x.route === 'shop')!
  t.equal(shop.upstreams[0]?.upstream, busy.upstreams.shop)
  const w = shop.upstreams[0]!.windows['5m']
  t.equal(w.requests + w.injected.requests, 2 * 18, 'every request of two rounds: real ones, and those a fault shaped beside them')
  t.ok(w.injected.requests > 0, 'the injected faults are counted apart')
  t.ok(w.errorClasses.http_5xx! > 0, 'http_5xx failures seen')
  t.ok(w.errorClasses.auth! > 0, 'auth failures seen')
  t.ok(w.retries.made > 0 && w.retries.succeeded > 0, 'retries made, some succeeded')
  t.ok((w.retries.successRate ?? 2) <= 1, 'a share')
  t.ok(w.fallbacks.cache! > 0, 'cache fallback used')
  t.match(w.sampleError, { path: /^\/shop\// }, 'a sample failure for context')
  t.same(shop.upstreams[0]!.windows['1h'].requests, w.requests, 'the hour holds the last five minutes')
  t.ok(shop.worstEndpoints.some((e) => e.path === '/shop/items/:id' && e.method === 'GET'), 'ids folded in the worst endpoints')
  const payments = r.routes.find((x) => x.route === 'payments')!.upstreams[0]!.windows['5m']
  t.ok(payments.shortCircuited > 0, 'the open breaker shows as short-circuited requests')

  const one = await report(busy.proxy.adminUrl, '?route=payments&top=1')
  t.same(one.routes.map((x) => x.route), ['payments'])
  t.ok(one.routes[0]!.worstEndpoints.length <= 1)
  t.equal((await fetchText(`${busy.proxy.adminUrl}/report?route=nope`)).status, 404)
  t.equal((await fetchText(`${busy.proxy.adminUrl}/report?top=0`)).status, 400)
  t.equal((await fetchText(`${busy.proxy.adminUrl}/report?top=abc`)).status, 400)
})

t.test('suggestions follow from the numbers', async (t) => {
  const down = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('down') })
  const proxy = await startProxy(t, {
    routes: [
      route('hopeless', '/hopeless', down.url, { resilience: { retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 1 }, budgetRatio: 10, budgetMinRetries: 100 } } }),
      route('bare', '/bare', down.url)
    ]
  })
  for (let i = 0; i < 15; i++) await fetchText(`${proxy.url}/hopeless/item/${i}`)
  for (let i = 0; i < 60; i++) await fetchText(`${proxy.url}/bare/thing`)
  const r = await report(proxy.adminUrl)
  const hopeless = r.routes.find((x) => x.route === 'hopeless')!
  const w = hopeless.upstreams[0]!.windows['5m']
  t.equal(w.requests, 15)
  t.equal(w.failed, 15)
  t.same(w.retries.byClass.http_5xx, { made: 30, succeeded: 0, successRate: 0 }, 'two retries per request, none succeeded')
  t.ok(hopeless.suggestions.some((s) => /retries after http_5xx failures succeed 0% of the time \(0 of 30\) — fewer attempts would do/.test(s)), hopeless.suggestions.join(' | '))
  t.ok(hopeless.suggestions.some((s) => /GET \/hopeless\/item\/:id accounts for 100% of failures/.test(s)), 'the worst endpoint is named')
  const bare = r.routes.find((x) => x.route === 'bare')!
  t.ok(bare.suggestions.some((s) => /100% of requests met a transient failure .* no retry/.test(s)), bare.suggestions.join(' | '))
  t.notOk(bare.suggestions.some((s) => /retries after/.test(s)), 'no retry advice without retries')
})
