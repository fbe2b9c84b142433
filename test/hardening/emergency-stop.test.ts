/**
 * The emergency stop is always reachable (issue 12): wrong tokens from the
 * same address never lock the right one out of POST /chaos/off, and
 * SIGUSR2 stops every injection, in-flight waits included, with no
 * network and no token.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { closedPort, fetchText, route, startProxy, startUpstream } from '../helpers.js'
import { CLI } from '../repo.js'

const TOKEN = 'test-token-0123456789abcdef'

t.test('after 50 wrong tokens from the same address the right one still turns chaos off', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('real') })
  const proxy = await startProxy(t, {
    admin: { token: TOKEN },
    routes: [route('a', '/a', upstream.url, { chaos: { enabled: true, faults: [{ kind: 'abort', status: 503 }] } })]
  })
  t.equal((await fetchText(`${proxy.url}/a`)).status, 503, 'chaos is on')
  const statuses = new Set<number>()
  for (let i = 0; i < 50; i++) {
    statuses.add((await fetchText(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: { authorization: `Bearer wrong-${i}-xxxxxxxxxxxxxxxx` } })).status)
  }
  t.same([...statuses].sort(), [401, 429], 'wrong tokens are refused, then throttled')
  const off = await fetchText(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })
  t.equal(off.status, 200, 'the right token is not throttled')
  t.equal(JSON.parse(off.body).killSwitch, 'off')
  const after = await fetchText(`${proxy.url}/a`)
  t.equal(after.status, 200, 'injection stopped')
  t.equal(after.body, 'real')
})

t.test('SIGUSR2 stops all injection within a second, in-flight injected delays included', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('real') })
  const port = await closedPort()
  const adminPort = await closedPort()
  const file = join(t.testdir({}), 'faultline.yaml')
  await writeFile(file, [
    `listen: { host: 127.0.0.1, port: ${port} }`,
    `admin: { port: ${adminPort} }`,
    'log: { level: info }',
    'routes:',
    '  - name: slow',
    '    match: { pathPrefix: /slow }',
    `    upstream: { url: "${upstream.url}" }`,
    '    resilience: { timeoutMs: 60000 }',
    '    chaos: { enabled: true, faults: [{ kind: latency, ms: 30000 }] }',
    '  - name: failing',
    '    match: { pathPrefix: /failing }',
    `    upstream: { url: "${upstream.url}" }`,
    '    chaos: { enabled: true, faults: [{ kind: abort, status: 503 }] }',
    ''
  ].join('\n'))
  const child = spawn(process.execPath, [...CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { output += c.toString() })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  for (let i = 0; i < 400 && !output.includes('faultline ready'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(output, /faultline ready/)
  t.equal((await fetchText(`http://127.0.0.1:${port}/failing`)).status, 503, 'chaos is on')
  const inFlight = fetchText(`http://127.0.0.1:${port}/slow`, { timeoutMs: 20_000 })
  await new Promise((resolve) => setTimeout(resolve, 300))
  const signalled = performance.now()
  child.kill('SIGUSR2')
  const released = await inFlight
  t.equal(released.body, 'real', 'the in-flight injected delay was released to the upstream')
  // The stop acts as soon as the process handles the signal (tens of ms when idle); the bound leaves
  // room for a loaded test machine and is still 10x shorter than the 30 s delay it released.
  const tookMs = Math.round(performance.now() - signalled)
  t.ok(tookMs < 3000, `released at once, not after the 30 s delay (${tookMs} ms)`)
  t.equal((await fetchText(`http://127.0.0.1:${port}/failing`)).status, 200, 'no new injection')
  for (let i = 0; i < 40 && !output.includes('kill switch off by signal'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(output, /kill switch off by signal/, 'logged')
  const chaos = JSON.parse((await fetchText(`http://127.0.0.1:${adminPort}/chaos`)).body)
  t.equal(chaos.killSwitch, 'off')
  child.kill('SIGTERM')
})
