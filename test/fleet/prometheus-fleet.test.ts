/**
 * controller.source: prometheus with a real fleet: three `faultline run`
 * processes behind a round-robin client, scraped every 500 ms by a real
 * Prometheus (Debian's binary) loading docker/prometheus/fleet-rules.yml,
 * with its rate range cut from 1m to 10s as suits a 500 ms scrape: a rate
 * over a range the series is younger than is under-counted (increase over
 * the whole range), and a minute of that would be a minute of test.
 *
 * - a weakness that breaks the fleet's SLO halts all three within two
 *   windows (each on its own timer), though each replica alone stays under minRequests;
 * - a route whose query finds nothing, or whose figures are stale, never
 *   injects, and says why;
 * - Prometheus killed mid-experiment: planned injection stops within one
 *   window on every replica, requests keep flowing; back: it resumes.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { REPO } from '../docker-files.js'
import { closedPort, needTool, startUpstream, type Teardown } from '../helpers.js'
import { parsePrometheusText, sumOf } from '../../src/metrics/text.js'
import { startPrometheus } from '../observability/prometheus-server.js'
import { CLI } from '../repo.js'

const { path: prometheusBinary, skip } = needTool('prometheus')

const EVALUATION_MS = 1000
const MIN_REQUESTS = 18
/** shop's requests per second across the fleet: 30 a window, 10 per replica (minRequests is 18). */
const SHOP_RATE = 30
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

interface Replica { port: number, adminPort: number, lines: () => string[] }

