/**
 * Where the repository is, and how a test starts the real CLI in a child
 * process. `npm test` runs the suite precompiled (scripts/test.mjs builds
 * src/ and test/ into .test-build/<pid>/ and links every other top-level entry
 * there), while `npx tap` runs the .ts files under tsx; these names keep
 * both working, and a precompiled run starts precompiled CLIs too.
 */
import { realpathSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The tree the tests run in: the repository, or its precompiled mirror (where docs/, docker/... are links). */
export const REPO = fileURLToPath(new URL('..', import.meta.url))
/** True when the suite runs as precompiled JavaScript, without the tsx loader. */
export const COMPILED = import.meta.url.endsWith('.js')
/** The repository itself, for a test that copies or scans its sources (the mirror holds compiled files too). */
export const SOURCE_ROOT = dirname(realpathSync(join(REPO, 'tsconfig.json')))
/** A source module's path for a child process to load: `src/log.ts`, or its compiled `src/log.js`. */
export const sourceModule = (path: string): string => join(REPO, COMPILED ? path.replace(/\.ts$/, '.js') : path)
/** node's own arguments that let it load the sources: tsx's loader, or nothing when precompiled. */
export const LOADER_ARGS: readonly string[] = COMPILED ? [] : ['--import', 'tsx']
/** node's arguments that run the faultline CLI; add the command after them. */
export const CLI: readonly string[] = [...LOADER_ARGS, sourceModule('src/cli.ts')]
