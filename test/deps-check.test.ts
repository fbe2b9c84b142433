// The dependency check (scripts/check-deps.mjs, in `npm test` as
// `npm run deps`) must fail on what it is there to stop. It runs on a copy
// of src/ with the wrong things added: a kernel file importing the
// assembly, a new import cycle, a devDependency in shipped code, and a
// known violation fixed (it must leave the list; --prune takes it out).
// The list is empty since the kernel move, so the copy gets one recorded
// violation that no longer occurs. A new policy file that imports the
// kernel's context and is built by policies/index.ts imports downward: no
// cycle, no failure.
import { execFile } from 'node:child_process'
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { SOURCE_ROOT } from './repo.js'

// The repository's own files: under npm test the suite runs in a mirror that also holds compiled .js.
const root = SOURCE_ROOT
const KNOWN = '.dependency-cruiser-known-violations.json'

function copyProject (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'faultline-deps-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  for (const f of ['src', 'scripts', 'tsconfig.json', 'package.json', '.dependency-cruiser.cjs', KNOWN]) {
    cpSync(join(root, f), join(dir, f), { recursive: true })
  }
  symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir')
  return dir
}

function check (dir: string, ...args: string[]): Promise<{ code: number, out: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['scripts/check-deps.mjs', ...args], { cwd: dir, timeout: 100_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : (typeof err.code === 'number' ? err.code : -1), out: `${stdout}${stderr}${err?.signal ? ` (killed: ${err.signal})` : ''}` })
    })
  })
}

/** Records a violation that does not occur (the kernel once imported the route runtime): the check must notice it is fixed. */
function recordFixedViolation (dir: string): void {
  const file = join(dir, KNOWN)
  const known = JSON.parse(readFileSync(file, 'utf8')) as unknown[]
  known.push({ rule: 'kernel-imports-kernel-only', from: 'src/core/context.ts', to: 'src/proxy/route.ts' })
  writeFileSync(file, JSON.stringify(known, null, 2) + '\n')
}

t.test('wrong-way imports, new cycles and dev dependencies fail, naming the rule; a downward import does not', async (t) => {
  const bad = copyProject(t)
  appendFileSync(join(bad, 'src/core/pipeline.ts'), "\nimport type { RouteTable } from '../proxy/router.js'\nexport type Table = RouteTable\n")
  writeFileSync(join(bad, 'src/failure-report/zz-a.ts'), "import type { B } from './zz-b.js'\nexport type A = B | 'a'\n")
  writeFileSync(join(bad, 'src/failure-report/zz-b.ts'), "import type { A } from './zz-a.js'\nexport type B = A | 'b'\n")
  appendFileSync(join(bad, 'src/util/timer.ts'), "\nimport 'fast-check'\n")
  writeFileSync(join(bad, 'src/policies/zz-new.ts'), "import type { RequestContext } from '../core/context.js'\nexport const seen = (ctx: RequestContext): string => ctx.requestId\n")
  appendFileSync(join(bad, 'src/policies/index.ts'), "\nexport { seen } from './zz-new.js'\n")
  recordFixedViolation(bad)

  const before = JSON.parse(readFileSync(join(bad, KNOWN), 'utf8')) as unknown[]

  // One run (each cruise parses all of src/): --prune takes the fixed violation out and reports the rest.
  const failing = await check(bad, '--prune')

  t.equal(failing.code, 1, `the check fails: ${failing.out.slice(0, 200)}`)
  t.match(failing.out, 'error kernel-imports-kernel-only: src/core/pipeline.ts → src/proxy/router.ts', 'a kernel file importing the assembly names the rule')
  t.match(failing.out, /The kernel sits at the bottom/, 'and says what the rule is for')
  t.match(failing.out, /error no-circular: src\/failure-report\/zz-a\.ts → src\/failure-report\/zz-b\.ts → src\/failure-report\/zz-a\.ts/, 'a new cycle (type-only imports) is named with its path')
  t.match(failing.out, /error src-not-to-dev-deps: src\/util\/timer\.ts → \S*node_modules\/fast-check\//, 'shipped code importing a devDependency fails')
  t.notMatch(failing.out, 'zz-new', 'a new policy file importing the kernel context (built by policies/index.ts) is no cycle')
  t.match(failing.out, `removed 1 fixed violation(s) from ${KNOWN}`, 'a fixed known violation is noticed (without --prune it fails the check until taken out)')
  const after = JSON.parse(readFileSync(join(bad, KNOWN), 'utf8')) as Array<{ from: string, to: string }>
  t.equal(after.length, before.length - 1, 'the list shrank by one')
  t.notOk(after.some((v) => v.from === 'src/core/context.ts' && v.to === 'src/proxy/route.ts'), 'the fixed one is gone')
})
