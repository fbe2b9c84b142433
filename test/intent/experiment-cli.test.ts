import t from 'tap'
import { spawn } from 'node:child_process'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { request } from 'undici'
import { closedPort, startUpstream } from '../helpers.js'
import { CLI } from '../repo.js'

t.test('faultline experiment runs against live traffic for its duration, then writes JSON, Markdown and HTML and exits 0', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('{"id":1}') })
  const port = await closedPort()
  const adminPort = await closedPort()
  const dir = t.testdir({})
  const file = join(dir, 'faultline.yaml')
  await writeFile(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: ${adminPort} }\ncontroller: { evaluationMs: 500ms, minRequests: 5 }\nroutes:\n  - name: svc\n    match: { pathPrefix: /svc }\n    upstream: { url: "${upstream.url}" }\n    intent: { protects: availability }\n    chaos: { enabled: true, budget: 0.2, seed: 9 }\n`)
  const child = spawn(process.execPath, [...CLI, 'experiment', '--config', file, '--duration', '4s', '--mode', 'uniform', '--out', join(dir, 'out')], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout.on('data', (c: Buffer) => { output += c.toString() })
  child.stderr.on('data', (c: Buffer) => { output += c.toString() })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  for (let i = 0; i < 200 && !output.includes('experiment started'); i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(output, /experiment started/)
  let sent = 0
  let gaveUp = 0
  const until = Date.now() + 1_500
  while (Date.now() < until && sent < 400) {
    sent++
    try {
      await (await request(`http://127.0.0.1:${port}/svc/x`, { headersTimeout: 2_000, bodyTimeout: 2_000 })).body.dump()
    } catch (err) {
      // A long injected delay outlasts our 2 s patience: a caller that gave up saw nothing, so the SLO report leaves it out.
      const code = (err as { code?: string }).code
      if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') gaveUp++
      // Anything else is an injected reset: the proxy counts it as a failure the caller saw.
    }
  }
  t.equal(await exited, 0)
  t.match(output, /# faultline experiment: uniform mode/)
  const files = (await readdir(join(dir, 'out'))).sort()
  t.equal(files.length, 3)
  t.match(files[0], /^faultline-experiment-uniform-.*\.html$/)
  t.match(files[1], /^faultline-experiment-uniform-.*\.json$/)
  t.match(files[2], /\.md$/)
  const report = JSON.parse(await readFile(join(dir, 'out', files[1]!), 'utf8')) as { routes: Array<{ route: string, requests: number, totalInjected: number }> }
  t.equal(report.routes[0]!.route, 'svc')
  t.equal(report.routes[0]!.requests, sent - gaveUp, 'every request whose caller waited for the answer is in the report')
  t.ok(report.routes[0]!.totalInjected > 0 && report.routes[0]!.totalInjected <= 0.2 * sent)
})
