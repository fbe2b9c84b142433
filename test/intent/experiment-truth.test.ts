/**
 * Experiments that tell the truth: the report says how many windows were
 * judged, flags an experiment with too little traffic to judge (the CLI
 * exits 3 and hints to send traffic), and says when minRequests is out of
 * reach at the observed rate, instead of "retries absorbed everything".
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { reportMarkdown } from '../../src/intent/experiment-report.js'
import { closedPort, fetchText, route, startProxy, startUpstream, type Teardown } from '../helpers.js'
import { CLI } from '../repo.js'

// Each subtest has its own proxy (or CLI process) on its own ports and mostly waits for its
// experiment's clock: they run side by side.
t.jobs = 4

async function experimentProxy (t: Teardown, minRequests: number): Promise<Awaited<ReturnType<typeof startProxy>>> {
  const upstream = await startUpstream(t, (_req, res) => { res.end('{"ok":true}') })
  return await startProxy(t, {
    log: { level: 'silent' },
    controller: { evaluationMs: 200, minRequests, cooldownMs: 1000 },
    // An injected hang ends at 1 s, not at the default 15 s timeout.
    routes: [route('svc', '/svc', upstream.url, { resilience: { timeoutMs: 1000 }, intent: { criticality: 'optional' }, chaos: { enabled: true, budget: 0.2, seed: 3 } })]
  })
}

t.test('no traffic: nothing judged, flagged, and the report does not claim resilience', async (t) => {
  const proxy = await experimentProxy(t, 20)
  const { done } = await proxy.faultline.experiments.start('intent', 1_000)
  const report = await done
  t.equal(report.tooLittleTraffic, true)
  t.equal(report.traffic.requests, 0)
  t.equal(report.traffic.windowsJudged, 0)
  t.ok(report.traffic.windowsElapsed >= 3, `windows elapsed are counted (${report.traffic.windowsElapsed})`)
  t.match(report.notes, [/No request reached the proxy during the experiment/])
  const md = reportMarkdown(report)
  t.match(md, /\*\*Too little traffic to judge: nothing below is a verdict\.\*\*/)
  t.match(md, /0 of \d+ evaluation window\(s\) judged/)
  t.match(md, /No request reached this route: nothing was tested\./)
  t.notMatch(md, /retries and fallbacks absorbed them/, 'no claim of resilience from an untested route')
})

t.test('a trickle below minRequests: flagged, with the rate and what to change', async (t) => {
  const proxy = await experimentProxy(t, 50)
  // Stopped after the sixth request, not at a deadline the requests must beat on a loaded machine.
  const { done } = await proxy.faultline.experiments.start('intent', 60_000)
  for (let i = 0; i < 6; i++) {
    await fetchText(`${proxy.url}/svc/${i}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  void proxy.faultline.experiments.stop()
  const report = await done
  t.equal(report.tooLittleTraffic, true)
  t.equal(report.routes[0]!.requests, 6)
  t.equal(report.routes[0]!.sloWindows.judged, 0)
  t.equal(report.routes[0]!.sloWindows.tooFewRequests, report.routes[0]!.sloWindows.elapsed, 'every window had too few requests')
  t.match(report.notes, [/^Too little traffic to judge: 6 request\(s\) in .* no 0\.2 s evaluation window reached controller\.minRequests \(50\)\. The controller never raised the chaos level/, /a window cannot reach controller\.minRequests \(50\): send more traffic, lower controller\.minRequests, or raise controller\.evaluationMs/])
  t.match(reportMarkdown(report), /No fault was injected: no window had enough traffic to judge, so the chaos level never rose; nothing was tested\./)
})

t.test('enough traffic: windows judged, not flagged, a timeline per window', async (t) => {
  const proxy = await experimentProxy(t, 2)
  const { done } = await proxy.faultline.experiments.start('uniform', 60_000)
  // Four callers (an injected delay holds one, not the traffic) until at least 0.6 s passed and there
  // were more requests than 0.2 s windows (so some window has minRequests 2); at most 300 requests, 10 s.
  const enough = (): boolean => {
    const seen = proxy.faultline.experiments.trafficSoFar
    return seen !== undefined && seen.elapsedMs >= 600 && seen.requests > 2 * (seen.elapsedMs / 200 + 2)
  }
  let sent = 0
  const caller = async (): Promise<void> => {
    while (!enough() && sent < 300 && (proxy.faultline.experiments.current?.elapsedMs ?? 0) < 10_000) {
      sent++
      await fetchText(`${proxy.url}/svc/x`, { timeoutMs: 3_000 }).catch(() => undefined)
    }
  }
  await Promise.all([caller(), caller(), caller(), caller()])
  void proxy.faultline.experiments.stop()
  const report = await done
  t.equal(report.tooLittleTraffic, false)
  t.ok(report.traffic.windowsJudged > 0, `${report.traffic.windowsJudged} window(s) judged`)
  t.notMatch(report.notes.join('\n'), /Too little traffic|No request reached/, 'no flag')
  const timeline = report.routes[0]!.timeline
  t.equal(timeline.length, report.routes[0]!.sloWindows.elapsed, 'one point per window')
  t.ok(timeline.some((p) => p.requests > 0 && p.headroom !== null))
})

t.test('the CLI hints to send traffic, then exits 3 on an experiment it could not judge', { timeout: 90_000 }, async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const port = await closedPort()
  const adminPort = await closedPort()
  const dir = t.testdir({})
  const file = join(dir, 'fl.yaml')
  await writeFile(file, `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { port: ${adminPort} }\nlog: { level: warn }\ncontroller: { evaluationMs: 500ms }\nroutes:\n  - name: svc\n    match: { pathPrefix: /svc }\n    upstream: { url: "${upstream.url}" }\n    intent: { protects: availability }\n    chaos: { enabled: true }\n`)
  const child = spawn(process.execPath, [...CLI, 'experiment', file, '--duration', '1s', '--out', join(dir, 'out')], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  t.equal(code, 3, 'exit 3: too little traffic')
  t.match(stderr, new RegExp(`no requests in the first \\d+ s: send traffic through the proxy at http://127\\.0\\.0\\.1:${port} \\(/svc\\)`))
  t.match(stderr, /too little traffic to judge any evaluation window; the report is not a verdict \(exit 3\)/)
  t.match(stdout, /Too little traffic to judge/)
  t.match(stdout, /report written to .*\.json, .*\.md and .*\.html/)
})
