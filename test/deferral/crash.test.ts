/**
 * A real faultline process killed (SIGKILL: no drain, no flush) between
 * the 202 and the delivery, its journal's last write torn, then started
 * again: every accepted write is delivered once, and the caller's retry
 * with the same key is answered from that delivery.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { appendFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { closedPort, fetchText, type Teardown } from '../helpers.js'
import { TOKEN, admin, flakyUpstream, tempDir, until } from './fixtures.js'
import { CLI } from '../repo.js'

async function startCli (t: Teardown, file: string): Promise<{ child: ChildProcess, output: () => string, exited: Promise<unknown> }> {
  const child = spawn(process.execPath, [...CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr?.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise((resolve) => child.on('exit', resolve))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  for (let i = 0; i < 300 && !output.includes('faultline ready'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  if (!output.includes('faultline ready')) throw new Error(`faultline did not start:\n${output}`)
  return { child, output: () => output, exited }
}

t.test('SIGKILL between accept and delivery, a torn journal tail, a restart: each write delivered once', async (t) => {
  const upstream = await flakyUpstream(t)
  const dir = await tempDir(t)
  const port = await closedPort()
  const adminPort = await closedPort()
  const file = join(dir, 'faultline.json')
  await writeFile(file, JSON.stringify({
    listen: { host: '127.0.0.1', port },
    admin: { port: adminPort, token: TOKEN },
    log: { level: 'info' },
    deferral: { dir: join(dir, 'journal') },
    routes: [{
      name: 'pay',
      match: { pathPrefix: '/pay' },
      upstream: { url: upstream.url, connectTimeoutMs: 500 },
      resilience: { timeoutMs: 2000, fallback: [{ defer: { backoff: { baseMs: 50, maxMs: 200 }, ratePerSecond: 50 } }] }
    }]
  }))
  const first = await startCli(t, file)
  const ids: string[] = []
  for (const key of ['a', 'b', 'c']) {
    const res = await fetchText(`http://127.0.0.1:${port}/pay/${key}`, { method: 'POST', headers: { 'idempotency-key': key }, body: `{"key":"${key}"}` })
    t.equal(res.status, 202)
    ids.push(JSON.parse(res.body).id as string)
  }
  // Killed right after the last 202: whatever was acknowledged must be on disk already.
  first.child.kill('SIGKILL')
  await first.exited
  // And a crash in the middle of a later append leaves half a line behind.
  await appendFile(join(dir, 'journal', 'deferrals.journal'), '0123456789abcdef {"op":"add","e":{"id":"half')
  t.equal(upstream.received.length, 0, 'nothing was delivered before the crash')

  await upstream.up()
  const second = await startCli(t, file)
  t.ok(await until(() => upstream.received.length >= 3, 8_000), 'delivered after the restart')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(upstream.received.map((r) => r.key), ['a', 'b', 'c'], 'each once, in order, with its key')
  t.match(second.output(), /lines that failed their checksum were skipped/, 'the torn line was noticed')
  for (const id of ids) {
    t.ok(await until(async () => (await admin(`http://127.0.0.1:${adminPort}`, `/deferrals/${id}`)).json().state === 'delivered'))
  }
  const retry = await fetchText(`http://127.0.0.1:${port}/pay/a`, { method: 'POST', headers: { 'idempotency-key': 'a' }, body: '{"key":"a"}' })
  t.equal(retry.status, 201, "the caller's retry gets the delivery's answer")
  t.equal(upstream.received.length, 3, 'and no second write')
  second.child.kill('SIGTERM')
  await second.exited
})
