#!/usr/bin/env node
// Runs the tap suite on precompiled JavaScript: `npm test`'s second half and
// CI's Node 24 run. Every test file is its own process, and loading the
// sources through tsx's loader cost each one about 1.3 s of CPU more than
// loading them precompiled (docs/TESTING.md, "CI time"), 124 files twice per
// CI run, plus every `faultline run` a test starts. esbuild (tsx's own
// compiler, so the output is the same) builds src/ and test/ in under a
// second into .test-build/<pid>/, a mirror of the repository where every other
// top-level entry (docs, docker, fixtures' siblings, node_modules) is a link,
// so paths a test takes relative to its own file still resolve. Sources (.ts)
// are linked beside their .js, for tests that read them.
//
//   node scripts/test.mjs [tap options] [test/x.test.ts ...]
//
// `npx tap` still runs the .ts files directly under tsx, as before.
import { build } from 'esbuild'
import { spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
// One mirror per run (.test-build/<pid>), so two runs in one checkout never
// pull the files from under each other; a run's mirror goes when it ends,
// and one left by a run that was killed goes at the next start.
const builds = join(root, '.test-build')
const out = join(builds, String(process.pid))
/** Top-level entries not linked: built (src, test), rewritten (package.json), or the run's own. */
const NOT_LINKED = new Set(['src', 'test', 'package.json', '.git', '.tap', '.test-build', '.stryker-tmp'])

mkdirSync(builds, { recursive: true })
for (const entry of readdirSync(builds)) {
  if (!isRunning(Number(entry))) rmSync(join(builds, entry), { recursive: true, force: true })
}
mkdirSync(out)
for (const entry of readdirSync(root)) {
  if (!NOT_LINKED.has(entry)) symlinkSync(join(root, entry), join(out, entry))
}

// src/ and test/: each .ts built to .js in the same place, and linked beside it; anything else linked.
const sources = []
for (const dir of ['src', 'test']) {
  for (const file of readdirSync(join(root, dir), { recursive: true, withFileTypes: true })) {
    if (!file.isFile()) continue
    const path = relative(root, join(file.parentPath ?? file.path, file.name))
    mkdirSync(dirname(join(out, path)), { recursive: true })
    symlinkSync(join(root, path), join(out, path))
    if (path.endsWith('.ts') && !path.endsWith('.d.ts')) sources.push(path)
  }
}
const started = Date.now()
await build({
  absWorkingDir: root,
  entryPoints: sources,
  outdir: out,
  outbase: '.',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // Stack traces and tap's failure excerpts point at the .ts lines (tap runs every test with --enable-source-maps).
  sourcemap: 'linked',
  logLevel: 'warning'
})

// tap's settings, with the compiled files and without the tsx loader; everything else as package.json says.
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
pkg.tap = { ...pkg.tap, include: ['test/**/*.test.js'], 'node-arg': [] }
writeFileSync(join(out, 'package.json'), JSON.stringify(pkg, null, 2) + '\n')
process.stdout.write(`built ${sources.length} files into ${relative(root, out)}/ in ${Date.now() - started} ms\n`)

// Named test files are given as the .ts a person types; tap gets their compiled twins.
const args = process.argv.slice(2).map((arg) => /^test\/.*\.ts$/.test(arg) ? arg.replace(/\.ts$/, '.js') : arg)
const tapPackage = createRequire(join(root, 'package.json')).resolve('tap/package.json')
const tap = join(dirname(tapPackage), JSON.parse(readFileSync(tapPackage, 'utf8')).bin.tap)
const child = spawn(process.execPath, [tap, ...args], { cwd: out, stdio: 'inherit' })
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => { child.kill(signal) })
child.on('exit', (code) => {
  rmSync(out, { recursive: true, force: true })
  process.exit(code ?? 1)
})

/** Whether a run with this pid is still going (a directory not named by a pid is stale). */
function isRunning (pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}
