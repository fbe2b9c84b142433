/**
 * `faultline demo`: the whole product on an embedded default. Starts the
 * demo upstream and the proxy (config/demo.yaml) on free loopback ports,
 * sends a bounded burst of traffic through the proxy, then prints what the
 * client saw beside what the proxy's own /metrics recorded.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Pool, request } from 'undici'
import { loadConfigFile } from '../config/load.js'
import { Faultline } from '../faultline.js'
import { createLogger } from '../log.js'
import { parsePrometheusText, sumOf } from '../metrics/text.js'
import { OUTCOMES } from '../metrics/metrics.js'
import { ERROR_CLASSES } from '../core/errors.js'
import { startDemoUpstream, type DemoUpstream } from './upstream.js'
import { DEMO_CALLS, type DemoCall } from './client.js'
import { reportMarkdown, type ExperimentReport } from '../intent/experiment-report.js'

const DEMO_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url))

type Call = DemoCall

/** How many of each demo call the burst sends: bounded in count (and each call by the client's own 5 s timeout). */
const COUNTS: Record<string, number> = { catalog: 300, pricing: 200, inventory: 200, orders: 100 }
const PLAN: Array<{ call: Call, count: number }> = DEMO_CALLS.map((call) => ({ call, count: COUNTS[call.route] ?? 100 }))
const CONCURRENCY = 8

interface Tally { requests: number, byStatus: Map<string, number>, latencies: number[], transportErrors: number }

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

function pad (value: string | number, width: number): string {
  return String(value).padEnd(width)
}

