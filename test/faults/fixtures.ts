/**
 * Fixtures for the fault tests: a route with chaos on, and a raw client
 * that reports exactly what a caller sees (status, bytes, socket error).
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { route, startProxy, startUpstream, type StartedProxy, type Teardown, type TestUpstream } from '../helpers.js'

export const TOKEN = 'test-admin-token-0123456789'

/** An upstream that answers every request with `body` as JSON (with content-length). */
export async function jsonUpstream (t: Teardown, body: unknown = { id: 1, name: 'lamp', price: 25 }): Promise<TestUpstream & { lastHeaders: () => IncomingHttpHeaders | undefined }> {
  let last: IncomingHttpHeaders | undefined
  const upstream = await startUpstream(t, (req, res) => {
    last = req.headers
    req.resume()
    req.on('end', () => {
      const payload = JSON.stringify(body)
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) })
      res.end(payload)
    })
  })
  return { ...upstream, lastHeaders: () => last }
}

/** An upstream that writes its body in `chunks`, `gapMs` apart, then ends it: a body the proxy sees as several writes. */
export async function chunkedUpstream (
  t: Teardown, chunks: string[], gapMs: number, headers: Record<string, string | number> = { 'content-type': 'text/plain' }
): Promise<TestUpstream> {
  return await startUpstream(t, (_req, res) => {
    res.writeHead(200, headers)
    let n = 0
    const more = (): void => {
      res.write(chunks[n]!)
      if (++n === chunks.length) { res.end(); return }
      setTimeout(more, gapMs)
    }
    more()
  })
}

/** A proxy with one route `svc` on /svc and the given chaos block (enabled, headers exposed, unless overridden). */
export async function chaosProxy (t: Teardown, upstreamUrl: string, chaos: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<StartedProxy> {
  return await startProxy(t, {
    admin: { token: TOKEN },
    routes: [route('svc', '/svc', upstreamUrl, { chaos: { enabled: true, exposeHeaders: true, ...chaos }, ...extra })]
  })
}

export interface Seen {
  status: number | undefined
  headers: IncomingHttpHeaders
  body: Buffer
  /** The socket error the client saw, if any: its code and message. */
  error: { code: string | undefined, message: string } | undefined
  ms: number
  /** When the first body bytes arrived (ms after the request), and how many reads brought the body. */
  firstDataMs: number | undefined
  dataEvents: number
}

/**
 * One request on a fresh connection, reporting what the client saw even
 * when the connection dies: the bytes before it, and the error.
 * `abortAfterMs` makes the client give up, as a caller's own timeout would.
 */
export async function see (url: string, init: {
  method?: string
  headers?: Record<string, string>
  body?: string | Buffer
  abortAfterMs?: number
  timeoutMs?: number
  /** Called with the bytes received so far, on each read. */
  onData?: (received: number) => void
} = {}): Promise<Seen> {
  const t0 = performance.now()
  return await new Promise<Seen>((resolve) => {
    const chunks: Buffer[] = []
    let status: number | undefined
    let headers: IncomingHttpHeaders = {}
    let settled = false
    let firstDataMs: number | undefined
    let received = 0
    const done = (err?: Error & { code?: string }): void => {
      if (settled) return
      settled = true
      clearTimeout(guard)
      clearTimeout(giveUp)
      const error = err === undefined ? undefined : { code: err.code, message: err.message }
      resolve({ status, headers, body: Buffer.concat(chunks), error, ms: performance.now() - t0, firstDataMs, dataEvents: chunks.length })
    }
    const req = httpRequest(url, { method: init.method ?? 'GET', headers: init.headers, agent: false }, (res) => {
      status = res.statusCode
      headers = res.headers
      res.on('data', (c: Buffer) => {
        firstDataMs ??= performance.now() - t0
        chunks.push(c)
        received += c.length
        init.onData?.(received)
      })
      res.on('end', () => { done() })
      res.on('error', done)
      res.on('aborted', () => { done(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })) })
    })
    req.on('error', done)
    // Every exchange is bounded: a test never waits forever.
    const guard = setTimeout(() => { req.destroy(Object.assign(new Error('test guard timeout'), { code: 'TEST_TIMEOUT' })) }, init.timeoutMs ?? 10_000)
    const giveUp = init.abortAfterMs === undefined ? undefined : setTimeout(() => { req.destroy(Object.assign(new Error('client gave up'), { code: 'CLIENT_GAVE_UP' })) }, init.abortAfterMs)
    req.end(init.body)
  })
}

/** Resolves when `predicate` holds, polling every 10 ms for at most `ms`. */
export async function eventually (predicate: () => boolean, ms = 3_000): Promise<boolean> {
  const until = performance.now() + ms
  while (performance.now() < until) {
    if (predicate()) return true
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return predicate()
}

export const auth = { authorization: `Bearer ${TOKEN}` }
