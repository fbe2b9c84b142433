/**
 * Fixtures for the deferral tests: an upstream that can be down (nothing
 * listening on its port) and come back on the same port, and a proxy
 * config with a `defer` step and short timings.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { closedPort, route, type Fetched, type ProxyTestConfig, type Teardown } from '../helpers.js'

export const TOKEN = 'deferral-test-token-0123456789'

export interface Received { method: string, url: string, key: string | undefined, body: string, headers: IncomingMessage['headers'] }

/** An upstream on a fixed port, down until up() and down again after down(); it records what it received. */
export interface FlakyUpstream {
  url: string
  port: number
  received: Received[]
  up: (handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void) => Promise<void>
  down: () => Promise<void>
}

export async function flakyUpstream (t: Teardown): Promise<FlakyUpstream> {
  const port = await closedPort()
  const received: Received[] = []
  let server: Server | undefined
  const down = async (): Promise<void> => {
    const s = server
    server = undefined
    if (s === undefined) return
    s.closeAllConnections()
    await new Promise<void>((resolve) => s.close(() => { resolve() }))
  }
  const up = async (handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<void> => {
    await down()
    const s = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8')
        received.push({ method: req.method ?? '', url: req.url ?? '', key: req.headers['idempotency-key'] as string | undefined, body, headers: req.headers })
        if (handler !== undefined) return handler(req, res, body)
        res.writeHead(201, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ created: body }))
      })
    })
    // The port was free when picked, but while nothing listens on it the kernel may hand it out as the source port of
    // an outgoing connection (the deliverer's own retries can even connect to themselves): EADDRINUSE lasts as long as
    // that connection, so try again for a bounded while instead of failing the test.
    for (let attempt = 1; ; attempt++) {
      const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
        s.once('error', resolve)
        s.listen(port, '127.0.0.1', () => { s.off('error', resolve); resolve(undefined) })
      })
      if (error === undefined) break
      if (error.code !== 'EADDRINUSE' || attempt >= 50) throw error
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    server = s
  }
  t.teardown(down)
  return { url: `http://127.0.0.1:${port}`, port, received, up, down }
}

export async function tempDir (t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-deferral-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** A proxy config: one route `pay` on /pay with a defer step (fast timings), the journal in `dir`. */
export function deferConfig (dir: string, upstreamUrl: string, defer: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): ProxyTestConfig {
  return {
    admin: { token: TOKEN },
    log: { level: 'silent' },
    deferral: { dir },
    routes: [route('pay', '/pay', upstreamUrl, {
      upstream: { url: upstreamUrl, connectTimeoutMs: 500 },
      resilience: {
        timeoutMs: 2_000,
        fallback: [{ defer: { backoff: { baseMs: 20, maxMs: 80 }, ratePerSecond: 100, attemptTimeoutMs: 1_000, ...defer } }],
        ...(extra.resilience as Record<string, unknown> | undefined)
      },
      ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'resilience'))
    })]
  } as ProxyTestConfig
}

/** An admin call; `token: null` sends none. */
export async function admin (adminUrl: string, path: string, method = 'GET', token: string | null = TOKEN): Promise<Fetched & { json: () => any }> {
  const res = await request(`${adminUrl}${path}`, { method: method as 'GET', headers: token === null ? {} : { authorization: `Bearer ${token}` } })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body, ms: 0, json: () => JSON.parse(body) }
}

/** Polls `check` every 20 ms until it returns true or `ms` pass. */
export async function until (check: () => boolean | Promise<boolean>, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return await check()
}
