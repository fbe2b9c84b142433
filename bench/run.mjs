/**
 * The benchmark: one upstream, loaded four ways in one run —
 *   direct             the upstream itself (what the load generator can do)
 *   bare               through bench/bare-proxy.mjs, the floor any Node proxy pays
 *   fastify-http-proxy through plain @fastify/http-proxy, a reference point
 *   faultline          through dist/cli.js with bench/faultline.yaml, logging on
 * The proxy under test runs alone on core 0; the upstream and the load
 * generator share core 1, so every proxy gets the same single core.
 *
 *   npm run bench [-- --duration 10 --warmup 3 --connections 64 --rounds 1 --rate 0 --quiet-wait 0
 *                     --targets direct,bare,fastify-http-proxy,faultline --json --write]
 *
 * Every flag has an env twin (BENCH_DURATION, BENCH_WRITE=1, ...).
 * BENCH_FAULTLINE_CONFIG replaces bench/faultline.yaml, BENCH_BASELINE_CONFIG
 * does for the baseline only (for experiments).
 * BENCH_PROXY_NODE_ARGS adds node flags to the proxy under test (e.g.
 * "--cpu-prof --cpu-prof-dir=bench/out/prof"). Logs of every child go to
 * bench/out/. See bench/README.md.
 */
import { spawn, execFileSync } from 'node:child_process'
import { createReadStream, existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { cpus, release } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './lib.mjs'

const BENCH = dirname(fileURLToPath(import.meta.url))
const ROOT = dirname(BENCH)
const OUT = join(BENCH, 'out')
const ALL_TARGETS = ['direct', 'bare', 'fastify-http-proxy', 'baseline', 'faultline']
const LABELS = { direct: 'direct', bare: 'bare node:http proxy', 'fastify-http-proxy': '@fastify/http-proxy', baseline: 'faultline (baseline)', faultline: 'faultline' }
const PATH = '/api/items?page=1'

// ---------------------------------------------------------------- options

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string' },
    pipelining: { type: 'string' },
    rate: { type: 'string' },
    'quiet-wait': { type: 'string' },
    rounds: { type: 'string' },
    targets: { type: 'string' },
    baseline: { type: 'string' },
    json: { type: 'boolean' },
    write: { type: 'boolean' },
    'no-pin': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' }
  }
})
if (flags.help) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0] + '*/\n')
  process.exit(0)
}
const env = process.env
const number = (flag, name, fallback) => {
  const value = Number(flag ?? env[name] ?? fallback)
  if (!Number.isFinite(value) || value < 0) throw new Error(`expected a number for ${name}, got ${flag ?? env[name]}`)
  return value
}
const opts = {
  duration: number(flags.duration, 'BENCH_DURATION', 10),
  warmup: number(flags.warmup, 'BENCH_WARMUP', 3),
  connections: number(flags.connections, 'BENCH_CONNECTIONS', 64),
  pipelining: number(flags.pipelining, 'BENCH_PIPELINING', 1),
  // 0: as fast as possible. N: a fixed N req/s, to compare CPU per request at equal load.
  rate: number(flags.rate, 'BENCH_RATE', 0),
  // Up to this many seconds before each target, wait for other processes to quiet down.
  quietWait: number(flags['quiet-wait'], 'BENCH_QUIET_WAIT', 0),
  rounds: Math.max(1, number(flags.rounds, 'BENCH_ROUNDS', 1)),
  // Another build's dist/cli.js, measured as target "baseline": A/B in one run.
  baseline: flags.baseline ?? env.BENCH_BASELINE,
  targets: (flags.targets ?? env.BENCH_TARGETS ?? '').split(',').map((s) => s.trim()).filter(Boolean),
  json: flags.json ?? env.BENCH_JSON === '1',
  write: flags.write ?? env.BENCH_WRITE === '1',
  pin: !(flags['no-pin'] ?? env.BENCH_NO_PIN === '1'),
  proxyNodeArgs: (env.BENCH_PROXY_NODE_ARGS ?? '').split(' ').filter(Boolean)
}
if (opts.targets.length === 0) opts.targets = ALL_TARGETS.filter((t) => t !== 'baseline' || opts.baseline)
if (opts.targets.includes('baseline') && !opts.baseline) throw new Error('target "baseline" needs --baseline PATH/TO/dist/cli.js')
for (const t of opts.targets) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target "${t}"; expected some of ${ALL_TARGETS.join(', ')}`)

// Pinning needs taskset and both cores; without them the figures still come
// out, but the proxy then competes with the load generator for CPU.
let pinNote = 'proxy under test on core 0; upstream and load generator on core 1 (taskset)'
if (opts.pin) {
  try {
    execFileSync('taskset', ['-c', '0,1', 'true'], { stdio: 'ignore' })
  } catch {
    opts.pin = false
    pinNote = 'UNPINNED: taskset is missing or cores 0 and 1 are not both available'
  }
} else {
  pinNote = 'UNPINNED (--no-pin)'
}
if (!opts.pin) process.stderr.write(`warning: ${pinNote}; the figures are less comparable\n`)

// ---------------------------------------------------------------- children

/** Every child we started; all of them are killed on the way out, whatever happens. */
const children = new Set()

function start (name, cpu, args, { childEnv, pipeStdout = false } = {}) {
  const out = pipeStdout ? 'pipe' : openSync(join(OUT, `${name}.log`), 'w')
  const err = openSync(join(OUT, `${name}.err.log`), 'w')
  const [cmd, argv] = opts.pin ? ['taskset', ['-c', String(cpu), process.execPath, ...args]] : [process.execPath, args]
  // taskset execs node in place, so the pid we hold is node's own.
  const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', out, err], env: { ...env, ...childEnv } })
  if (!pipeStdout) closeSync(out)
  closeSync(err)
  child.name = name
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => { children.delete(child); resolve({ code, signal }) }))
  children.add(child)
  return child
}

async function stop (child) {
  if (!children.has(child)) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
  await child.exited
  clearTimeout(timer)
}

async function stopAll () {
  await Promise.all([...children].map(stop))
}

// Last resort if we are exiting without having stopped them (a throw, a signal).
process.on('exit', () => { for (const child of children) child.kill('SIGKILL') })
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => { stopAll().finally(() => process.exit(130)) })
}

/** Resolves once `url` answers 200; fails if the child exits first or 20 s pass. */
async function ready (url, child) {
  let exited = false
  child?.exited.then(() => { exited = true })
  const until = Date.now() + 20_000
  while (Date.now() < until) {
    if (exited) throw new Error(`${child.name} exited before it was ready; see bench/out/${child.name}.err.log`)
    const status = await new Promise((resolve) => {
      get(url, { agent: false }, (res) => { res.resume(); resolve(res.statusCode) }).on('error', () => resolve(0))
    })
    if (status === 200) return
    await sleep(100)
  }
  throw new Error(`${url} did not answer 200 within 20 s`)
}

/** Starts the proxy for a target; returns its URL and the child (none for direct). */
async function startTarget (target, upstreamUrl) {
  if (target === 'direct') return { url: upstreamUrl + PATH }
  const port = await freePort()
  let child
  if (target === 'bare' || target === 'fastify-http-proxy') {
    const script = target === 'bare' ? 'bench/bare-proxy.mjs' : 'bench/fastify-http-proxy.mjs'
    child = start(target, 0, [...opts.proxyNodeArgs, script, String(port), upstreamUrl])
  } else {
    const cli = target === 'baseline' ? opts.baseline : 'dist/cli.js'
    if (!existsSync(join(ROOT, cli))) throw new Error(`${cli} is missing: run \`npm run build\` first (\`npm run bench\` does)`)
    const config = (target === 'baseline' ? env.BENCH_BASELINE_CONFIG : undefined) ?? env.BENCH_FAULTLINE_CONFIG ?? 'bench/faultline.yaml'
    child = start(target, 0, [...opts.proxyNodeArgs, cli, 'run', '--config', config], {
      childEnv: { BENCH_PROXY_PORT: String(port), BENCH_ADMIN_PORT: String(await freePort()), BENCH_UPSTREAM_URL: upstreamUrl }
    })
  }
  const url = `http://127.0.0.1:${port}${PATH}`
  await ready(url, child)
  return { url, child }
}

