/**
 * The process under its own faults and sustained load: stray rejections
 * and exceptions, 10,000 failed upstream connections, 20 reloads under
 * load, SIGTERM under load. Bounded in count and time (2-core machines).
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Pool } from 'undici'
import { closedPort, fetchText, route, startProxy, startUpstream, type Teardown } from '../helpers.js'
import { LOADER_ARGS, sourceModule } from '../repo.js'

const CLI = [...LOADER_ARGS, '--import', join(import.meta.dirname, 'fixtures', 'misbehave.mjs'), sourceModule('src/cli.ts')]

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function startCli (t: Teardown, file: string, env: Record<string, string> = {}): Promise<{ child: ChildProcess, output: () => string, exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [...CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let output = ''
  child.stdout?.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr?.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { resolve(code) }))
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  for (let i = 0; i < 600 && !output.includes('faultline ready'); i++) await sleep(50)
  if (!output.includes('faultline ready')) throw new Error(`faultline did not start:\n${output}`)
  return { child, output: () => output, exited }
}

async function cliConfig (t: { testdir: () => string }, upstreamUrl: string, extra = ''): Promise<{ file: string, port: number }> {
  const port = await closedPort()
  const adminPort = await closedPort()
  const file = join(t.testdir(), 'faultline.yaml')
  await writeFile(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: ${adminPort} }\n${extra}routes:\n  - name: svc\n    match: { pathPrefix: / }\n    upstream: { url: "${upstreamUrl}" }\n`)
  return { file, port }
}

const openFds = (): number => readdirSync('/proc/self/fd').length

// The CLI tests spawn real processes (seconds each to start on a loaded machine): the two that may
// share one do (a process that survived a lost rejection is then drained by SIGTERM under load),
// and they run beside the one that must exit 1. They end before the fd-leak test counts this
// process's descriptors.
t.test('the CLI process', async (t) => {
  t.jobs = 2

  t.test('an unhandled rejection is logged and the proxy keeps serving; then SIGTERM under load: every in-flight request completes', async (t) => {
    const upstream = await startUpstream(t, (req, res) => {
      if (req.url?.startsWith('/slow') === true) setTimeout(() => res.end('done'), 1_000)
      else res.end('fine')
    })
    const { file, port } = await cliConfig(t, upstream.url, 'shutdown: { drainMs: 8000 }\n')
    const cli = await startCli(t, file, { FAULTLINE_TEST_MISBEHAVE: 'rejection' })
    cli.child.kill('SIGUSR2')
    for (let i = 0; i < 100 && !cli.output().includes('unhandled promise rejection'); i++) await sleep(50)
    t.match(cli.output(), /unhandled promise rejection; still serving/)
    t.match(cli.output(), /a bug lost a rejected promise/)
    t.equal((await fetchText(`http://127.0.0.1:${port}/x`)).body, 'fine', 'still serving')
    t.equal(cli.child.exitCode, null, 'still running')

    const before = upstream.hits()
    const inflight = Array.from({ length: 40 }, async (_, i) => await fetchText(`http://127.0.0.1:${port}/slow/r${i}`).then((r) => r.status, () => 0))
    // Only requests already in flight must complete: wait until all 40 reached the upstream.
    for (let i = 0; i < 500 && upstream.hits() - before < 40; i++) await sleep(10)
    t.equal(upstream.hits() - before, 40, 'all 40 in flight')
    cli.child.kill('SIGTERM')
    const statuses = await Promise.all(inflight)
    t.same(statuses, statuses.map(() => 200), 'all 40 answered 200')
    t.equal(await cli.exited, 0)
  })

  t.test('an uncaught exception drains in-flight requests, then exits 1', async (t) => {
    const upstream = await startUpstream(t, (_req, res) => { setTimeout(() => res.end('complete'), 1_000) })
    const { file, port } = await cliConfig(t, upstream.url, 'shutdown: { drainMs: 5000 }\n')
    const cli = await startCli(t, file, { FAULTLINE_TEST_MISBEHAVE: 'exception' })
    const inflight = fetchText(`http://127.0.0.1:${port}/x`)
    for (let i = 0; i < 300 && upstream.hits() < 1; i++) await sleep(10)
    cli.child.kill('SIGUSR2')
    const res = await inflight
    t.equal(res.status, 200, 'the in-flight request completes')
    t.equal(res.body, 'complete')
    t.equal(await cli.exited, 1)
    t.match(cli.output(), /uncaught exception: draining/)
  })
})

t.test('no file-descriptor leak after 10,000 failed upstream connections', async (t) => {
  const dead = await closedPort()
  const proxy = await startProxy(t, { log: { level: 'warn' }, routes: [route('dead', '/', `http://127.0.0.1:${dead}`)] })
  const client = new Pool(proxy.url, { connections: 32 })
  const statuses = new Map<number, number>()
  const fire = async (n: number): Promise<void> => {
    const queue = Array.from({ length: n }, (_, i) => i)
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (queue.pop() !== undefined) {
        const res = await client.request({ path: '/x', method: 'GET' })
        await res.body.dump()
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
      }
    }))
  }
  await fire(200) // warm-up: client connections, lazy modules
  const before = openFds()
  const t0 = Date.now()
  await fire(10_000)
  const ms = Date.now() - t0
  await sleep(300)
  const after = openFds()
  await client.close()
  t.equal(statuses.get(502), 10_200, 'every request failed to connect and got 502')
  t.ok(after - before <= 8, `open fds ${before} -> ${after} after 10,000 failed connects in ${ms} ms`)
})

t.test('20 reloads under sustained load fail no request', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const file = join(t.testdir({}), 'faultline.json')
  const write = async (i: number): Promise<void> => {
    // Alternating pool options force a new upstream pool on every reload, the hard case.
    await writeFile(file, JSON.stringify({ log: { level: 'warn' }, routes: [route('svc', '/', upstream.url, { upstream: { url: upstream.url, connections: 8 + (i % 2) }, resilience: { timeoutMs: 5_000 + i } })] }))
  }
  await write(0)
  const proxy = await startProxy(t, JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(file, 'utf8'))) as never, { configFile: file })
  const client = new Pool(proxy.url, { connections: 16 })
  let stop = false
  let ok = 0
  const failures: string[] = []
  const loops = Array.from({ length: 16 }, async () => {
    while (!stop) {
      try {
        const res = await client.request({ path: '/x', method: 'GET' })
        const body = await res.body.text()
        if (res.statusCode === 200 && body === 'ok') ok++
        else failures.push(`${res.statusCode} ${body.slice(0, 100)}`)
      } catch (err) {
        failures.push((err as Error).message)
      }
    }
  })
  for (let i = 1; i <= 20; i++) {
    await sleep(100)
    await write(i)
    await proxy.faultline.reload()
  }
  await sleep(100)
  stop = true
  await Promise.all(loops)
  await client.close()
  t.same(failures, [], 'no request failed')
  t.ok(ok > 200, `${ok} requests served across 20 reloads`)
})
