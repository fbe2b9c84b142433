/**
 * Runs the external programs the observability tests need (promtool,
 * prometheus, chromium; found by needTool in test/helpers.ts) with a
 * deadline, never through a shell.
 */
import { execFile } from 'node:child_process'

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
