/**
 * Sums a V8 .cpuprofile (from `node --cpu-prof`) by function: self time
 * (samples in the function itself) and total time (samples with the
 * function anywhere on the stack, counted once per sample however deep the
 * recursion), in ms and as a share of the profile. With two profiles it
 * compares them per function, each normalised by its own request count, so
 * two builds measured for different lengths still compare (µs per request).
 *
 *   node bench/prof-sum.mjs A.cpuprofile [--top 40] [--by self|total] [--filter TEXT] [--skip-ms 3000]
 *   node bench/prof-sum.mjs A.cpuprofile B.cpuprofile --requests-a N --requests-b M [--top 40]
 *
 * Functions are keyed by name, file (the part after the last node_modules/
 * or dist/, so two builds in different folders line up) and line, except
 * for files of the build, which are keyed without line numbers (lines move
 * between builds). --files sums by file instead.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    top: { type: 'string', default: '40' },
    'skip-ms': { type: 'string', default: '0' },
    by: { type: 'string', default: 'self' },
    filter: { type: 'string' },
    files: { type: 'boolean' },
    'requests-a': { type: 'string' },
    'requests-b': { type: 'string' }
  }
})

function shortUrl (url) {
  if (url === '') return ''
  const nm = url.lastIndexOf('node_modules/')
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length)
  const dist = url.lastIndexOf('/dist/')
  if (dist >= 0) return 'dist/' + url.slice(dist + '/dist/'.length)
  return url.replace(/^file:\/\//, '')
}

function keyOf (frame) {
  const url = shortUrl(frame.url)
  if (flags.files) return url || `(${frame.functionName || 'native'})`
  const name = frame.functionName || '(anonymous)'
  if (url.startsWith('dist/')) return `${name} ${url}`
  return url ? `${name} ${url}:${frame.lineNumber + 1}` : name
}

/** { self: Map<key, µs>, total: Map<key, µs>, totalUs } for one profile. */
function summarise (file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map()
  const parent = new Map()
  for (const node of profile.nodes) {
    byId.set(node.id, node)
    for (const child of node.children ?? []) parent.set(child, node.id)
  }
  const self = new Map()
  const total = new Map()
  let totalUs = 0
  // Start-up (module loading, config) is not the request path: --skip-ms leaves the first N ms out.
  const skipUs = Number(flags['skip-ms']) * 1000
  let at = 0
  const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us)
  // timeDeltas[i] is the time before sample i; the sample stands for the interval it ends.
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i + 1] ?? 0
    at += profile.timeDeltas[i]
    if (us <= 0 || at < skipUs) continue
    let id = profile.samples[i]
    const leaf = byId.get(id)
    if (leaf.callFrame.functionName === '(idle)') continue
    totalUs += us
    add(self, keyOf(leaf.callFrame), us)
    const seen = new Set()
    while (id !== undefined) {
      const key = keyOf(byId.get(id).callFrame)
      if (!seen.has(key)) {
        seen.add(key)
        add(total, key, us)
      }
      id = parent.get(id)
    }
  }
  return { self, total, totalUs }
}

const top = Number(flags.top)
const by = flags.by === 'total' ? 'total' : 'self'
const keep = (key) => flags.filter === undefined || key.includes(flags.filter)
const ms = (us) => (us / 1000).toFixed(1).padStart(9)

if (positionals.length === 1) {
  const s = summarise(positionals[0])
  console.log(`${positionals[0]}: ${(s.totalUs / 1000).toFixed(0)} ms of CPU sampled (idle excluded)`)
  console.log(`${'self ms'.padStart(9)} ${'self%'.padStart(6)} ${'total ms'.padStart(9)} ${'total%'.padStart(6)}  function`)
  const rows = [...s[by]].filter(([k]) => keep(k)).sort((a, b) => b[1] - a[1]).slice(0, top)
  for (const [key] of rows) {
    const se = s.self.get(key) ?? 0
    const to = s.total.get(key) ?? 0
    console.log(`${ms(se)} ${(100 * se / s.totalUs).toFixed(1).padStart(6)} ${ms(to)} ${(100 * to / s.totalUs).toFixed(1).padStart(6)}  ${key}`)
  }
} else if (positionals.length === 2) {
  const [a, b] = positionals.map(summarise)
  const na = Number(flags['requests-a'])
  const nb = Number(flags['requests-b'])
  if (!(na > 0) || !(nb > 0)) throw new Error('two profiles need --requests-a and --requests-b (requests each proxy served)')
  const perReq = (us, n) => us / n
  console.log(`A ${positionals[0]}: ${perReq(a.totalUs, na).toFixed(1)} µs/request sampled; B ${positionals[1]}: ${perReq(b.totalUs, nb).toFixed(1)} µs/request`)
  console.log(`${by} time, µs per request: ${'A'.padStart(7)} ${'B'.padStart(7)} ${'B-A'.padStart(7)}  function`)
  const keys = new Set([...a[by].keys(), ...b[by].keys()])
  const rows = [...keys].filter(keep).map((key) => {
    const x = perReq(a[by].get(key) ?? 0, na)
    const y = perReq(b[by].get(key) ?? 0, nb)
    return [key, x, y, y - x]
  }).sort((p, q) => Math.abs(q[3]) - Math.abs(p[3])).slice(0, top)
  const f = (v) => v.toFixed(2).padStart(7)
  for (const [key, x, y, d] of rows) console.log(`${''.padStart(28)}${f(x)} ${f(y)} ${f(d)}  ${key}`)
} else {
  throw new Error('usage: node bench/prof-sum.mjs A.cpuprofile [B.cpuprofile --requests-a N --requests-b M] [--top N] [--by self|total] [--filter TEXT] [--files]')
}
