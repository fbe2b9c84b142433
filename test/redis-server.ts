/**
 * A real Redis server for tests: Debian's `redis-server` on 127.0.0.1, a
 * random port, no persistence, a temporary working dir. `stop()` and
 * `start()` kill and bring it back on the same port (the fleet and
 * deferral tests check what happens while Redis is down and after it
 * returns). Killed and cleaned up in teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { closedPort, within, type Teardown } from './helpers.js'

export interface RedisServer {
  url: string
  port: number
  /** Kill the server (SIGKILL: no save, no goodbye to clients). */
  stop: () => Promise<void>
  /** Start it again on the same port; resolves once it answers PING. */
  start: () => Promise<void>
  /** The server's output so far (for failure messages). */
  log: () => string
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** One PING over a raw socket: true when the server answers +PONG. */
async function pong (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port })
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(500, () => { done(false) })
    socket.once('error', () => { done(false) })
    socket.once('data', (chunk: Buffer) => { done(chunk.toString('latin1').startsWith('+PONG')) })
    socket.write('PING\r\n')
  })
}

export async function startRedis (t: Teardown, binary: string, options: { readyTimeoutMs?: number } = {}): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-redis-'))
  const port = await closedPort()
  let output = ''
  let child: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()

  const start = async (): Promise<void> => {
    const proc = spawn(binary, [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--protected-mode', 'no', '--loglevel', 'warning'
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = proc
    const collect = (chunk: Buffer): void => { if (output.length < 64 * 1024) output += chunk.toString('utf8') }
    proc.stdout?.on('data', collect)
    proc.stderr?.on('data', collect)
    exited = new Promise<void>((resolve) => { proc.once('exit', () => { resolve() }) })
    const deadline = Date.now() + (options.readyTimeoutMs ?? 10_000)
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}: ${output}`)
      if (await pong(port)) return
      if (Date.now() > deadline) throw new Error(`redis-server not ready after ${options.readyTimeoutMs ?? 10_000} ms: ${output}`)
      await sleep(50)
    }
  }

  const stop = async (): Promise<void> => {
    const proc = child
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return
    proc.kill('SIGKILL')
    await within(exited, 5000)
  }

  t.teardown(async () => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  })
  await start()
  return { url: `redis://127.0.0.1:${port}`, port, stop, start, log: () => output }
}
