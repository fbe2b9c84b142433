/**
 * A proxy with every policy and fault kind the dashboard and alerts read,
 * in front of real upstreams on 127.0.0.1, and a workload that makes every
 * faultline series exist: retries that succeed and fail, a retry budget
 * that runs out, a breaker that opens, an auth guard that trips, cache
 * hits, stale answers and misses, injected faults, a bulkhead, and writes
 * deferred on a dead upstream (queue, retried deliveries).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startProxy, startUpstream, fetchText, route, type StartedProxy, type Teardown } from '../helpers.js'

export interface BusyProxy {
  proxy: StartedProxy
  /** One round of mixed traffic; safe to repeat. */
  round: () => Promise<void>
  /** Upstream host:port labels, by route. */
  upstreams: { shop: string, payments: string }
}

export async function startBusyProxy (t: Teardown, extra: Record<string, unknown> = {}): Promise<BusyProxy> {
  // shop: healthy, then failing, then flaky (every other answer 503), by phase.
  let phase: 'healthy' | 'failing' | 'flaky' = 'healthy'
  let flip = 0
  const shop = await startUpstream(t, (req, res) => {
    const path = req.url ?? ''
    if (path.startsWith('/shop/denied')) { res.statusCode = 401; res.end('who are you?'); return }
    const fail = phase === 'failing' || (phase === 'flaky' && flip++ % 2 === 0)
    if (fail) { res.statusCode = 503; res.end('busy'); return }
    // /shop/fresh stays fresh for a minute (a cache hit); /shop/old has no freshness (served stale).
    if (path.startsWith('/shop/fresh')) res.setHeader('cache-control', 'max-age=60')
    res.end('{"ok":true}')
  })
  // payments: always 503, so its breaker opens, and the writes it defers stay queued.
  const payments = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('down') })
  const journal = await mkdtemp(join(tmpdir(), 'faultline-workload-'))
  t.teardown(async () => { await rm(journal, { recursive: true, force: true }) })

  const proxy = await startProxy(t, {
    deferral: { dir: journal },
    ...extra,
    routes: [
      route('shop', '/shop', shop.url, {
        resilience: {
          timeoutMs: 2000,
          retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 2 }, budgetRatio: 0.1, budgetMinRetries: 2 },
          authGuard: { failures: 2, blockMs: 200 },
          bulkhead: { maxConcurrent: 8, maxQueue: 8 },
          fallback: ['cache']
        },
        chaos: {
          enabled: true,
          seed: 7,
          faults: [
            { kind: 'abort', status: 503, probability: 0.1 },
            { kind: 'latency', ms: 1, probability: 0.2 }
          ]
        }
      }),
      route('payments', '/payments', payments.url, {
        resilience: {
          timeoutMs: 2000,
          breaker: { consecutiveFailures: 3, openMs: 150 },
          fallback: [{ defer: { methods: ['POST'], backoff: { baseMs: 50, maxMs: 500 }, maxAttempts: 3 } }]
        }
      })
    ]
  })

  const get = async (path: string): Promise<void> => { await fetchText(proxy.url + path, { timeoutMs: 5000 }) }
  let writes = 0
  const round = async (): Promise<void> => {
    phase = 'healthy'
    for (const p of ['/shop/fresh/1', '/shop/old/1', '/shop/items/1', '/shop/items/2']) await get(p)
    phase = 'flaky'
    for (let i = 0; i < 6; i++) await get(`/shop/items/${i}`)
    phase = 'failing'
    for (const p of ['/shop/fresh/1', '/shop/old/1', '/shop/never/1', '/shop/items/9', '/shop/items/9']) await get(p)
    for (let i = 0; i < 3; i++) await get('/shop/denied')
    for (let i = 0; i < 5; i++) await get('/payments/charge')
    await fetchText(`${proxy.url}/payments/charge`, { method: 'POST', headers: { 'idempotency-key': `w${writes++}` }, body: '{}', timeoutMs: 5000 })
    phase = 'healthy'
  }
  await round()
  return { proxy, round, upstreams: { shop: `127.0.0.1:${shop.port}`, payments: `127.0.0.1:${payments.port}` } }
}