/** `experimentMs`: traffic per experiment mode (the CLI's demo: EXPERIMENT_MS; a test may ask for less). */
export async function runDemo (out: NodeJS.WritableStream = process.stdout, options: { experimentMs?: number } = {}): Promise<number> {
  const upstream = await startDemoUpstream({ seed: 7 })
  // The deferral journal of this run only: gone with it.
  const journal = await mkdtemp(join(tmpdir(), 'faultline-demo-'))
  const env = { ...process.env, DEMO_UPSTREAM_URL: upstream.url, FAULTLINE_PORT: '0', FAULTLINE_ADMIN_PORT: '0', FAULTLINE_DEFERRAL_DIR: journal }
  const config = await loadConfigFile(DEMO_CONFIG, env)
  // The per-request log lines would drown the summary; the report tells the rest.
  const faultline = await Faultline.start(config, { configFile: DEMO_CONFIG, logger: createLogger('error') })
  const base = `http://127.0.0.1:${faultline.proxyPort}`
  const client = new Pool(base, { connections: CONCURRENCY })
  const tallies = new Map<string, Tally>()
  const queue: Call[] = []
  for (const { call, count } of PLAN) for (let i = 0; i < count; i++) queue.push(call)
  // Interleave the routes the way real traffic would arrive.
  queue.sort((a, b) => (a.path.length * 7919 + a.route.length) % 13 - (b.path.length * 7919 + b.route.length) % 13)
  out.write(`faultline demo: ${queue.length} requests through ${base} to the demo upstream at ${upstream.url}\n\n`)

  let next = 0
  const started = performance.now()
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const call = queue[next++]!
      const tally: Tally = tallies.get(call.route) ?? { requests: 0, byStatus: new Map<string, number>(), latencies: [], transportErrors: 0 }
      tallies.set(call.route, tally)
      const t0 = performance.now()
      try {
        const res = await client.request({
          method: call.method,
          path: call.path,
          body: call.body,
          headers: call.body ? { 'content-type': 'application/json' } : {},
          headersTimeout: 5000,
          bodyTimeout: 5000
        })
        await res.body.dump()
        const key = `${Math.floor(res.statusCode / 100)}xx`
        tally.byStatus.set(key, (tally.byStatus.get(key) ?? 0) + 1)
      } catch {
        tally.transportErrors++
      }
      tally.requests++
      tally.latencies.push(performance.now() - t0)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const elapsed = (performance.now() - started) / 1000

  const metricsText = await (await request(`http://127.0.0.1:${faultline.adminPort}/metrics`)).body.text()
  const samples = parsePrometheusText(metricsText)

  out.write(`${pad('route', 11)}${pad('requests', 10)}${pad('2xx', 6)}${pad('4xx', 6)}${pad('5xx', 6)}${pad('p50 ms', 9)}${pad('p99 ms', 9)}what the proxy recorded (/metrics)\n`)
  let consistent = true
  for (const { call } of PLAN) {
    const t = tallies.get(call.route)!
    const sorted = [...t.latencies].sort((a, b) => a - b)
    const outcomes = OUTCOMES.map((o) => [o, sumOf(samples, 'faultline_requests_total', { route: call.route, outcome: o })] as const).filter(([, n]) => n > 0)
    const errors = ERROR_CLASSES.map((c) => [c, sumOf(samples, 'faultline_upstream_errors_total', { route: call.route, error_class: c })] as const).filter(([, n]) => n > 0)
    const recorded = outcomes.reduce((sum, [, n]) => sum + n, 0)
    if (recorded !== t.requests || t.transportErrors > 0) consistent = false
    const described = outcomes.map(([o, n]) => `${o}=${n}`).join(' ') + (errors.length ? `; upstream errors: ${errors.map(([c, n]) => `${c}=${n}`).join(' ')}` : '')
    out.write(`${pad(call.route, 11)}${pad(t.requests, 10)}${pad(t.byStatus.get('2xx') ?? 0, 6)}${pad(t.byStatus.get('4xx') ?? 0, 6)}${pad(t.byStatus.get('5xx') ?? 0, 6)}${pad(percentile(sorted, 50).toFixed(1), 9)}${pad(percentile(sorted, 99).toFixed(1), 9)}${described}\n`)
  }
  out.write(`\n${queue.length} requests in ${elapsed.toFixed(1)} s, ${CONCURRENCY} at a time.\n`)
  out.write('pricing: the upstream is slow one call in eight; the route\'s 250 ms deadline turns those into 504s (class timeout).\n')
  out.write('inventory: the upstream answers 503 one call in five; with no retry or fallback yet, the caller sees each one.\n')
  out.write(`metrics: http://127.0.0.1:${faultline.adminPort}/metrics while it runs; \`docker compose up\` puts the same in Grafana.\n`)
  out.write(consistent ? 'check: every request was answered and counted once in /metrics.\n' : 'check FAILED: the client\'s counts and /metrics disagree.\n')

  const delivered = await deferralScene(faultline, upstream, client, out)

  await runExperiments(faultline, client, out, options.experimentMs ?? EXPERIMENT_MS)

  await client.close()
  await faultline.close()
  await upstream.close()
  await rm(journal, { recursive: true, force: true })
  return consistent && delivered ? 0 : 1
}

/**
 * The `defer` fallback: the orders service goes down, a write with an
 * Idempotency-Key is stored and answered 202, the same key again gets the
 * same deferral, the service comes back and the write is delivered once;
 * the caller's retry is then answered from that delivery. Bounded: 5 s.
 */
