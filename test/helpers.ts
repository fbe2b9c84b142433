/**
 * Shared test fixtures: real servers on 127.0.0.1, random ports, torn down
 * by tap after each test. No mocks: the proxy under test is the real one.
 */
import { accessSync, constants } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { delimiter, join } from 'node:path'
import { Writable } from 'node:stream'
import { request } from 'undici'
import { Faultline } from '../src/faultline.js'
import { parseConfig } from '../src/config/load.js'
import type { ConfigInput, RouteConfig } from '../src/config/schema.js'
import { createLogger } from '../src/log.js'
import { parsePrometheusText, sumOf, type Sample } from '../src/metrics/text.js'

export { sumOf, type Sample }

/** The part of tap's Test the fixtures need; avoids importing tap types here. */
export interface Teardown { teardown: (fn: () => unknown) => void }

export interface TestUpstream {
  server: Server
  url: string
  port: number
  /** Requests the upstream has received. */
  hits: () => number
  close: () => Promise<void>
}

export async function startUpstream (t: Teardown, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestUpstream> {
  let hits = 0
  const server = createServer((req, res) => { hits++; handler(req, res) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const close = async (): Promise<void> => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }
  t.teardown(close)
  return { server, url: `http://127.0.0.1:${port}`, port, hits: () => hits, close }
}

/**
 * `promise`'s value, or `fallback` once `ms` passed, whichever comes first.
 * The timer is cleared when the promise wins: a `Promise.race` against a
 * bare sleep leaves its timer pending, and tap ends a test file only once
 * nothing is pending, so each such race kept its process alive for the rest
 * of its timeout after the last test (5 s per file for a Redis or
 * Prometheus teardown; docs/TESTING.md, "CI time").
 */
export async function within<T, F = undefined> (promise: Promise<T>, ms: number, fallback?: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<F>((resolve) => { timer = setTimeout(() => { resolve(fallback as F) }, ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** A port nothing listens on (bound, then released). */
export async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

/** Collects log lines in memory so tests can assert on them. */
export class LogCapture extends Writable {
  readonly lines: Array<Record<string, unknown>> = []
  override _write (chunk: Buffer, _enc: string, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) if (line) this.lines.push(JSON.parse(line) as Record<string, unknown>)
    cb()
  }
}

export interface StartedProxy {
  faultline: Faultline
  /** http://127.0.0.1:<proxy port> */
  url: string
  adminUrl: string
  logs: LogCapture
}

/** Starts faultline on free loopback ports with the given config (validated like a file). */
/** Config for startProxy: an input config (listen/admin optional), or routes taken from an already-parsed one. */
export type ProxyTestConfig = (Omit<ConfigInput, 'listen' | 'admin'> & Partial<Pick<ConfigInput, 'listen' | 'admin'>>) | { routes: RouteConfig[], [key: string]: unknown }

export async function startProxy (t: Teardown, config: ProxyTestConfig, options: { configFile?: string, watchFiles?: boolean } = {}): Promise<StartedProxy> {
  const given = config as { listen?: object, admin?: object }
  const full = {
    ...config,
    listen: { host: '127.0.0.1', port: 0, ...given.listen },
    admin: { host: '127.0.0.1', port: 0, ...given.admin }
  }
  const parsed = parseConfig(full, options.configFile ?? 'test-config')
  const logs = new LogCapture()
  const faultline = await Faultline.start(parsed, { configFile: options.configFile, watchFiles: options.watchFiles, logger: createLogger(parsed.log.level, logs) })
  t.teardown(async () => { await faultline.close() })
  return { faultline, url: `http://127.0.0.1:${faultline.proxyPort}`, adminUrl: `http://127.0.0.1:${faultline.adminPort}`, logs }
}

export async function scrape (proxy: StartedProxy): Promise<Sample[]> {
  const res = await request(`${proxy.adminUrl}/metrics`)
  return parsePrometheusText(await res.body.text())
}

export interface Fetched { status: number, headers: Record<string, string | string[] | undefined>, body: string, ms: number }

/** One request with a fresh connection-less client; bounded by `timeoutMs`. */
export async function fetchText (url: string, init: { method?: string, headers?: Record<string, string>, body?: string | Buffer, timeoutMs?: number } = {}): Promise<Fetched> {
  const t0 = performance.now()
  const res = await request(url, {
    method: (init.method ?? 'GET') as 'GET',
    headers: init.headers,
    body: init.body,
    headersTimeout: init.timeoutMs ?? 10_000,
    bodyTimeout: init.timeoutMs ?? 10_000
  })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body, ms: performance.now() - t0 }
}

/** A route config for one upstream, with overrides. */
export function route (name: string, pathPrefix: string, url: string, extra: Record<string, unknown> = {}): NonNullable<ConfigInput['routes']>[number] {
  return { name, match: { pathPrefix }, upstream: { url }, ...extra } as NonNullable<ConfigInput['routes']>[number]
}

/**
 * Sends raw bytes on a fresh TCP connection and returns everything the
 * server sent until it closed (or `timeoutMs` passed). For requests no
 * well-behaved client library would send.
 */
export async function rawExchange (port: number, payload: string, timeoutMs = 5_000): Promise<string> {
  const { connect } = await import('node:net')
  return await new Promise<string>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => { socket.destroy(); resolve(Buffer.concat(chunks).toString('latin1')) }, timeoutMs)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')) })
    socket.write(payload)
  })
}

/** The absolute path of an executable on PATH, or undefined. */
export function which (name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, name)
    try { accessSync(candidate, constants.X_OK); return candidate } catch {}
  }
  return undefined
}

/** The Debian package that provides each external program a test runs (.ci/run installs them). */
const PACKAGE_OF: Record<string, string> = {
  promtool: 'prometheus',
  prometheus: 'prometheus',
  chromium: 'chromium',
  'redis-server': 'redis-server',
  openssl: 'openssl',
  // kustomize, built into kubectl (test/kubernetes.test.ts); the machine image ships the `kubectl` package.
  kubectl: 'kubectl'
}

/** True under CI (CI=true, as .ci/run and CI services set it). */
export function inCI (): boolean {
  const ci = process.env.CI
  return ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false'
}

export type NeededTool = { path: string, skip: false } | { path: undefined, skip: string }

/**
 * An external program some tests need, looked up once per test file.
 * Found: its path, and `skip: false`. Missing in CI: throws, so the file
 * fails saying how to install it (a skipped test would let `npm test`
 * pass without having tested anything). Missing outside CI: a skip reason
 * for tap's `skip` option, also printed to stderr so it is not missed.
 */
export function needTool (name: string): NeededTool {
  const path = which(name)
  if (path !== undefined) return { path, skip: false }
  const pkg = PACKAGE_OF[name] ?? name
  const how = `${name} not found on PATH: install it (apt-get install ${pkg}; .ci/run does)`
  if (inCI()) throw new Error(`${how}. CI=true, so the tests that need it fail instead of skipping.`)
  process.stderr.write(`\n*** SKIPPING the tests that need ${name}: ${how}. In CI (CI=true) they fail. ***\n\n`)
  return { path: undefined, skip: how }
}
