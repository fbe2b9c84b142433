/**
 * The demo *service* of the docker-compose demo: an app that calls its
 * dependency through the faultline sidecar, the way a real service would
 * once its dependency URL points at http://localhost:8080.
 *
 * It sends a fixed rate of requests (open loop: the next call does not wait
 * for the last one, as real traffic does not), spread over the demo routes,
 * and logs one summary line per window.
 *
 *   RATE        requests per second (default 10)
 *   TARGET      the sidecar's base URL (default http://localhost:8080)
 *   DURATION_S  stop after this many seconds (default 3600); SIGTERM stops too
 */
import { pathToFileURL } from 'node:url'
import { Pool } from 'undici'

export interface DemoCall { route: string, method: 'GET' | 'POST', path: string, body?: string }

/** The demo upstream's endpoints, as config/demo.yaml and docker/faultline.yaml route them. */
export const DEMO_CALLS: readonly DemoCall[] = [
  { route: 'catalog', method: 'GET', path: '/catalog/items' },
  { route: 'pricing', method: 'GET', path: '/pricing/quote' },
  { route: 'inventory', method: 'GET', path: '/inventory/stock?sku=lamp' },
  { route: 'orders', method: 'POST', path: '/api/orders', body: '{"sku":"lamp","qty":1}' }
]

export interface DemoClientOptions {
  target: string
  /** Requests per second. */
  rate: number
  durationS: number
  reportEveryMs?: number
  /** Deadline for one call, queueing, headers and body included. */
  timeoutMs?: number
  /** Where summary lines go (one call per line). */
  log?: (line: string) => void
}

/** What the client saw in one window, or in the whole run. */
export interface Tally {
  requests: number
  /** Responses by status class: 2xx, 4xx, 5xx... */
  byClass: Record<string, number>
  /** Calls that got no complete response, by error code (ECONNREFUSED, TimeoutError...). */
  errors: Record<string, number>
  byRoute: Record<string, { requests: number, ok: number }>
  latenciesMs: number[]
}

export interface DemoClient {
  /** Resolves with the whole run's tally once the client has stopped (duration elapsed or stop()). */
  readonly done: Promise<Tally>
  stop: () => Promise<Tally>
}

const POOL_CONNECTIONS = 32

function emptyTally (): Tally {
  // Routes listed up front, so every summary line has them in the same order.
  const byRoute = Object.fromEntries(DEMO_CALLS.map((c) => [c.route, { requests: 0, ok: 0 }]))
  return { requests: 0, byClass: {}, errors: {}, byRoute, latenciesMs: [] }
}

function bump (counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1
}

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