async function deferralScene (faultline: Faultline, upstream: DemoUpstream, client: Pool, out: NodeJS.WritableStream): Promise<boolean> {
  const send = async (): Promise<{ status: number, id: string | undefined }> => {
    const res = await client.request({
      method: 'POST',
      path: '/api/orders',
      body: '{"sku":"lamp","qty":1}',
      headers: { 'content-type': 'application/json', 'idempotency-key': 'demo-order-1' },
      headersTimeout: 5000,
      bodyTimeout: 5000
    })
    await res.body.dump()
    return { status: res.statusCode, id: res.headers['x-faultline-deferral'] as string | undefined }
  }
  out.write('\ndeferral: the orders service goes down; a write with an Idempotency-Key meets it:\n')
  upstream.setOrdersDown(true)
  const before = upstream.orders()
  const first = await send()
  out.write(`  POST /api/orders (Idempotency-Key: demo-order-1)  -> ${first.status}, deferral ${first.id ?? '?'} (stored before the answer)\n`)
  const again = await send()
  out.write(`  the same key again                                -> ${again.status}, ${again.id === first.id ? 'the same deferral, not a second entry' : `deferral ${again.id ?? '?'}`}\n`)
  const t0 = performance.now()
  upstream.setOrdersDown(false)
  const store = faultline.deferrals.store
  let entry = first.id !== undefined ? await store?.get(first.id) : undefined
  while (entry?.state === 'pending' && performance.now() - t0 < 5_000) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    entry = await store?.get(entry.id)
  }
  out.write(`  the service is back: delivered after ${Math.round(performance.now() - t0)} ms (${entry?.attempts ?? 0} attempts in all); it answered ${entry?.result?.status ?? '-'}\n`)
  const retry = await send()
  const created = upstream.orders() - before
  out.write(`  the caller retries with the same key              -> ${retry.status}, from the stored answer; orders created: ${created}\n`)
  out.write(`  (GET /deferrals/${first.id ?? '<id>'} on the admin API, with the bearer token, shows the attempts and the answer)\n`)
  const ok = first.status === 202 && again.id === first.id && entry?.state === 'delivered' && retry.status === 201 && created === 1
  out.write(ok ? 'check: deferred during the outage, delivered once after it.\n' : 'check FAILED: the deferred write was not delivered exactly once.\n')
  return ok
}

const EXPERIMENT_MS = 6_000
const EXPERIMENT_PATHS = ['/protected/items', '/fragile/items']

/**
 * Traffic for an experiment: each route gets the same steady pace (four
 * callers, one call each per 40 ms at most), bounded by time, each call by
 * its own timeout.
 */
async function experimentTraffic (client: Pool, ms: number): Promise<void> {
  const until = performance.now() + ms
  const caller = async (path: string): Promise<void> => {
    while (performance.now() < until) {
      const t0 = performance.now()
      try {
        const res = await client.request({ method: 'GET', path, headersTimeout: 2000, bodyTimeout: 2000 })
        await res.body.dump()
      } catch { /* a fault cut the connection: the report counts it */ }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 40 - (performance.now() - t0))))
    }
  }
  await Promise.all(EXPERIMENT_PATHS.flatMap((path) => [caller(path), caller(path), caller(path), caller(path)]))
}

/**
 * The intent engine at work: the same traffic, the same fault budget, two
 * ways of spending it: intent (planned from each route's intent, calibrated,
 * guardrailed) and uniform (every kind alike, as most chaos tools do).
 */
async function runExperiments (faultline: Faultline, client: Pool, out: NodeJS.WritableStream, experimentMs: number): Promise<void> {
  out.write('\nexperiments: catalog-protected (retry + last-known-good cache) and catalog-fragile (no policies), same intent:\n')
  out.write(`availability, p99 <= 250 ms, errors <= 2%. ${experimentMs / 1000} s of traffic per mode, 1 s evaluation windows.\n\n`)
  const reports: ExperimentReport[] = []
  for (const mode of ['intent', 'uniform'] as const) {
    const { done } = await faultline.experiments.start(mode, experimentMs)
    await experimentTraffic(client, experimentMs)
    reports.push(await done)
  }
  out.write(reportMarkdown(reports[0]!) + '\n')
  out.write('intent vs uniform (same routes, same traffic):\n\n')
  out.write(`${pad('mode', 9)}${pad('faults', 8)}${pad('reached callers', 17)}${pad('weaknesses', 12)}breaching windows on the critical route\n`)
  for (const r of reports) {
    out.write(`${pad(r.mode, 9)}${pad(r.totals.faultsInjected, 8)}${pad(r.totals.surfaced, 17)}${pad(r.totals.weaknessesFound, 12)}${r.totals.breachedWindowsOnCritical}\n`)
  }
  out.write('\nIntent mode probes the protected route gently (critical: low ceiling, wide margin) and finds what\n' +
    'the fragile route lets through; uniform mode spends its budget on every kind alike, guardrail off.\n')
}
