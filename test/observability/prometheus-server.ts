/**
 * A real Prometheus server for tests: Debian's `prometheus` binary on
 * 127.0.0.1, a temporary data dir, a 1 s scrape of the given targets (or
 * `scrapeIntervalMs`: a test that only needs samples asks for a shorter
 * one), and the rule files given. It can be killed and started again on
 * the same port and data (the fleet tests); killed (and its files removed)
 * in teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { closedPort, within, type Teardown } from '../helpers.js'

export interface PrometheusServer {
  url: string
  /** GET an API path; resolves the parsed JSON `data` or throws with Prometheus' error. */
  api: (path: string, params?: Record<string, string | string[]>) => Promise<unknown>
  /** The server's stderr so far (for failure messages). */
  log: () => string
  /** SIGKILL, as a crash: resolves once the process is gone. */
  kill: () => Promise<void>
  /** Starts it again on the same port and data dir; resolves once it is ready. */
  restart: () => Promise<void>
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export async function startPrometheus (t: Teardown, binary: string, options: { targets: string[], labels?: Record<string, string>, ruleFiles?: string[], readyTimeoutMs?: number, scrapeIntervalMs?: number }): Promise<PrometheusServer> {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-prometheus-'))
  const port = await closedPort()
  const intervalMs = options.scrapeIntervalMs ?? 1000
  const config = {
    global: { scrape_interval: `${intervalMs}ms`, evaluation_interval: `${intervalMs}ms`, scrape_timeout: `${Math.floor(intervalMs * 0.9)}ms` },
    rule_files: options.ruleFiles ?? [],
    scrape_configs: [{ job_name: 'faultline', metrics_path: '/metrics', static_configs: [{ targets: options.targets, ...(options.labels !== undefined ? { labels: options.labels } : {}) }] }]
  }
  // JSON is YAML: no serializer needed for the config file.
  await writeFile(join(dir, 'prometheus.yml'), JSON.stringify(config))
  let stderr = ''
  let child!: ChildProcess
  let exited: Promise<void> = Promise.resolve()
  const url = `http://127.0.0.1:${port}`
  const start = async (): Promise<void> => {
    child = spawn(binary, [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn'
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    const running = child
    running.stderr?.on('data', (chunk: Buffer) => { if (stderr.length < 64 * 1024) stderr += chunk.toString('utf8') })
    exited = new Promise<void>((resolve) => { running.once('exit', () => { resolve() }) })
    const deadline = Date.now() + (options.readyTimeoutMs ?? 30_000)
    for (let i = 0; i < 300; i++) {
      if (running.exitCode !== null) throw new Error(`prometheus exited with ${running.exitCode}: ${stderr}`)
      try {
        const res = await request(`${url}/-/ready`, { headersTimeout: 1000, bodyTimeout: 1000 })
        await res.body.dump()
        if (res.statusCode === 200) break
      } catch {}
      if (Date.now() > deadline) throw new Error(`prometheus not ready after ${options.readyTimeoutMs ?? 30_000} ms: ${stderr}`)
      await sleep(100)
    }
  }
  const running = (): boolean => child.exitCode === null && child.signalCode === null
  t.teardown(async () => {
    if (running()) {
      child.kill('SIGTERM')
      const killed = await within(exited.then(() => true), 5000, false)
      if (!killed) { child.kill('SIGKILL'); await within(exited, 2000) }
    }
    await rm(dir, { recursive: true, force: true })
  })
  await start()
  const kill = async (): Promise<void> => {
    if (!running()) return
    child.kill('SIGKILL')
    await exited
  }

  const api = async (path: string, params: Record<string, string | string[]> = {}): Promise<unknown> => {
    const qs = new URLSearchParams()
    for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) qs.append(k, one)
    const res = await request(`${url}${path}?${qs.toString()}`, { headersTimeout: 10_000, bodyTimeout: 10_000 })
    const body = await res.body.json() as { status: string, data?: unknown, error?: string, errorType?: string }
    if (body.status !== 'success') throw new Error(`${path} ${qs.toString()}: ${body.errorType ?? ''} ${body.error ?? res.statusCode}`)
    return body.data
  }
  return { url, api, log: () => stderr, kill, restart: start }
}
