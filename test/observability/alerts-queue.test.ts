/**
 * docs/OBSERVABILITY.md on webhook delivery, against a real receiver on
 * 127.0.0.1: a full queue drops its oldest alert (counted), and a
 * receiver's Retry-After is waited out before the next try.
 */
import t from 'tap'
import { route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'

t.test('a full queue drops the oldest alert, counted as dropped; the rest are delivered in order', async (t) => {
  const routes: string[] = []
  let release = (): void => {}
  const held = new Promise<void>((resolve) => { release = resolve })
  const hook = await startUpstream(t, (req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      routes.push((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { route: string }).route)
      // The first post hangs until the test lets it go: the others queue behind it.
      if (routes.length === 1) void held.then(() => res.end('ok'))
      else res.end('ok')
    })
  })
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: `${hook.url}/hook`, maxQueue: 2, perMinute: 100, timeoutMs: 10_000 }] },
    routes: [route('a', '/a', 'http://127.0.0.1:1')]
  })
  for (let i = 0; i < 5; i++) proxy.faultline.alerts.emit({ type: 'guardrail_halt', route: `r${i}` })
  for (let i = 0; i < 100 && routes.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10))
  t.same(routes, ['r0'], 'the first alert is being posted')
  t.equal(sumOf(await scrape(proxy), 'faultline_alerts_total', { type: 'guardrail_halt', result: 'dropped' }), 2, 'r1 and r2 made room for r3 and r4')
  release()
  await proxy.faultline.alerts.idle()
  t.same(routes, ['r0', 'r3', 'r4'], 'the newest two were kept, in order')
  t.equal(sumOf(await scrape(proxy), 'faultline_alerts_total', { type: 'guardrail_halt', result: 'sent' }), 3)
})

t.test('the receiver\'s Retry-After is waited out before the next try', async (t) => {
  const postedAt: number[] = []
  const hook = await startUpstream(t, (req, res) => {
    req.resume()
    req.on('end', () => {
      postedAt.push(performance.now())
      if (postedAt.length === 1) { res.writeHead(503, { 'retry-after': '1' }).end('busy'); return }
      res.end('ok')
    })
  })
  // Backoff alone would wait at most 1 ms.
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: `${hook.url}/hook`, attempts: 3, backoff: { baseMs: 1, maxMs: 5_000 } }] },
    routes: [route('a', '/a', 'http://127.0.0.1:1')]
  })
  proxy.faultline.alerts.emit({ type: 'guardrail_halt', route: 'a' })
  await proxy.faultline.alerts.idle()
  t.equal(postedAt.length, 2, 'a 503, then accepted')
  const gap = postedAt[1]! - postedAt[0]!
  t.ok(gap >= 950, `the second try came ${Math.round(gap)} ms after the first: Retry-After: 1 was honoured`)
  t.equal(sumOf(await scrape(proxy), 'faultline_alerts_total', { type: 'guardrail_halt', result: 'sent' }), 1)
})

t.test('a Retry-After in its HTTP-date form is waited out too; one RFC 9110 does not allow is ignored', async (t) => {
  const postedAt: number[] = []
  let retryAfter = (): string => new Date(Date.now() + 2_000).toUTCString()
  const hook = await startUpstream(t, (req, res) => {
    req.resume()
    req.on('end', () => {
      postedAt.push(performance.now())
      if (postedAt.length % 2 === 1) { res.writeHead(503, { 'retry-after': retryAfter() }).end('busy'); return }
      res.end('ok')
    })
  })
  // Backoff alone would wait at most 1 ms.
  const proxy = await startProxy(t, {
    alerts: { webhooks: [{ url: `${hook.url}/hook`, attempts: 3, backoff: { baseMs: 1, maxMs: 5_000 } }] },
    routes: [route('a', '/a', 'http://127.0.0.1:1')]
  })
  proxy.faultline.alerts.emit({ type: 'guardrail_halt', route: 'a' })
  await proxy.faultline.alerts.idle()
  t.equal(postedAt.length, 2, 'a 503, then accepted')
  // An HTTP-date has whole seconds: 2 s ahead is between 1 and 2 s away.
  const gap = postedAt[1]! - postedAt[0]!
  t.ok(gap >= 900, `the second try came ${Math.round(gap)} ms after the first: the HTTP-date was honoured`)
  // "1.5" is neither delay-seconds nor an HTTP-date: ignored, the backoff (at most 1 ms) decides.
  retryAfter = () => '1.5'
  proxy.faultline.alerts.emit({ type: 'guardrail_halt', route: 'b' })
  await proxy.faultline.alerts.idle()
  t.equal(postedAt.length, 4)
  t.ok(postedAt[3]! - postedAt[2]! < 900, 'an invalid Retry-After is not waited for')
})