// ---------------------------------------------------------------- CPU accounting
//
// Throughput on a shared machine moves with whatever else runs on it. Two
// figures from the scheduler's own accounting (/proc/PID/task/TID/schedstat:
// ns on a CPU, ns runnable but waiting for one) help read a run:
//  - the CPU time the proxy spends per request, all its threads: its cost,
//    much steadier than req/s when the machine is busy;
//  - the share of the time the proxy's main thread, and the load
//    generator's, were ready to run but had to wait for a CPU: near 0 on a
//    quiet machine; a high figure marks a disturbed run.

/** [ns on CPU summed over all threads, ns the main thread waited for a CPU]. */
function schedstat (pid) {
  let run = 0
  let wait = 0
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const [onCpu, waited] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number)
        run += onCpu
        if (tid === String(pid)) wait = waited
      } catch { /* the thread just exited */ }
    }
  } catch { /* no such process */ }
  return [run, wait]
}

function snapshot (pids) {
  return { at: performance.now(), procs: pids.map(schedstat) }
}

/** CPU figures between two snapshots of [proxy, load generator]. */
function cpuBetween (a, b, requests, hasProxy) {
  const ns = (b.at - a.at) * 1e6
  const [proxyRun, proxyWait] = b.procs[0].map((x, i) => x - a.procs[0][i])
  const loadWait = b.procs[1][1] - a.procs[1][1]
  return {
    proxyUsPerRequest: hasProxy && requests > 0 ? proxyRun / 1000 / requests : undefined,
    proxyCores: hasProxy ? proxyRun / ns : undefined,
    proxyWait: hasProxy ? proxyWait / ns : undefined,
    loadWait: loadWait / ns
  }
}