/** One `faultline run` process; keeps only the log lines about the controller (not the request lines). */
async function startReplica (t: Teardown, file: string, port: number, adminPort: number): Promise<Replica> {
  const child = spawn(process.execPath, [...CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  const kept: string[] = []
  let partial = ''
  let ready = false
  const onData = (chunk: Buffer): void => {
    const text = partial + chunk.toString()
    const lines = text.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      if (line.includes('faultline ready')) ready = true
      if (/fleet SLO source|guardrail|controller/.test(line) && kept.length < 500) kept.push(line)
    }
  }
  child.stdout?.on('data', onData)
  child.stderr?.on('data', onData)
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  for (let i = 0; i < 600 && !ready && child.exitCode === null; i++) await sleep(50)
  if (!ready) throw new Error(`faultline did not start: ${kept.join('\n')}${partial}`)
  return { port, adminPort, lines: () => kept }
}

async function metricsOf (replica: Replica): Promise<ReturnType<typeof parsePrometheusText>> {
  const res = await request(`http://127.0.0.1:${replica.adminPort}/metrics`, { headersTimeout: 2000, bodyTimeout: 2000 })
  return parsePrometheusText(await res.body.text())
}

t.test('the fleet is judged as one from Prometheus, and stops injecting without it', { skip, timeout: 150_000 }, async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('{"ok":true}') })
  const replicas = await Promise.all([0, 1, 2].map(async () => ({ port: await closedPort(), adminPort: await closedPort() })))
  const dir = t.testdir({})
  const rules = (await readFile(join(REPO, 'docker/prometheus/fleet-rules.yml'), 'utf8')).replaceAll('[1m]', '[10s]')
  t.not(rules, await readFile(join(REPO, 'docker/prometheus/fleet-rules.yml'), 'utf8'), 'the rules\' range is shortened')
  await writeFile(join(dir, 'fleet-rules.yml'), rules)
  const prometheus = await startPrometheus(t, prometheusBinary!, {
    targets: replicas.map((r) => `127.0.0.1:${r.adminPort}`),
    ruleFiles: [join(dir, 'fleet-rules.yml')],
    scrapeIntervalMs: 500
  })

  // shop: a weakness (no retry, 1% error SLO) that the planned aborts break at once.
  // cart: an SLO chaos cannot break (errors up to 100%, p99 5 s): it keeps injecting while the source is up.
  // empty / stale: their queries find nothing, or figures an hour old.
  const intentRoute = (name: string, intent: string, extra = ''): string => `  - name: ${name}
    match: { pathPrefix: /${name} }
    upstream: { url: "${upstream.url}" }
    resilience: { timeoutMs: 2000 }
    chaos: { enabled: true, budget: 0.5 }
    intent: ${intent}
${extra}`
  const files = await Promise.all(replicas.map(async (r, i) => {
    const file = join(dir, `replica-${i}.yaml`)
    await writeFile(file, `listen: { host: 127.0.0.1, port: ${r.port} }
admin: { port: ${r.adminPort} }
log: { level: info }
reload: { watch: false }
controller:
  evaluationMs: ${EVALUATION_MS}
  minRequests: ${MIN_REQUESTS}
  cooldownMs: 60000
  source: prometheus
  prometheus: { url: "${prometheus.url}", selector: 'job="faultline"', timeoutMs: 800, staleAfterMs: 5000 }
routes:
${intentRoute('shop', '{ criticality: critical, protects: availability, slo: { errorRate: 0.01, p99Ms: 1500 } }')}
${intentRoute('cart', '{ criticality: optional, protects: availability, slo: { errorRate: 1, p99Ms: 5000 } }')}
${intentRoute('empty', '{ criticality: optional, slo: { errorRate: 1, p99Ms: 5000 }, queries: { requests: \'sum(route:faultline_client_requests:rate1m{$labels,job="no-such-job"})\' } }')}
${intentRoute('stale', '{ criticality: optional, slo: { errorRate: 1, p99Ms: 5000 }, queries: { age: "vector(3600)" } }')}
`)
    return file
  }))
  const fleet = await Promise.all(replicas.map(async (r, i) => await startReplica(t, files[i]!, r.port, r.adminPort)))

  // The round-robin client: shop at SHOP_RATE requests/s across the fleet, each request to the next
  // replica in turn (paced on the clock, so a slow machine sends late, not fewer); one request to each
  // other route for every two of shop's.
  let stop = false
  const sent = [0, 0, 0]
  const answered = { total: 0, lost: 0 }
  const started = Date.now()
  let turn = 0
  const traffic = (async () => {
    const inflight = new Set<Promise<void>>()
    let shop = 0
    const send = (name: string): void => {
      const k = turn++ % 3
      if (name === 'shop') sent[k]!++
      const p = request(`http://127.0.0.1:${fleet[k]!.port}/${name}`, { headersTimeout: 5000, bodyTimeout: 5000 })
        .then(async (res) => { await res.body.dump(); answered.total++ })
        .catch(() => { answered.lost++ })
        .finally(() => { inflight.delete(p) })
      inflight.add(p)
    }
    while (!stop && Date.now() - started < 100_000 && shop < 3000) {
      const due = Math.floor((Date.now() - started) / 1000 * SHOP_RATE)
      for (; shop < due && inflight.size < 100; shop++) {
        send('shop')
        if (shop % 2 === 0) for (const name of ['cart', 'empty', 'stale']) send(name)
      }
      await sleep(20)
    }
    await Promise.all(inflight)
  })()
  t.teardown(async () => { stop = true; await traffic })

  const reasonOf = (samples: ReturnType<typeof parsePrometheusText>, route: string): string | undefined =>
    samples.find((s) => s.name === 'faultline_chaos_active' && s.labels.route === route)?.labels.reason
  const sourceReasonOf = (samples: ReturnType<typeof parsePrometheusText>, route: string): string | undefined =>
    samples.find((s) => s.name === 'faultline_controller_source_up' && s.labels.route === route)?.labels.reason

  /** The time stamp of the first line from index `from` on that matches, waiting up to `ms`; undefined if none. */
  const loggedAt = async (replica: Replica, match: (line: string) => boolean, from: number, ms: number): Promise<number | undefined> => {
    const until = Date.now() + ms
    for (;;) {
      const line = replica.lines().slice(from).find(match)
      if (line !== undefined) return Date.parse((JSON.parse(line) as { time: string }).time)
      if (Date.now() > until) return undefined
      await sleep(100)
    }
  }

  /** The reasons this replica logged for a route, in order: one line per change, never the same twice in a row. */
  const loggedReasons = (replica: Replica, route: string): string[] => replica.lines()
    .filter((l) => l.includes(`"route":"${route}"`) && l.includes('fleet SLO source'))
    .map((l) => (JSON.parse(l) as { reason?: string }).reason ?? 'ok')
  const changesOnly = (reasons: string[]): boolean => reasons.every((r, i) => i === 0 || r !== reasons[i - 1])

  await t.test('a weakness that breaks the fleet SLO halts all three, though each replica is under minRequests', async (t) => {
    // Detected from each replica's log (its own time stamp), not by polling metrics: the test process
    // also runs the upstream and the client, and must not starve them.
    const haltedAt = await Promise.all(fleet.map(async (replica) => await loggedAt(replica, (l) => l.includes('"route":"shop"') && l.includes('planned injection halted'), 0, 60_000)))
    const halted = haltedAt.filter((h): h is number => h !== undefined)
    if (!t.equal(halted.length, 3, 'the guardrail halted shop on every replica')) {
      for (const replica of fleet) t.comment(replica.lines().join('\n'), (await metricsOf(replica)).filter((s) => s.labels.route === 'shop' && !s.name.includes('bucket')))
    }
    // Each replica judges the same fleet figures on its own window timer, in its own phase: one may query just after the
    // rule evaluation that shows the breach, another just before it and then a whole window later. So the spread is up
    // to one window plus the rule evaluation (200 ms), the query's own time and a timer run late; on a loaded 2-core CI
    // machine that came to 1325 and 1552 ms (140-180 ms alone). Two windows bound it with room; judged locally, none
    // would halt at all (asserted next).
    t.ok(Math.max(...halted) - Math.min(...halted) <= 2 * EVALUATION_MS + 500, `halts within two windows of each other: ${halted.map((h) => h - Math.min(...halted)).join(', ')} ms`)
    // Each replica's own share: far under minRequests per window. Judged locally, none would ever halt.
    const seconds = (Math.max(...halted) - started) / 1000
    for (const [k, n] of sent.entries()) t.ok(n / seconds * EVALUATION_MS / 1000 < MIN_REQUESTS * 0.75, `replica ${k}: ${n} shop requests in ${seconds.toFixed(1)} s, under ${MIN_REQUESTS * 0.75} a window`)
    for (const replica of fleet) {
      const samples = await metricsOf(replica)
      t.equal(reasonOf(samples, 'shop'), 'guardrail', 'shop: chaos off, reason guardrail')
      t.equal(sumOf(samples, 'faultline_chaos_fault_probability', { route: 'shop' }), 0)
      t.ok(replica.lines().some((l) => l.includes('"route":"shop"') && l.includes('planned injection halted')), 'the halt is logged')
    }
  })

  await t.test('no data or stale data: that route never injects, and the metric and a log line say why', async (t) => {
    const settled = async (replica: Replica): Promise<boolean> => {
      const samples = await metricsOf(replica)
      return sourceReasonOf(samples, 'empty') === 'empty' && sourceReasonOf(samples, 'stale') === 'stale' && sourceReasonOf(samples, 'cart') === 'ok'
    }
    for (const replica of fleet) {
      let ok = false
      for (let i = 0; i < 40 && !ok; i++) { ok = await settled(replica); if (!ok) await sleep(250) }
      t.ok(ok, 'empty reads as empty, stale as stale, cart as ok')
      const samples = await metricsOf(replica)
      t.equal(sumOf(samples, 'faultline_controller_source_up', { route: 'empty' }), 0)
      t.equal(sumOf(samples, 'faultline_controller_source_up', { route: 'stale' }), 0)
      t.equal(reasonOf(samples, 'empty'), 'source_down')
      t.equal(reasonOf(samples, 'stale'), 'source_down')
      t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'empty' }) + sumOf(samples, 'faultline_faults_injected_total', { route: 'stale' }), 0, 'nothing ever injected on empty or stale')
      t.ok(sumOf(samples, 'faultline_requests_total', { route: 'stale' }) > 0, 'though they had traffic')
      t.equal(sumOf(samples, 'faultline_controller_source_up', { route: 'cart' }), 1)
      t.equal(reasonOf(samples, 'cart'), 'planned', 'cart injects meanwhile')
      for (const route of ['empty', 'stale']) {
        const reasons = loggedReasons(replica, route)
        t.ok(reasons.includes(route), `${route}: a log line says ${route}: ${reasons.join(', ')}`)
        t.ok(changesOnly(reasons), `${route}: logged on a change only`)
      }
    }
  })

  await t.test('Prometheus killed: injection stops within one window; back: it resumes', async (t) => {
    const logged = fleet.map((r) => r.lines().length)
    const killedAt = Date.now()
    await prometheus.kill()
    const stoppedAt = await Promise.all(fleet.map(async (replica, k) => await loggedAt(replica, (l) => l.includes('"route":"cart"') && l.includes('fleet SLO source unreachable'), logged[k]!, 10_000)))
    for (const [k, replica] of fleet.entries()) {
      const samples = await metricsOf(replica)
      t.equal(reasonOf(samples, 'cart'), 'source_down', `replica ${k}: chaos off on cart, reason source_down`)
      t.equal(sourceReasonOf(samples, 'cart'), 'unreachable', `replica ${k}: the metric says unreachable`)
      t.equal(sumOf(samples, 'faultline_chaos_fault_probability', { route: 'cart' }), 0, `replica ${k}: no planned fault probability`)
    }
    t.ok(stoppedAt.every((s) => s !== undefined), 'cart stopped injecting on every replica')
    // The next window's read fails: within one window, plus the moment the read takes to fail.
    for (const s of stoppedAt) if (s !== undefined) t.ok(s - killedAt <= EVALUATION_MS + 300, `within one window of the kill: ${s - killedAt} ms`)
    // While it is down: nothing injected, and every request still answered (none waits on Prometheus).
    const injected = await Promise.all(fleet.map(async (r) => sumOf(await metricsOf(r), 'faultline_faults_injected_total', { route: 'cart' })))
    const before = { ...answered }
    await sleep(EVALUATION_MS * 2)
    const injectedLater = await Promise.all(fleet.map(async (r) => sumOf(await metricsOf(r), 'faultline_faults_injected_total', { route: 'cart' })))
    t.same(injectedLater, injected, 'no planned fault injected while Prometheus is down')
    t.equal(answered.lost, before.lost, 'no request lost')
    t.ok(answered.total - before.total >= SHOP_RATE, `requests kept being answered: ${answered.total - before.total} in two windows`)
    for (const replica of fleet) {
      const reasons = loggedReasons(replica, 'cart')
      t.equal(reasons[reasons.length - 1], 'unreachable', `a log line says unreachable: ${reasons.join(', ')}`)
      t.ok(changesOnly(reasons), 'logged on a change only')
    }

    const beforeRestart = fleet.map((r) => r.lines().length)
    await prometheus.restart()
    const resumedAt = await Promise.all(fleet.map(async (replica, k) => await loggedAt(replica, (l) => l.includes('"route":"cart"') && l.includes('figures are back'), beforeRestart[k]!, 20_000)))
    t.ok(resumedAt.every((r) => r !== undefined), 'a log line on every replica says the figures are back')
    // The source may blink (a slow answer on a loaded machine is "unreachable" too): wait for it to settle.
    for (const [k, replica] of fleet.entries()) {
      let samples = await metricsOf(replica)
      for (let i = 0; i < 40 && (sourceReasonOf(samples, 'cart') !== 'ok' || reasonOf(samples, 'cart') !== 'planned'); i++) {
        await sleep(250)
        samples = await metricsOf(replica)
      }
      t.equal(sourceReasonOf(samples, 'cart'), 'ok', `replica ${k}: source ok`)
      t.equal(reasonOf(samples, 'cart'), 'planned', `replica ${k}: cart injects again`)
      t.ok(sumOf(samples, 'faultline_chaos_fault_probability', { route: 'cart' }) > 0, `replica ${k}: with a planned probability`)
    }
  })
  stop = true
  await traffic
})
