#!/usr/bin/env node
// The layer and cycle check in `npm test` (`npm run deps`). dependency-cruiser
// reads every import of src/ (type-only ones too) and applies the rules in
// .dependency-cruiser.cjs; this script then holds the result against the
// known violations in .dependency-cruiser-known-violations.json:
// - a layer violation not in that file fails, naming its rule;
// - a cycle fails unless it passes through a known violation's import (the
//   known wrong-way imports are what close today's big cycle: cycles are
//   judged on the import graph with those edges taken out, so a new file
//   that joins the old cycle the old way is not a new cycle, while any other
//   cycle is);
// - a known violation that no longer occurs fails too, until it is taken out
//   of the file (`npm run deps -- --prune`): the list can only shrink.
// Why not `depcruise --ignore-known`: it matches a known cycle by the modules
// of the one cycle it happens to find per import, and in a 40-file cycle any
// new import changes which one that is (docs/DECISIONS.md).
import { readFileSync, writeFileSync } from 'node:fs'
import { cruise } from 'dependency-cruiser'
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options'
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config'

const CONFIG = './.dependency-cruiser.cjs'
const KNOWN = '.dependency-cruiser-known-violations.json'
const prune = process.argv.includes('--prune')

const options = await extractDepcruiseOptions(CONFIG)
const { output } = await cruise(['src'], options, undefined, { tsConfig: extractTSConfig('tsconfig.json') })
const rules = new Map(options.ruleSet.forbidden.map((rule) => [rule.name, rule]))
/** @type {{ rule: string, from: string, to: string }[]} */
const known = JSON.parse(readFileSync(KNOWN, 'utf8'))
const key = (v) => `${v.rule} ${v.from} -> ${v.to}`
const knownKeys = new Set(known.map(key))

const problems = []
const explain = (name) => `      ${rules.get(name)?.comment ?? ''}`

// Layer rules: every violation dependency-cruiser found, less the known ones.
const found = output.summary.violations
  .filter((v) => v.rule.name !== 'no-circular')
  .map((v) => ({ rule: v.rule.name, from: v.from, to: v.to }))
const foundKeys = new Set(found.map(key))
for (const v of found) {
  if (!knownKeys.has(key(v))) problems.push(`  error ${v.rule}: ${v.from} → ${v.to}\n${explain(v.rule)}`)
}

// Cycles: the import graph of src/ with every known violation's edge taken out.
const graph = new Map()
for (const m of output.modules) {
  if (!m.source.startsWith('src/')) continue
  graph.set(m.source, m.dependencies.map((d) => d.resolved).filter((to) => to.startsWith('src/')))
}
const knownEdges = new Set(known.map((v) => `${v.from} -> ${v.to}`))
const edges = (from) => (graph.get(from) ?? []).filter((to) => !knownEdges.has(`${from} -> ${to}`))
for (const cycle of cycles(edges)) {
  problems.push(`  error no-circular: ${cycle.join(' → ')}\n${explain('no-circular')}`)
}

// The ratchet: a known violation that is gone must leave the list.
const stale = known.filter((v) => v.rule === 'no-circular'
  ? !(graph.get(v.from) ?? []).includes(v.to) || !reaches(v.to, v.from)
  : !foundKeys.has(key(v)))
if (stale.length > 0 && prune) {
  const keep = known.filter((v) => !stale.includes(v))
  writeFileSync(KNOWN, JSON.stringify(keep, null, 2) + '\n')
  console.log(`removed ${stale.length} fixed violation(s) from ${KNOWN}; ${keep.length} left`)
} else {
  for (const v of stale) problems.push(`  fixed ${v.rule}: ${v.from} → ${v.to}: take it out of ${KNOWN} (npm run deps -- --prune)`)
}

if (problems.length > 0) {
  console.error(`dependency check (${CONFIG}, docs/ARCHITECTURE.md "Layers"):\n${problems.join('\n')}`)
  console.error(`\n✘ ${problems.length} problem(s)${known.length > 0 ? `; ${known.length} recorded violation(s) allowed (${KNOWN})` : ''}`)
  process.exit(1)
}
console.log(`✔ layers and cycles: ${output.summary.totalCruised} modules, no new violations (${known.length} known, listed in ${KNOWN})`)

/** Whether `to` can be reached from `from` in the whole graph (known edges included). */
function reaches (from, to) {
  const seen = new Set([from])
  const queue = [from]
  while (queue.length > 0) {
    const at = queue.shift()
    if (at === to) return true
    for (const next of graph.get(at) ?? []) if (!seen.has(next)) { seen.add(next); queue.push(next) }
  }
  return false
}

/** One shortest cycle per strongly connected component (Tarjan), as a path back to its start. */
function cycles (next) {
  let counter = 0
  const index = new Map()
  const low = new Map()
  const stack = []
  const onStack = new Set()
  const found = []
  const visit = (v) => {
    index.set(v, counter); low.set(v, counter); counter++
    stack.push(v); onStack.add(v)
    for (const w of next(v)) {
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v), low.get(w))) } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)))
    }
    if (low.get(v) !== index.get(v)) return
    const component = new Set()
    let w
    do { w = stack.pop(); onStack.delete(w); component.add(w) } while (w !== v)
    if (component.size > 1 || next(v).includes(v)) found.push(shortestCycle(v, component, next))
  }
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v)
  return found
}

function shortestCycle (start, component, next) {
  const parent = new Map([[start, undefined]])
  const queue = [start]
  while (queue.length > 0) {
    const at = queue.shift()
    for (const w of next(at)) {
      if (!component.has(w)) continue
      if (w === start) {
        const path = [start]
        for (let p = at; p !== start; p = parent.get(p)) path.splice(1, 0, p)
        return [...path, start]
      }
      if (!parent.has(w)) { parent.set(w, at); queue.push(w) }
    }
  }
  return [start, start]
}