/**
 * Cores busy machine-wide over one second, taken while our own processes
 * sit idle (the proxy is up, no load yet): that is everyone else.
 */
async function backgroundLoad () {
  const busy = () => {
    const [user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    return user + nice + system + irq + softirq + steal
  }
  const a = busy()
  const t0 = performance.now()
  await sleep(1_000)
  return (busy() - a) * 10 / (performance.now() - t0) // ticks are 10 ms
}

const QUIET_CORES = 0.25

/** Waits (up to --quiet-wait s) until others use under QUIET_CORES; returns the last reading. */
async function quietEnough () {
  const until = Date.now() + opts.quietWait * 1000
  let load = await backgroundLoad()
  while (load > QUIET_CORES && Date.now() < until) load = await backgroundLoad()
  return load
}

/** Runs the load generator (pinned to core 1) and returns its result plus CPU figures. */
async function load (url, proxyPid) {
  const child = start('load', 1, ['bench/load.mjs', JSON.stringify({ url, connections: opts.connections, pipelining: opts.pipelining, rate: opts.rate, warmup: opts.warmup, duration: opts.duration })], { pipeStdout: true })
  const limit = setTimeout(() => child.kill('SIGKILL'), (opts.warmup + opts.duration + 30) * 1000)
  const all = [proxyPid ?? -1, child.pid]
  let before, after, result
  let buffered = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk) => {
    buffered += chunk
    let nl
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl)
      buffered = buffered.slice(nl + 1)
      if (line === 'measuring') before = snapshot(all)
      else if (line.startsWith('{')) { after = snapshot(all); result = JSON.parse(line) }
    }
  })
  const { code } = await child.exited
  clearTimeout(limit)
  if (code !== 0 || result === undefined) throw new Error(`the load generator failed (exit ${code}); see bench/out/load.err.log`)
  return { ...result, ...(before ? cpuBetween(before, after, result.requests, proxyPid !== undefined) : {}) }
}

async function countLines (file) {
  let lines = 0
  for await (const chunk of createReadStream(file)) for (let i = 0; i < chunk.length; i++) if (chunk[i] === 10) lines++
  return lines
}

// ---------------------------------------------------------------- report

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2 }
const fmtInt = (n) => Math.round(n).toLocaleString('en-US')
const fmtMs = (n) => n.toFixed(2)
const fmtX = (n) => n.toFixed(2) + 'x'
const fmtPct = (n) => (100 * n).toFixed(0) + '%'

function summarise (runs) {
  const out = {}
  for (const [target, list] of Object.entries(runs)) {
    if (list.length === 0) continue
    const rps = list.map((r) => r.rps)
    out[target] = {
      rps: median(rps),
      rpsMin: Math.min(...rps),
      rpsMax: Math.max(...rps),
      p50: median(list.map((r) => r.p50)),
      p99: median(list.map((r) => r.p99)),
      cpuUs: list[0].proxyUsPerRequest === undefined ? undefined : median(list.map((r) => r.proxyUsPerRequest)),
      proxyWait: list[0].proxyWait === undefined ? undefined : median(list.map((r) => r.proxyWait)),
      loadWait: median(list.map((r) => r.loadWait ?? 0)),
      background: median(list.map((r) => r.background)),
      errors: list.reduce((n, r) => n + r.errors + r.timeouts + r.non2xx, 0),
      runs: list
    }
  }
  return out
}

function ratios (a, b) {
  return a && b ? { rps: a.rps / b.rps, p50: a.p50 / b.p50, p99: a.p99 / b.p99, cpu: a.cpuUs / b.cpuUs } : undefined
}

