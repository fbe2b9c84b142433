/**
 * The load generator, run by bench/run.mjs in its own (pinned) process:
 * autocannon against one URL, a warm-up first, then the measured run.
 * Prints "measuring" when the warm-up ends, then one JSON line with the
 * result on stdout.
 *
 *   node bench/load.mjs '{"url":"...","connections":64,"pipelining":1,"warmup":3,"duration":10}'
 *
 * Latency is recorded here, not taken from autocannon's summary:
 * autocannon's histogram has 1 ms resolution, too coarse to compare
 * proxies whose p50 is a few milliseconds. We keep 10 µs buckets.
 */
import autocannon from 'autocannon'

const opts = JSON.parse(process.argv[2])

const BUCKET_MS = 0.01
const MAX_MS = 2_000
const buckets = new Uint32Array(MAX_MS / BUCKET_MS + 1) // the last one collects anything slower

function percentile (p, count) {
  const rank = Math.ceil((p / 100) * count)
  let seen = 0
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]
    if (seen >= rank) return (i + 1) * BUCKET_MS // upper edge of the bucket
  }
  return MAX_MS
}

function run (duration, record) {
  return new Promise((resolve, reject) => {
    const instance = autocannon({
      url: opts.url,
      connections: opts.connections,
      pipelining: opts.pipelining,
      // A fixed offered load (req/s over all connections) instead of as fast as possible.
      ...(opts.rate > 0 ? { overallRate: opts.rate } : {}),
      duration
    }, (err, result) => { if (err) reject(err); else resolve(result) })
    if (record) {
      instance.on('response', (_client, _status, _bytes, ms) => {
        buckets[Math.min(buckets.length - 1, Math.floor(ms / BUCKET_MS))]++
      })
    }
  })
}

if (opts.warmup > 0) await run(opts.warmup, false)
// Tells bench/run.mjs to start counting the proxy's CPU time now.
process.stdout.write('measuring\n')
const result = await run(opts.duration, true)
let count = 0
for (const n of buckets) count += n
process.stdout.write(JSON.stringify({
  // Completed requests over the measured time: what a client actually got.
  rps: result.requests.total / result.duration,
  p50: percentile(50, count),
  p99: percentile(99, count),
  requests: result.requests.total,
  seconds: result.duration,
  errors: result.errors,
  timeouts: result.timeouts,
  non2xx: result.non2xx
}) + '\n')
