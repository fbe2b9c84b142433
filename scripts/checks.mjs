#!/usr/bin/env node
// npm test's static checks (typecheck, lint, deps) side by side instead of one
// after the other: each is one single-threaded process, so on a 2-core CI
// machine running them together takes about as long as the slowest one
// (tsc, ~25 s) instead of their sum (~55 s). Each one's output is printed
// whole when it ends, so the three never interleave. Exits 1 if any failed.
import { spawn } from 'node:child_process'

const CHECKS = ['typecheck', 'lint', 'deps']
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'

const results = await Promise.all(CHECKS.map((name) => new Promise((resolve) => {
  const started = Date.now()
  const child = spawn(npm, ['run', '--silent', name], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c) => { output += c })
  child.stderr.on('data', (c) => { output += c })
  child.on('error', (err) => { output += String(err); resolve({ name, code: 1, output, ms: Date.now() - started }) })
  child.on('close', (code, signal) => {
    const result = { name, code: code ?? 1, signal, output, ms: Date.now() - started }
    process.stdout.write(`${result.code === 0 ? 'ok' : 'FAILED'}: npm run ${name} (${(result.ms / 1000).toFixed(1)} s)\n${output}`)
    resolve(result)
  })
})))

const failed = results.filter((r) => r.code !== 0)
if (failed.length > 0) {
  process.stderr.write(`failed: ${failed.map((r) => `npm run ${r.name}`).join(', ')}\n`)
  process.exit(1)
}