function table (summary) {
  const rows = [['target', 'req/s', opts.rounds > 1 ? 'req/s min-max' : '', 'p50 ms', 'p99 ms', 'req/s vs bare', 'proxy CPU µs/req', 'CPU wait proxy/load', 'background cores', 'errors']]
  for (const t of ALL_TARGETS) {
    const s = summary[t]
    if (!s) continue
    rows.push([LABELS[t], fmtInt(s.rps), opts.rounds > 1 ? `${fmtInt(s.rpsMin)}-${fmtInt(s.rpsMax)}` : '', fmtMs(s.p50), fmtMs(s.p99),
      summary.bare ? fmtX(s.rps / summary.bare.rps) : '', s.cpuUs === undefined ? '-' : s.cpuUs.toFixed(0),
      `${s.proxyWait === undefined ? '-' : fmtPct(s.proxyWait)} / ${fmtPct(s.loadWait)}`, s.background.toFixed(2), String(s.errors)])
  }
  const keep = rows[0].map((_, i) => rows.some((r, j) => j > 0 && r[i] !== ''))
  return rows.map((r) => r.filter((_, i) => keep[i]))
}

function renderText (rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  return rows.map((r) => r.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join('  ')).join('\n')
}

function renderMarkdown (rows) {
  const line = (r) => '| ' + r.join(' | ') + ' |'
  return [line(rows[0]), line(rows[0].map((_, i) => i === 0 ? '---' : '---:')), ...rows.slice(1).map(line)].join('\n')
}

function ratioLines (summary) {
  const lines = []
  const f = summary.faultline
  for (const [name, other] of [['the bare proxy', summary.bare], ['direct', summary.direct], ['the baseline build', summary.baseline]]) {
    const r = ratios(f, other)
    if (r) lines.push(`faultline vs ${name}: ${fmtX(r.rps)} req/s, p50 ${fmtX(r.p50)}, p99 ${fmtX(r.p99)}${Number.isFinite(r.cpu) ? `, CPU per request ${fmtX(r.cpu)}` : ''} (latency and CPU ratios: lower is better)`)
  }
  const fh = ratios(summary['fastify-http-proxy'], summary.bare)
  if (fh) lines.push(`@fastify/http-proxy vs the bare proxy: ${fmtX(fh.rps)} req/s, p50 ${fmtX(fh.p50)}, p99 ${fmtX(fh.p99)}, CPU per request ${fmtX(fh.cpu)}`)
  return lines
}

function verdict (summary) {
  const r = ratios(summary.faultline, summary.bare)
  if (!r) return 'faultline and the bare proxy were not both measured in this run.'
  const rps = fmtX(r.rps)
  if (r.rps >= 1 && r.p99 <= 1) return `faultline met the goal: ${rps} the bare proxy's throughput with a p99 no worse (${fmtX(r.p99)}).`
  if (r.rps >= 0.8) return `faultline is above the issue's 0.8x floor but short of the 1.0x goal: ${rps} the bare proxy's throughput, p99 ${fmtX(r.p99)}.`
  return `faultline is BELOW the issue's 0.8x floor: ${rps} the bare proxy's throughput, p99 ${fmtX(r.p99)}.`
}

function machine () {
  const model = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown CPU'
  let os = 'Linux'
  try { os = /^PRETTY_NAME="?([^"\n]+)/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os } catch {}
  return { cpu: model, cores: cpus().length, node: process.version, os: `${os}, kernel ${release()}` }
}

function command () {
  const args = process.argv.slice(2).join(' ')
  return env.npm_lifecycle_event === 'bench' ? `npm run bench${args ? ' -- ' + args : ''}` : `node bench/run.mjs${args ? ' ' + args : ''}`
}

const NOTES_START = '<!-- notes: kept across --write; edit freely -->'
const NOTES_END = '<!-- end of notes -->'

