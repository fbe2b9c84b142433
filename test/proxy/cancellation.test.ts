/**
 * A client that leaves takes its request with it: out of the bulkhead
 * queue at once, out of a retry backoff or Retry-After sleep at once, out
 * of an injected delay at once; no slot is held for it. And Retry-After is
 * read only in the two forms RFC 9110 allows.
 */
import { request as httpRequest } from 'node:http'
import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'
import { scriptedUpstream } from '../policies/fixtures.js'
import { retryAfterMs } from '../../src/policies/retry.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Sends a GET and destroys the connection after `ms`, before any answer. */
function leaveAfter (url: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent: false })
    req.on('error', () => { resolve() })
    req.on('response', (res) => { res.resume(); resolve() })
    req.end()
    setTimeout(() => { req.destroy(); resolve() }, ms)
  })
}

async function until (check: () => boolean, ms = 3_000): Promise<void> {
  for (const end = performance.now() + ms; !check() && performance.now() < end;) await sleep(10)
}

t.test('a queued client that leaves gives its queue place up at once', async (t) => {
  const held: Array<() => void> = []
  const upstream = await startUpstream(t, (_req, res) => { held.push(() => { res.end('done') }) })
  t.teardown(() => { for (const release of held) release() })
  const proxy = await startProxy(t, {
    routes: [route('b', '/b', upstream.url, { resilience: { timeoutMs: 10_000, bulkhead: { maxConcurrent: 1, maxQueue: 1 } } })]
  })
  const first = fetchText(`${proxy.url}/b/one`)
  await until(() => upstream.hits() === 1)
  await leaveAfter(`${proxy.url}/b/two`, 200) // queued, then gone
  const third = fetchText(`${proxy.url}/b/three`)
  await sleep(200)
  held.shift()?.()
  t.equal((await first).status, 200)
  await until(() => held.length === 1)
  held.shift()?.()
  const answer = await third
  t.equal(answer.status, 200, 'the third client took the place the second gave up, not a 503')
  t.equal(upstream.hits(), 2, 'the client that left never reached the upstream')
})

t.test('a client that leaves during a Retry-After sleep ends it at once and frees its slot', async (t) => {
  const upstream = await scriptedUpstream(t, [{ status: 503, headers: { 'retry-after': '4' } }, 200, 200])
  const proxy = await startProxy(t, {
    routes: [route('r', '/r', upstream.url, {
      resilience: {
        timeoutMs: 8_000,
        retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 5 }, maxRetryAfterMs: 5_000 },
        bulkhead: { maxConcurrent: 1, maxQueue: 0 }
      }
    })]
  })
  await leaveAfter(`${proxy.url}/r/a`, 300)
  await sleep(100)
  const started = performance.now()
  const next = await fetchText(`${proxy.url}/r/b`)
  t.equal(next.status, 200, 'the slot was free: not rejected_bulkhead')
  t.ok(performance.now() - started < 2_000, 'served at once, not after the 4 s sleep')
  await sleep(300)
  t.equal(upstream.hits(), 2, 'no retry was made for the client that left')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'r', outcome: 'cancelled' }), 1)
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'r', outcome: 'rejected_bulkhead' }), 0)
})

t.test('a client that leaves during an injected delay frees its slot at once', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    routes: [route('d', '/d', upstream.url, {
      resilience: { timeoutMs: 8_000, bulkhead: { maxConcurrent: 1, maxQueue: 0 } },
      chaos: { enabled: true, allowHeaderTriggers: true, faults: [] }
    })]
  })
  const slow = new Promise<void>((resolve) => {
    const req = httpRequest(`${proxy.url}/d/slow`, { agent: false, headers: { 'x-faultline-fault': 'latency=4000' } })
    req.on('error', () => { resolve() })
    req.end()
    setTimeout(() => { req.destroy(); resolve() }, 300)
  })
  await slow
  await sleep(100)
  const next = await fetchText(`${proxy.url}/d/next`)
  t.equal(next.status, 200, 'not rejected: the delayed request gave its slot back')
  t.equal(upstream.hits(), 1, 'the delayed request never went upstream')
})

t.test('Retry-After: delay-seconds or an HTTP-date, nothing else', async (t) => {
  const now = Date.parse('Sun, 06 Nov 1994 08:49:00 GMT')
  t.equal(retryAfterMs('7', now), 7000)
  t.equal(retryAfterMs('Sun, 06 Nov 1994 08:49:37 GMT', now), 37_000, 'IMF-fixdate')
  t.equal(retryAfterMs('Sunday, 06-Nov-94 08:49:37 GMT', now), 37_000, 'RFC 850 date')
  t.equal(retryAfterMs('Sun Nov  6 08:49:37 1994', now), 37_000, 'asctime date, read as GMT')
  t.equal(retryAfterMs('Sun, 06 Nov 1994 08:48:00 GMT', now), 0, 'a past date: go now')
  for (const junk of ['1.5', '-1', '+3', '2099-01-01', 'soon', '', '1994-11-06T08:49:37Z', 'Sun, 06 Nov 1994 08:49:37', '3 s']) {
    t.equal(retryAfterMs(junk, now), undefined, `${JSON.stringify(junk)} is ignored`)
  }
})

t.test('an unreadable Retry-After is ignored, not read as a date far away', async (t) => {
  // Date.parse('2099-01-01') is a date decades out: read that way it would end the retries.
  const upstream = await scriptedUpstream(t, [{ status: 503, headers: { 'retry-after': '2099-01-01' } }, 200])
  const proxy = await startProxy(t, {
    routes: [route('j', '/j', upstream.url, { resilience: { timeoutMs: 3_000, retry: { attempts: 2, backoff: { baseMs: 1, maxMs: 5 } } } })]
  })
  const res = await fetchText(`${proxy.url}/j`)
  t.equal(res.status, 200, 'retried after the usual backoff')
  t.equal(upstream.hits(), 2)
})