function counts (record: Record<string, number>): string {
  return Object.entries(record).sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}=${n}`).join(' ')
}

/** One line: totals, status classes, errors, latency, then per route how many were 2xx. */
export function formatTally (label: string, tally: Tally, seconds: number): string {
  const sorted = [...tally.latenciesMs].sort((a, b) => a - b)
  const errors = Object.values(tally.errors).reduce((a, b) => a + b, 0)
  const parts = [
    `${label}: ${tally.requests} requests in ${seconds.toFixed(1)} s (${(tally.requests / Math.max(seconds, 1e-9)).toFixed(1)}/s)`,
    counts(tally.byClass),
    `errors=${errors}${errors > 0 ? ` (${counts(tally.errors)})` : ''}`,
    `p50=${percentile(sorted, 50).toFixed(1)}ms p99=${percentile(sorted, 99).toFixed(1)}ms`,
    '|',
    Object.entries(tally.byRoute).map(([route, r]) => `${route} ${r.ok}/${r.requests} ok`).join(', ')
  ]
  return parts.filter((p) => p !== '').join(' ')
}

export function startDemoClient (options: DemoClientOptions): DemoClient {
  const { target, rate, durationS } = options
  const reportEveryMs = options.reportEveryMs ?? 10_000
  const timeoutMs = options.timeoutMs ?? 5_000
  const log = options.log ?? ((line: string) => { process.stdout.write(line + '\n') })
  // A bounded keep-alive pool, like a real service's HTTP client: calls
  // beyond it queue, and the queueing shows in the latency the app sees.
  const pool = new Pool(target, { connections: POOL_CONNECTIONS })

  const total = emptyTally()
  let window = emptyTally()
  let windowStarted = performance.now()
  const started = performance.now()
  let sent = 0
  const pending = new Set<Promise<void>>()

  const record = (call: DemoCall, outcome: { status?: number, error?: string }, ms: number): void => {
    for (const tally of [total, window]) {
      tally.requests++
      const route = tally.byRoute[call.route] ??= { requests: 0, ok: 0 }
      route.requests++
      if (outcome.status !== undefined) {
        bump(tally.byClass, `${Math.floor(outcome.status / 100)}xx`)
        if (outcome.status < 300) route.ok++
        tally.latenciesMs.push(ms)
      } else {
        bump(tally.errors, outcome.error ?? 'error')
      }
    }
  }

  const send = async (call: DemoCall): Promise<void> => {
    const t0 = performance.now()
    try {
      const res = await pool.request({
        method: call.method,
        path: call.path,
        body: call.body,
        headers: call.body !== undefined ? { 'content-type': 'application/json' } : {},
        // One deadline for the whole call, so every call ends within timeoutMs
        // whatever the sidecar does (hang, drip the body...), and stop() too.
        signal: AbortSignal.timeout(timeoutMs)
      })
      // Read to the end, so the latency is the whole response's and a body
      // cut short counts as an error (dump() would swallow that).
      for await (const _chunk of res.body) { /* discard */ }
      record(call, { status: res.statusCode }, performance.now() - t0)
    } catch (err) {
      // undici errors carry a string code; the deadline's DOMException has a
      // legacy numeric one, so its name (TimeoutError) says more.
      const { code, name } = err as { code?: unknown, name?: string }
      record(call, { error: typeof code === 'string' ? code : name }, performance.now() - t0)
    }
  }

  // Sends whatever is due by now, so timer jitter changes when calls go out
  // but never how many: the rate holds over any window, and a full run
  // makes exactly rate x duration calls however late the timers fire.
  const durationMs = durationS * 1000
  const tick = (atDeadline = false): void => {
    // A timer may fire a hair before performance.now() says the time is up:
    // at the deadline the whole duration is due, by definition.
    const elapsed = atDeadline ? durationMs : Math.min(performance.now() - started, durationMs)
    const due = Math.floor(elapsed * rate / 1000)
    for (; sent < due; sent++) {
      const p: Promise<void> = send(DEMO_CALLS[sent % DEMO_CALLS.length]!).finally(() => { pending.delete(p) })
      pending.add(p)
    }
  }

  const report = (): void => {
    const now = performance.now()
    log(formatTally('demo client', window, (now - windowStarted) / 1000))
    window = emptyTally()
    windowStarted = now
  }

  let resolveDone!: (tally: Tally) => void
  const done = new Promise<Tally>((resolve) => { resolveDone = resolve })
  let stopping: Promise<Tally> | undefined
  const finish = async (atDeadline: boolean): Promise<Tally> => {
    stopping ??= (async () => {
      tick(atDeadline)
      clearInterval(ticker)
      clearInterval(reporter)
      clearTimeout(deadline)
      // Calls in flight end within timeoutMs; let them land in the tally.
      await Promise.all(pending)
      log(formatTally('demo client total', total, (performance.now() - started) / 1000))
      await pool.close()
      resolveDone(total)
      return total
    })()
    return await stopping
  }
  const stop = async (): Promise<Tally> => await finish(false)

  const ticker = setInterval(tick, Math.min(100, Math.max(5, 1000 / rate)))
  const reporter = setInterval(report, reportEveryMs)
  // setTimeout fires at once beyond 2^31-1 ms (~24.8 days): clamp, not surprise.
  const deadline = setTimeout(() => { void finish(true) }, Math.min(durationMs, 2 ** 31 - 1))
  log(`demo client: ${rate} requests/s to ${target} for ${durationS} s (routes: ${DEMO_CALLS.map((c) => c.route).join(', ')})`)
  return { done, stop }
}

/** A positive number from the environment, or a usage error naming the variable. */
function positiveEnv (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`demo client: expected ${name} to be a positive number, got ${JSON.stringify(raw)}\n`)
    process.exit(2)
  }
  return value
}

// `node dist/demo/client.js` runs it standalone (the docker-compose `app` service).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const target = process.env.TARGET ?? 'http://localhost:8080'
  let client: DemoClient
  try {
    client = startDemoClient({ target, rate: positiveEnv('RATE', 10), durationS: positiveEnv('DURATION_S', 3600) })
  } catch (err) {
    // undici refuses anything but an origin (http://host:port).
    process.stderr.write(`demo client: expected TARGET to be an origin such as http://localhost:8080, got ${JSON.stringify(target)}: ${(err as Error).message}\n`)
    process.exit(2)
  }
  const stop = (): void => { void client.stop() }
  // As PID 1 in a container, node gets no default signal handling: without
  // these, `docker stop` would wait out its grace period and SIGKILL us.
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  client.done.then(() => { process.exit(0) }, (err: unknown) => {
    process.stderr.write(`demo client: ${String(err)}\n`)
    process.exit(1)
  })
}