function writeResults (summary, extra) {
  const file = join(BENCH, 'RESULTS.md')
  const previous = existsSync(file) ? readFileSync(file, 'utf8') : ''
  const kept = previous.includes(NOTES_START) && previous.includes(NOTES_END)
    ? previous.slice(previous.indexOf(NOTES_START) + NOTES_START.length, previous.indexOf(NOTES_END)).trim()
    : '_No commentary yet._'
  const m = machine()
  const body = `# Benchmark results

Generated by \`bench/run.mjs --write\`; the notes at the end are written by
hand and kept across runs. How to read this: bench/README.md.

- **Date:** ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC
- **Machine:** ${m.cpu}, ${m.cores} cores, Node ${m.node}, ${m.os}
- **Command:** \`${command()}\`
- **Load:** autocannon, ${opts.connections} connections, pipelining ${opts.pipelining}, ${opts.rate > 0 ? `a fixed ${opts.rate} req/s, ` : 'as fast as possible, '}${opts.warmup} s warm-up then ${opts.duration} s measured per target, ${opts.rounds} round${opts.rounds > 1 ? 's (targets interleaved, in reverse order every other round; medians shown)' : ''}; GET ${PATH}, ~1 KB JSON answer
- **Pinning:** ${pinNote}
${extra.logLines !== undefined ? `- **faultline logging:** info, to bench/out/faultline.log (${fmtInt(extra.logLines)} lines in its last run)\n` : ''}
${renderMarkdown(table(summary))}

${ratioLines(summary).map((l) => '- ' + l).join('\n')}

**Verdict:** ${verdict(summary)}

## Notes

${NOTES_START}
${kept}
${NOTES_END}
`
  writeFileSync(file, body)
  process.stdout.write(`wrote ${relative(process.cwd(), file)}\n`)
}

// ---------------------------------------------------------------- main

async function main () {
  mkdirSync(OUT, { recursive: true })
  const upstreamPort = await freePort()
  const upstreamUrl = `http://127.0.0.1:${upstreamPort}`
  const upstream = start('upstream', 1, ['bench/upstream.mjs', String(upstreamPort)])
  await ready(upstreamUrl + PATH, upstream)

  const perTarget = opts.duration + opts.warmup + 2
  process.stderr.write(`${pinNote}\n${opts.targets.length} targets x ${opts.rounds} round(s), ~${perTarget} s each (~${Math.ceil(opts.targets.length * opts.rounds * perTarget)} s)\n`)
  const runs = Object.fromEntries(opts.targets.map((t) => [t, []]))
  const extra = {}
  for (let round = 1; round <= opts.rounds; round++) {
    // ABBA order: every other round runs the targets in reverse, so drift in
    // the machine's load and any order effect fall on every target alike.
    for (const target of round % 2 === 1 ? opts.targets : [...opts.targets].reverse()) {
      const { url, child } = await startTarget(target, upstreamUrl)
      try {
        const background = await quietEnough()
        const result = { ...await load(url, child?.pid), background }
        runs[target].push(result)
        process.stderr.write(`  round ${round} ${LABELS[target].padEnd(21)} ${fmtInt(result.rps).padStart(7)} req/s  p50 ${fmtMs(result.p50)} ms  p99 ${fmtMs(result.p99)} ms` +
          `${result.proxyUsPerRequest === undefined ? '' : `  proxy ${result.proxyUsPerRequest.toFixed(0)} µs/req, ${result.proxyCores.toFixed(2)} cores, waited ${fmtPct(result.proxyWait)}`}  load gen waited ${fmtPct(result.loadWait ?? 0)}` +
          `  background ${background.toFixed(2)} cores${result.errors + result.timeouts + result.non2xx ? '  ERRORS' : ''}\n`)
      } finally {
        if (child) await stop(child)
      }
      // The log is complete once faultline has flushed and exited: it proves logging was on.
      if (target === 'faultline') extra.logLines = await countLines(join(OUT, 'faultline.log'))
    }
  }
  const summary = summarise(runs)

  if (opts.json) {
    process.stdout.write(JSON.stringify({ options: opts, machine: machine(), pinning: pinNote, summary, ratios: { faultlineVsBare: ratios(summary.faultline, summary.bare), faultlineVsDirect: ratios(summary.faultline, summary.direct) }, ...extra }, null, 2) + '\n')
  } else {
    process.stdout.write('\n' + renderText(table(summary)) + '\n\n' + ratioLines(summary).join('\n') + '\n' + verdict(summary) + '\n')
    if (extra.logLines !== undefined) process.stdout.write(`faultline wrote ${fmtInt(extra.logLines)} log lines (bench/out/faultline.log)\n`)
  }
  if (Object.values(summary).some((s) => s.errors > 0)) {
    process.stderr.write('warning: some requests failed (errors, timeouts or non-2xx): those figures are not valid\n')
    process.exitCode = 1
  }
  if (opts.write) writeResults(summary, extra)
}

try {
  await main()
} catch (err) {
  process.stderr.write(`bench: ${err.stack ?? err}\n`)
  process.exitCode = 1
} finally {
  await stopAll()
}
