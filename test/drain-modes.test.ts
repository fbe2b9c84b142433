/**
 * The two shutdown modes, with a real client sending during the drain:
 * stop-accepting refuses new connections at once and finishes what is in
 * flight; keep-accepting serves new requests for the whole drain window (an
 * application beside the sidecar may still be shutting down and calling
 * out), then stops. The last test drives the real CLI with SIGTERM.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { request as httpRequest } from 'node:http'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { closedPort, route, startProxy, startUpstream, type StartedProxy, type Teardown } from './helpers.js'
import { CLI } from './repo.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** One GET on a new TCP connection (no keep-alive pool), as a starting application would send it. */
async function freshGet (url: string, timeoutMs = 3_000): Promise<string> {
  return await new Promise<string>((resolve) => {
    const req = httpRequest(url, { agent: false, timeout: timeoutMs }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => { resolve(`${res.statusCode} ${body}`) })
      res.on('error', () => { resolve('cut') })
    })
    req.on('timeout', () => { req.destroy(new Error('timeout')) })
    req.on('error', (err: NodeJS.ErrnoException) => { resolve(err.code === 'ECONNREFUSED' ? 'refused' : err.code === 'ECONNRESET' || err.message === 'socket hang up' ? 'cut' : err.message) })
    req.end()
  })
}

/** Sends a request on a new connection every `everyMs` until `untilMs` after now; bounded in count. */
async function sendDuring (url: string, untilMs: number, everyMs = 100): Promise<Array<{ at: number, result: string }>> {
  const started = Date.now()
  const pending: Array<Promise<{ at: number, result: string }>> = []
  for (let i = 0; i < 100 && Date.now() - started < untilMs; i++) {
    const at = Date.now() - started
    pending.push(freshGet(url).then((result) => ({ at, result })))
    await sleep(everyMs)
  }
  return await Promise.all(pending)
}

async function proxyWith (t: Teardown, mode: 'stop-accepting' | 'keep-accepting', drainMs: number): Promise<StartedProxy> {
  const upstream = await startUpstream(t, (_req, res) => { setTimeout(() => res.end('ok'), 20) })
  return await startProxy(t, { shutdown: { drainMs, mode }, routes: [route('svc', '/svc', upstream.url)] })
}

t.test('stop-accepting (the default): new connections are refused as soon as shutdown starts', async (t) => {
  const proxy = await proxyWith(t, 'stop-accepting', 1_000)
  t.equal(await freshGet(`${proxy.url}/svc`), '200 ok')
  const closing = proxy.faultline.close()
  const during = await sendDuring(`${proxy.url}/svc`, 300)
  await closing
  t.ok(during.length >= 2, `${during.length} requests sent during shutdown`)
  // One accepted in the instant before the listener closes is closed unanswered; none is served.
  t.ok(during.every((d) => d.result === 'refused' || d.result === 'cut'), `no new request is served: ${during.map((d) => d.result).join(', ')}`)
  t.equal(during.at(-1)?.result, 'refused', 'new connections are refused once the listener is closed')
})

t.test('a connection that never sent a request does not hold the drain', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { shutdown: { drainMs: 5_000 }, routes: [route('svc', '/', upstream.url)] })
  // A client's preconnect: a TCP connection with no request on it (Node's closeIdleConnections leaves it).
  const { connect } = await import('node:net')
  const idle = connect(proxy.faultline.proxyPort, '127.0.0.1')
  idle.on('error', () => {})
  await new Promise<void>((resolve) => idle.once('connect', () => { resolve() }))
  const closedByServer = new Promise<void>((resolve) => idle.once('close', () => { resolve() }))
  t.equal(await freshGet(proxy.url), '200 ok', 'served before the shutdown')
  const started = Date.now()
  await proxy.faultline.close()
  const ms = Date.now() - started
  await closedByServer
  t.ok(ms < 2_000, `the drain ended in ${ms} ms, not at drainMs (5000 ms)`)
})

t.test('keep-accepting: new requests are served for the whole window, then the listener closes', async (t) => {
  const drainMs = 1_200
  const proxy = await proxyWith(t, 'keep-accepting', drainMs)
  const t0 = Date.now()
  const closing = proxy.faultline.close().then(() => Date.now() - t0)
  t.equal(proxy.faultline.isReady, false, 'not ready at once (out of the Service endpoints)')
  // Stop sending well before the window ends, so no request straddles the cut.
  const during = await sendDuring(`${proxy.url}/svc`, drainMs - 400)
  t.ok(during.length >= 5, `${during.length} requests sent during the window`)
  for (const d of during) t.equal(d.result, '200 ok', `sent ${d.at} ms into the window: answered`)
  const took = await closing
  t.ok(took >= drainMs - 50, `stopped at the end of the window (${took} ms)`)
  t.ok(took < drainMs + 2_000, 'and promptly')
  t.equal(await freshGet(`${proxy.url}/svc`), 'refused', 'then the listener is gone')
})

t.test('keep-accepting: a request still in flight at the window\'s end is cut; a forced stop ends the window early', async (t) => {
  const upstream = await startUpstream(t, () => { /* never answers */ })
  const proxy = await startProxy(t, { shutdown: { drainMs: 300, mode: 'keep-accepting' }, routes: [route('hang', '/hang', upstream.url)] })
  const inflight = freshGet(`${proxy.url}/hang`, 5_000)
  await sleep(50)
  await proxy.faultline.close()
  t.equal(await inflight, 'cut', 'the window is the whole budget: what is left is cut')

  const other = await proxyWith(t, 'keep-accepting', 30_000)
  const t0 = Date.now()
  void other.faultline.close()
  await sleep(100)
  t.equal(await freshGet(`${other.url}/svc`), '200 ok', 'serving in the window')
  await other.faultline.close('stop-accepting')
  t.ok(Date.now() - t0 < 5_000, 'close(\'stop-accepting\') ended a 30 s window at once')
})

t.test('the CLI on SIGTERM with shutdown.mode keep-accepting: a client sending during shutdown is served, exit 0', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const port = await closedPort()
  const adminPort = await closedPort()
  const file = join(t.testdir({}), 'faultline.yaml')
  const drainMs = 1_500
  await writeFile(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: ${adminPort} }\nshutdown: { drainMs: ${drainMs}, mode: keep-accepting }\nroutes:\n  - name: svc\n    match: { pathPrefix: /svc }\n    upstream: { url: "${upstream.url}" }\n`)
  const child = spawn(process.execPath, [...CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  // Bounded, and generous: tsx compiling the CLI on a loaded machine has taken over 15 s.
  for (let i = 0; i < 600 && !output.includes('faultline ready') && child.exitCode === null; i++) await sleep(100)
  t.match(output, /faultline ready/)

  const t0 = Date.now()
  child.kill('SIGTERM')
  const during = await sendDuring(`http://127.0.0.1:${port}/svc`, drainMs - 500)
  const ready = await freshGet(`http://127.0.0.1:${adminPort}/readyz`)
  t.match(ready, /^503 /, 'readiness is down during the window')
  t.ok(during.length >= 5, `${during.length} requests sent after SIGTERM`)
  for (const d of during) t.equal(d.result, '200 ok', `sent ${d.at} ms after SIGTERM: answered`)
  t.equal(await exited, 0, 'exit 0')
  t.ok(Date.now() - t0 >= drainMs - 50, 'after the window')
  t.equal(await freshGet(`http://127.0.0.1:${port}/svc`), 'refused')
})
