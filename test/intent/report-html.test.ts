/**
 * The HTML experiment report: one self-contained file (no script, no
 * external asset) with per-route charts as inline SVG, the intent and the
 * uniform runs side by side; served at GET /experiments/report?format=html
 * and rendered by a real headless Chromium (a screenshot, charts present).
 */
import t from 'tap'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { reportHtml } from '../../src/intent/report-html.js'
import type { ExperimentReport } from '../../src/intent/experiment-report.js'
import { fetchText, needTool, route, startProxy, startUpstream, type StartedProxy } from '../helpers.js'
import { run } from '../observability/tools.js'

const { path: chromium, skip } = needTool('chromium')

async function experiment (proxy: StartedProxy, mode: 'intent' | 'uniform'): Promise<ExperimentReport> {
  const { done } = await proxy.faultline.experiments.start(mode, 1_500)
  const until = Date.now() + 1_400
  for (let i = 0; i < 300 && Date.now() < until; i++) {
    await Promise.all([fetchText(`${proxy.url}/svc/${i}`, { timeoutMs: 2_000 }).catch(() => undefined), fetchText(`${proxy.url}/other/${i}`, { timeoutMs: 2_000 }).catch(() => undefined)])
  }
  return await done
}

t.test('the HTML report: served, self-contained, both modes side by side, rendered by Chromium', { timeout: 120_000 }, async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('{"ok":true}') })
  const proxy = await startProxy(t, {
    log: { level: 'silent' },
    controller: { evaluationMs: 250, minRequests: 1, cooldownMs: 1000 },
    routes: [
      route('svc', '/svc', upstream.url, { intent: { criticality: 'optional' }, chaos: { enabled: true, budget: 0.3, seed: 5 } }),
      // A name that would be markup if the report did not escape (route names are restricted, fault labels come from config).
      route('other', '/other', upstream.url, { intent: { criticality: 'degradable' }, chaos: { enabled: true, budget: 0.3, seed: 6 } })
    ]
  })
  t.equal((await fetchText(`${proxy.adminUrl}/experiments/report?format=html`)).status, 404, 'no report before an experiment')
  const intent = await experiment(proxy, 'intent')
  const uniform = await experiment(proxy, 'uniform')
  t.ok(intent.traffic.windowsJudged > 0 && uniform.traffic.windowsJudged > 0, 'both runs judged windows')

  const served = await fetchText(`${proxy.adminUrl}/experiments/report?format=html`)
  t.equal(served.status, 200)
  t.match(served.headers['content-type'], /^text\/html/)
  t.match(served.headers['content-security-policy'], /default-src 'none'/)
  const html = served.body
  t.notMatch(html, /<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)|<link /, 'self-contained: no script, no external asset')
  for (const name of ['svc', 'other']) {
    const section = new RegExp(`<section data-route="${name}">(.*?)</section>`).exec(html)?.[1] ?? ''
    t.match(section, /<div class="column" data-mode="intent">.*<div class="column" data-mode="uniform">/, `${name}: intent and uniform side by side`)
    t.equal((section.match(/<svg /g) ?? []).length, 6, `${name}: three charts per mode (level, headroom, injected)`)
    t.match(section, /resilience margin/)
  }
  t.match(html, /faultline experiment: intent vs uniform/)
  t.match(html, /<polyline class="level"/, 'the level is drawn as a line')
  t.match(html, /<rect class="injected"/, 'injected faults are drawn as bars')

  const dir = await mkdtemp(join(tmpdir(), 'faultline-report-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'report.html')
  await writeFile(file, html)
  if (skip !== false) return
  const common = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${join(dir, 'profile')}`]
  const png = join(dir, 'report.png')
  const shot = await run(chromium!, [...common, `--screenshot=${png}`, '--window-size=1280,1600', pathToFileURL(file).href], { timeoutMs: 90_000 })
  const size = await stat(png).then((s) => s.size, () => 0)
  t.ok(size > 10_000, `Chromium rendered a screenshot (${size} bytes; exit ${shot.code}; ${shot.stderr.slice(0, 200)})`)
  const header = (await readFile(png)).subarray(0, 8)
  t.same([...header], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG')
  const dom = (await run(chromium!, [...common, '--dump-dom', pathToFileURL(file).href], { timeoutMs: 90_000 })).stdout
  t.equal((dom.match(/<svg /g) ?? []).length, 12, 'the browser parsed every chart as SVG')
  t.match(dom, /<polyline class="headroom"/)
})

t.test('escaping and a report without traffic', async (t) => {
  const report: ExperimentReport = {
    mode: 'intent',
    startedAt: '2026-01-01T00:00:00.000Z',
    durationMs: 1000,
    routes: [{
      route: 'svc',
      criticality: 'critical',
      protects: 'availability',
      slo: { p99Ms: 300, errorRate: 0.01 },
      budget: 0.05,
      mode: 'intent',
      requests: 3,
      outcomes: {},
      faultsInjected: {},
      totalInjected: 2,
      caller: { ok: 1, absorbedByRetry: 0, servedByFallback: 0, surfaced: 2 },
      sloWindows: { elapsed: 2, judged: 0, tooFewRequests: 2, withinSlo: 0, breached: 0, attainment: null },
      level: { final: 0, resilienceMargin: 0, significant: null, disabling: null, guardrailHalts: 0 },
      weaknesses: [{ fault: '<img src=x onerror=alert(1)>', requests: 2, surfaced: 2, faultsToFind: 1 }],
      cascadingRisk: 1,
      tooLittleTraffic: true,
      timeline: [{ level: 0, headroom: null, requests: 1, injected: 1 }, { level: 0, headroom: null, requests: 2, injected: 1 }]
    }],
    traffic: { requests: 3, perSecond: 3, evaluationMs: 500, minRequests: 20, expectedPerWindow: 1.5, windowsElapsed: 2, windowsJudged: 0 },
    tooLittleTraffic: true,
    notes: ['Too little traffic to judge'],
    totals: { faultsInjected: 2, surfaced: 2, breachedWindowsOnCritical: 0, timeInBreachMs: 0, weaknessesFound: 1 }
  }
  const html = reportHtml([report])
  t.notMatch(html, /<img/, 'a fault label is text, never markup')
  t.match(html, /&#60;img src=x onerror=alert\(1\)&#62;/)
  t.match(html, /too little traffic to judge: not a verdict/)
  t.match(html, /0 of 2 evaluation window\(s\) judged/)
})
