#!/usr/bin/env node
/**
 * Soak: faultline (the real CLI, its own process) in front of a local
 * upstream, driven at a fixed rate (open loop: a slow answer does not slow
 * the offered load) with chaos on, for a bounded time. Every interval it
 * samples the proxy's RSS, heap, open fds and event-loop lag from its own
 * /metrics (prom-client's process metrics), and at the end prints a
 * markdown report for bench/RESULTS.md with the RSS trend after warm-up.
 *
 *   node bench/soak.mjs [--duration 600] [--rate 200] [--interval 30] [--warmup 60]
 *
 * Durations are in seconds. Runs dist/cli.js when built, src/cli.ts via tsx
 * otherwise. Everything listens on 127.0.0.1 and stops by itself.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, writeFile, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Pool, request } from 'undici'
import { freePort } from './lib.mjs'

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '600' },
    rate: { type: 'string', default: '200' },
    interval: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '60' }
  }
})
const durationS = Number(values.duration)
const rate = Number(values.rate)
const intervalS = Number(values.interval)
const warmupS = Math.min(Number(values.warmup), durationS / 2)
for (const [k, v] of Object.entries({ durationS, rate, intervalS, warmupS })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k}: expected a positive number`)
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const root = join(import.meta.dirname, '..')

// The upstream: small JSON, a little latency, so the proxy holds some requests in flight.
const upstream = createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    setTimeout(() => {
      res.setHeader('content-type', 'application/json')
      res.setHeader('cache-control', 'max-age=5')
      res.end(JSON.stringify({ id: 42, name: 'soak', items: [1, 2, 3], at: Date.now() }))
    }, 2 + Math.random() * 8)
  })
})
await new Promise((resolve) => upstream.listen(0, '127.0.0.1', resolve))
const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`

const port = await freePort()
const adminPort = await freePort()
const dir = await mkdtemp(join(tmpdir(), 'faultline-soak-'))
const configFile = join(dir, 'soak.yaml')
// Chaos on with every fault family, policies that absorb part of it, and a
// cache: the long-lived state (breaker windows, cache, retry budget,
// fault RNG) is what a soak must show is bounded.
await writeFile(configFile, `
listen: { host: 127.0.0.1, port: ${port} }
admin: { port: ${adminPort} }
log: { level: warn }
routes:
  - name: soak
    match: { pathPrefix: /soak }
    upstream: { url: "${upstreamUrl}" }
    resilience:
      timeoutMs: 1000
      attemptTimeoutMs: 300
      retry: { attempts: 2 }
      breaker: { failureRate: 0.9, minRequests: 50, windowMs: 10000, openMs: 1000 }
      fallback: [cache]
    chaos:
      enabled: true
      seed: 7
      faults:
        - { kind: latency, ms: 50, probability: 0.05 }
        - { kind: abort, status: 503, probability: 0.03 }
        - { kind: reset, probability: 0.02 }
        - { kind: truncate, bytes: 10, probability: 0.02 }
        - { kind: corrupt, probability: 0.02 }
`)

const cli = existsSync(join(root, 'dist', 'cli.js')) ? [join(root, 'dist', 'cli.js')] : ['--import', 'tsx', join(root, 'src', 'cli.ts')]
const child = spawn(process.execPath, [...cli, 'run', '--config', configFile], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
let childOutput = ''
child.stdout.on('data', (c) => { childOutput = (childOutput + c.toString()).slice(-20_000) })
child.stderr.on('data', (c) => { childOutput = (childOutput + c.toString()).slice(-20_000) })
let exited = false
child.on('exit', () => { exited = true })
for (let i = 0; i < 300 && !exited; i++) {
  const ready = await request(`http://127.0.0.1:${adminPort}/readyz`).then(async (r) => { await r.body.dump(); return r.statusCode === 200 }, () => false)
  if (ready) break
  await sleep(100)
}
if (exited) throw new Error(`faultline exited before it was ready:\n${childOutput}`)

function metricValue (text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1))
}

async function sample (elapsedS) {
  const res = await request(`http://127.0.0.1:${adminPort}/metrics`)
  const text = await res.body.text()
  return {
    elapsedS,
    rssMB: metricValue(text, 'process_resident_memory_bytes') / 1048576,
    heapMB: metricValue(text, 'nodejs_heap_size_used_bytes') / 1048576,
    fds: metricValue(text, 'process_open_fds'),
    lagP99Ms: metricValue(text, 'nodejs_eventloop_lag_p99_seconds') * 1000
  }
}

// Open-loop load: one request every 1/rate s, whatever the answers do.
const client = new Pool(`http://127.0.0.1:${port}`, { connections: 256, pipelining: 1 })
const counts = { sent: 0, answered: 0, byStatus: {}, errors: 0, inFlightMax: 0 }
let inFlight = 0
const paths = ['/soak/a', '/soak/b', '/soak/c?q=1', '/soak/d']
function fire () {
  counts.sent++
  inFlight++
  counts.inFlightMax = Math.max(counts.inFlightMax, inFlight)
  const post = counts.sent % 5 === 0
  client.request({ path: paths[counts.sent % paths.length], method: post ? 'POST' : 'GET', body: post ? '{"x":1}' : undefined, headersTimeout: 5_000, bodyTimeout: 5_000 })
    .then(async (res) => {
      await res.body.dump()
      counts.answered++
      counts.byStatus[res.statusCode] = (counts.byStatus[res.statusCode] ?? 0) + 1
    }, () => { counts.errors++ })
    .finally(() => { inFlight-- })
}

const samples = [await sample(0)]
const t0 = performance.now()
const tickMs = 10
let due = 0
const load = setInterval(() => {
  // Catch up on the requests due by now, so timer jitter does not lower the rate.
  const target = Math.floor(((performance.now() - t0) / 1000) * rate)
  while (due < target) { fire(); due++ }
}, tickMs)
let nextSample = intervalS
while (true) {
  const elapsed = (performance.now() - t0) / 1000
  if (elapsed >= durationS || exited) break
  if (elapsed >= nextSample) {
    samples.push(await sample(Math.round(elapsed)))
    const s = samples.at(-1)
    process.stderr.write(`[soak] ${s.elapsedS}s rss ${s.rssMB.toFixed(1)} MB heap ${s.heapMB.toFixed(1)} MB fds ${s.fds} lag p99 ${s.lagP99Ms.toFixed(1)} ms sent ${counts.sent}\n`)
    nextSample += intervalS
  }
  await sleep(200)
}
clearInterval(load)
for (let i = 0; i < 100 && inFlight > 0; i++) await sleep(100)
samples.push(await sample(Math.round((performance.now() - t0) / 1000)))
await client.close()
child.kill('SIGTERM')
await new Promise((resolve) => { if (exited) resolve(); else child.on('exit', resolve) })
upstream.close()
await rm(dir, { recursive: true, force: true })

// RSS trend after warm-up: least-squares slope in MB per minute.
const after = samples.filter((s) => s.elapsedS >= warmupS)
let slope = NaN
if (after.length >= 2) {
  const n = after.length
  const mx = after.reduce((a, s) => a + s.elapsedS, 0) / n
  const my = after.reduce((a, s) => a + s.rssMB, 0) / n
  const num = after.reduce((a, s) => a + (s.elapsedS - mx) * (s.rssMB - my), 0)
  const den = after.reduce((a, s) => a + (s.elapsedS - mx) ** 2, 0)
  slope = den === 0 ? 0 : (num / den) * 60
}
const unanswered = counts.sent - counts.answered
const lines = [
  `### Soak ${new Date().toISOString().slice(0, 16)}Z: ${durationS} s at ${rate} req/s, chaos on (node ${process.version}, ${(await import('node:os')).cpus().length} cores)`,
  '',
  `Sent ${counts.sent}, answered ${counts.answered}, cut or failed responses seen by the client ${counts.errors}, most in flight ${counts.inFlightMax}.`,
  `Statuses: ${Object.entries(counts.byStatus).map(([k, v]) => `${k}: ${v}`).join(', ')}.`,
  '',
  '| t (s) | RSS (MB) | heap used (MB) | open fds | event-loop lag p99 (ms) |',
  '|---:|---:|---:|---:|---:|',
  ...samples.map((s) => `| ${s.elapsedS} | ${s.rssMB.toFixed(1)} | ${s.heapMB.toFixed(1)} | ${s.fds} | ${s.lagP99Ms.toFixed(1)} |`),
  '',
  `RSS trend after the ${warmupS} s warm-up: ${Number.isNaN(slope) ? 'too few samples' : `${slope >= 0 ? '+' : ''}${slope.toFixed(2)} MB/min`} over ${after.length} samples.`
]
process.stdout.write(lines.join('\n') + '\n')
process.exitCode = exited && child.exitCode !== 0 ? 1 : (unanswered - counts.errors > 0 ? 1 : 0)
