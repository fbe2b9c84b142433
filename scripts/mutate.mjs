#!/usr/bin/env node
/**
 * npm run mutate -- <file or folder under src/> [more] [stryker flags]
 *
 * Mutates only the given code, and runs only the tests of the matching
 * folder (src/faults/switch.ts -> test/faults/**), so one module takes
 * minutes, not the whole suite per mutant. `--tests <glob,glob>` picks the
 * test files instead. Flags starting with `--` go to `stryker run`
 * (e.g. --concurrency 1). With no path: the four configured folders and
 * the whole suite (slow: hours on a small machine).
 */
import { spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'

const args = process.argv.slice(2)
const paths = []
const flags = []
let tests
for (let i = 0; i < args.length; i++) {
  const arg = args[i]
  if (arg === '--tests') tests = args[++i]
  else if (arg.startsWith('-')) {
    flags.push(arg)
    // A flag's value, as in `--concurrency 1`; `--mutate` always takes one, even a file that exists.
    const takesValue = arg === '--mutate' || (args[i + 1] !== undefined && !args[i + 1].startsWith('-') && !existsSync(args[i + 1]))
    if (takesValue && args[i + 1] !== undefined) flags.push(args[++i])
  } else paths.push(arg.replace(/\/+$/, ''))
}

for (const path of paths) {
  if (!existsSync(path)) {
    console.error(`mutate: ${path} does not exist (expected a file or folder under src/)`)
    process.exit(2)
  }
}

/** src/faults/switch.ts or src/faults -> test/faults/**: the tests beside the code. */
function testsFor (path) {
  const folder = statSync(path).isDirectory() ? path : path.split('/').slice(0, -1).join('/')
  const rel = folder.replace(/^src\/?/, '')
  return rel === '' ? 'test/**/*.test.ts' : `test/${rel}/**/*.test.ts`
}

const env = { ...process.env }
if (tests !== undefined) env.FAULTLINE_MUTATE_TESTS = tests
else if (paths.length > 0) env.FAULTLINE_MUTATE_TESTS = [...new Set(paths.map(testsFor))].join(',')
const mutate = paths.map((p) => statSync(p).isDirectory() ? `${p}/**/*.ts` : p)
const strykerArgs = ['run', ...(mutate.length > 0 ? ['--mutate', mutate.join(',')] : []), ...flags]
console.error(`mutate: stryker ${strykerArgs.join(' ')}  (tests: ${env.FAULTLINE_MUTATE_TESTS ?? 'the whole suite'})`)
const result = spawnSync('npx', ['--no-install', 'stryker', ...strykerArgs], { stdio: 'inherit', env })
process.exit(result.status ?? 1)
