/**
 * External programs the observability tests run (promtool, prometheus,
 * chromium, from Debian packages that .ci/run installs): found on PATH,
 * run with a deadline, never through a shell.
 */
import { execFile } from 'node:child_process'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** The absolute path of an executable on PATH, or undefined. */
export function which (name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try { accessSync(candidate, constants.X_OK); return candidate } catch {}
  }
  return undefined
}

export interface RunResult { code: number, stdout: string, stderr: string }

/** Runs a program to completion (killed after timeoutMs), feeding `input` on stdin. */
export async function run (file: string, args: string[], options: { input?: string, cwd?: string, timeoutMs?: number } = {}): Promise<RunResult> {
  return await new Promise<RunResult>((resolve) => {
    const child = execFile(file, args, { cwd: options.cwd, timeout: options.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1
      resolve({ code, stdout, stderr })
    })
    if (options.input !== undefined) child.stdin?.end(options.input)
    else child.stdin?.end()
  })
}

/** Why a test is skipped when a tool is missing: CI installs it, so CI never skips. */
export function missing (tool: string, pkg: string): string {
  return `${tool} not found on PATH: install the Debian package "${pkg}" (.ci/run does) to run this test`
}
