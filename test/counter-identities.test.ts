/**
 * issue 13: counters that add up. A mixed workload (real 503s, injected
 * aborts, injected delays, slowHeaders holds cut by the attempt timeout,
 * retries) and the identities between what the client saw, what the
 * upstream saw and every counter.
 */
import t from 'tap'
import { request } from 'undici'
import { route, scrape, startProxy, startUpstream, sumOf } from './helpers.js'

t.test('client counts, upstream counts and every counter agree under mixed chaos', async (t) => {
  let hits = 0
  let served503 = 0
  const upstream = await startUpstream(t, (_req, res) => {
    hits++
    // Every fourth request the upstream itself fails.
    if (hits % 4 === 0) { served503++; res.statusCode = 503; res.end('real failure'); return }
    res.end('ok')
  })
  const proxy = await startProxy(t, {
    routes: [route('mix', '/mix', upstream.url, {
      resilience: {
        timeoutMs: 3_000,
        attemptTimeoutMs: 150,
        retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 2, jitter: 'none' }, budgetRatio: 10, budgetMinRetries: 10_000 }
      },
      chaos: {
        enabled: true,
        budget: 1,
        seed: 13,
        faults: [
          { name: 'abort', kind: 'abort', status: 503, probability: 0.2 },
          { name: 'delay', kind: 'latency', ms: 5, probability: 0.2 },
          { name: 'held', kind: 'slowHeaders', ms: 400, probability: 0.1 }
        ]
      }
    })]
  })
  const N = 120
  const seen: Array<{ status: number, attempts: number }> = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < N) {
      next++
      const res = await request(`${proxy.url}/mix/x`, { headersTimeout: 10_000, bodyTimeout: 10_000 })
      await res.body.text()
      seen.push({ status: res.statusCode, attempts: Number(res.headers['x-faultline-attempts']) })
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  t.equal(seen.length, N)
  const samples = await scrape(proxy)
  const count = (name: string, labels: Record<string, string> = {}): number => sumOf(samples, name, { route: 'mix', ...labels })
  const attempts = seen.reduce((n, r) => n + r.attempts, 0)
  const ok = seen.filter((r) => r.status === 200).length
  const injectedAborts = count('faultline_faults_injected_total', { fault: 'abort' })
  t.ok(injectedAborts > 0 && count('faultline_faults_injected_total', { fault: 'held' }) > 0 && served503 > 0, 'the workload mixed real and injected failures')
  t.ok(seen.every((r) => r.attempts >= 1), 'every answer counts at least one attempt, injected or real')

  t.equal(count('faultline_requests_total'), N, 'requests: client side = counter')
  t.equal(count('faultline_retries_total'), attempts - N, 'retries = attempts - requests (a retry is counted when sent)')
  // Every attempt reached the upstream unless an injected abort answered it, or (on a loaded machine) the
  // 150 ms attempt timeout cut it while it still waited for a connection: each of those is a counted timeout.
  const unsent = attempts - injectedAborts - hits
  t.ok(unsent >= 0, `upstream hits (${hits}) never exceed attempts - injected aborts (${attempts - injectedAborts})`)
  t.ok(unsent <= count('faultline_upstream_errors_total', { error_class: 'timeout' }), `an attempt that never reached the upstream (${unsent}) is a counted timeout`)
  t.equal(count('faultline_upstream_errors_total'), attempts - ok, 'upstream errors = failed attempts (one attempt, one error at most)')
  const logged = proxy.logs.lines.filter((l) => l.msg === 'request')
  t.equal(logged.length, N)
  t.equal(logged.reduce((n, l) => n + Number(l.attempts), 0), attempts, 'the log lines count the same attempts as the headers')
})
