/**
 * The real CLI process: SIGHUP reloads, SIGTERM drains in-flight requests
 * and exits 0.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { closedPort, fetchText, startUpstream, type Teardown } from './helpers.js'
import { CLI } from './repo.js'

async function startCli (t: Teardown, file: string): Promise<{ child: ChildProcess, output: () => string, exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [...CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr?.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  for (let i = 0; i < 200 && !output.includes('faultline ready'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  if (!output.includes('faultline ready')) throw new Error(`faultline did not start:\n${output}`)
  return { child, output: () => output, exited }
}

async function waitFor (check: () => boolean | Promise<boolean>, ms = 5_000): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}

t.test('SIGHUP reloads the config file; a bad file keeps the old one', async (t) => {
  const a = await startUpstream(t, (_req, res) => { res.end('a') })
  const b = await startUpstream(t, (_req, res) => { res.end('b') })
  const port = await closedPort()
  const adminPort = await closedPort()
  const dir = t.testdir({})
  const file = join(dir, 'faultline.yaml')
  const write = async (url: string): Promise<void> => {
    await writeFile(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: ${adminPort} }\nlog: { level: info }\nroutes:\n  - name: svc\n    match: { pathPrefix: /svc }\n    upstream: { url: "${url}" }\n`)
  }
  await write(a.url)
  const cli = await startCli(t, file)
  t.equal((await fetchText(`http://127.0.0.1:${port}/svc`)).body, 'a')
  await write(b.url)
  cli.child.kill('SIGHUP')
  t.ok(await waitFor(async () => (await fetchText(`http://127.0.0.1:${port}/svc`)).body === 'b'), 'the new upstream serves after SIGHUP')
  await writeFile(file, 'routes: nope\n')
  cli.child.kill('SIGHUP')
  t.ok(await waitFor(() => cli.output().includes('previous config stays live')), 'the failure is logged')
  t.match(cli.output(), /faultline\.yaml: routes: expected array, got \\"nope\\"/)
  t.equal((await fetchText(`http://127.0.0.1:${port}/svc`)).body, 'b', 'and the old config still serves')
  cli.child.kill('SIGTERM')
  t.equal(await cli.exited, 0)
})

t.test('SIGTERM: a slow in-flight request still completes, new connections are refused, exit 0', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { setTimeout(() => res.end('slow but complete'), 700) })
  const port = await closedPort()
  const adminPort = await closedPort()
  const dir = t.testdir({})
  const file = join(dir, 'faultline.yaml')
  await writeFile(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: ${adminPort} }\nshutdown: { drainMs: 5000 }\nroutes:\n  - name: slow\n    match: { pathPrefix: / }\n    upstream: { url: "${upstream.url}" }\n`)
  const cli = await startCli(t, file)
  const inflight = fetchText(`http://127.0.0.1:${port}/work`)
  await new Promise((resolve) => setTimeout(resolve, 150))
  cli.child.kill('SIGTERM')
  t.ok(await waitFor(async () => (await fetchText(`http://127.0.0.1:${adminPort}/readyz`).catch(() => ({ status: 0 }))).status !== 200, 2_000), 'readiness drops at once')
  const res = await inflight
  t.equal(res.status, 200)
  t.equal(res.body, 'slow but complete')
  t.equal(await cli.exited, 0)
  await t.rejects(fetchText(`http://127.0.0.1:${port}/work`, { timeoutMs: 1_000 }), 'the listener is gone after exit')
})

t.test('SIGTERM: the drain deadline cuts requests that would not finish', async (t) => {
  const upstream = await startUpstream(t, () => { /* never answers */ })
  const port = await closedPort()
  const adminPort = await closedPort()
  const dir = t.testdir({})
  const file = join(dir, 'faultline.yaml')
  await writeFile(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: ${adminPort} }\nshutdown: { drainMs: 300 }\nroutes:\n  - name: hang\n    match: { pathPrefix: / }\n    upstream: { url: "${upstream.url}" }\n`)
  const cli = await startCli(t, file)
  const inflight = fetchText(`http://127.0.0.1:${port}/hang`).then(() => 'answered', () => 'cut')
  await new Promise((resolve) => setTimeout(resolve, 150))
  const t0 = Date.now()
  cli.child.kill('SIGTERM')
  t.equal(await cli.exited, 0)
  t.ok(Date.now() - t0 < 3_000, 'exits soon after the 300 ms deadline')
  t.equal(await inflight, 'cut')
})
