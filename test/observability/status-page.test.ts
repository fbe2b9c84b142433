/**
 * The status page (admin GET /) rendered by a real headless Chromium
 * against a live proxy: the routes table fills with live data from
 * /routes, /chaos and /report, and strings from requests are shown as
 * text, never as markup.
 */
import t from 'tap'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fetchText, needTool, rawExchange, route, startProxy, startUpstream } from '../helpers.js'
import { run } from './tools.js'

const { path: chromium, skip } = needTool('chromium')

t.test('the page and its assets: same-origin only, no inline script', async (t) => {
  const up = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, { routes: [route('a', '/a', up.url)] })
  const page = await fetchText(`${proxy.adminUrl}/`)
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.headers['content-security-policy'], /script-src 'self'/)
  t.notMatch(page.headers['content-security-policy'], /unsafe-inline/)
  t.notMatch(page.body, /<script>|https?:\/\//, 'no inline script, no external asset')
  const js = await fetchText(`${proxy.adminUrl}/status.js`)
  t.match(js.headers['content-type'], /^text\/javascript/)
  t.notMatch(js.body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, 'the script never parses strings as HTML')
  t.equal((await fetchText(`${proxy.adminUrl}/status.css`)).status, 200)
})

t.test('headless Chromium renders the routes table with live data', { skip, timeout: 120_000 }, async (t) => {
  const ok = await startUpstream(t, (_req, res) => { res.end('ok') })
  const down = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('no') })
  const proxy = await startProxy(t, {
    routes: [
      route('catalog', '/catalog', ok.url),
      route('broken', '/broken', down.url, {
        resilience: { breaker: { consecutiveFailures: 3, openMs: 60_000 } },
        // Chaos is on, but aimed elsewhere: the failures shown are the upstream's own (injected ones stay out of /report and the shared breaker).
        chaos: { enabled: true, faults: [{ kind: 'latency', ms: 1, probability: 0.5, match: { path: '/broken/never' } }] }
      })
    ]
  })
  for (let i = 0; i < 7; i++) await fetchText(`${proxy.url}/catalog/${i}`)
  // A path that would be markup if the page used innerHTML.
  const raw = await rawExchange(proxy.faultline.proxyPort, 'GET /broken/<iframe> HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(raw, /^HTTP\/1\.1 503/, 'the odd path reached the failing route')
  for (let i = 0; i < 4; i++) await fetchText(`${proxy.url}/broken/item`)

  const profile = await mkdtemp(join(tmpdir(), 'faultline-chromium-'))
  t.teardown(async () => { await rm(profile, { recursive: true, force: true }) })
  const result = await run(chromium!, [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
    `--user-data-dir=${profile}`,
    // Lets the page's fetches finish before the DOM is dumped (virtual time stops at the next refresh timer).
    '--virtual-time-budget=4000',
    '--dump-dom', `${proxy.adminUrl}/`
  ], { timeoutMs: 90_000 })
  const dom = result.stdout
  t.match(dom, /<body data-loaded="true">/, `the script ran and rendered (exit ${result.code}; ${result.stderr.slice(0, 300)})`)
  const row = (name: string): string => new RegExp(`<tr data-route="${name}">(.*?)</tr>`).exec(dom)?.[1] ?? ''
  const cells = (name: string): string[] => [...row(name).matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((m) => m[1]!.replace(/<[^>]+>/g, ''))
  t.same(cells('catalog').slice(0, 6), ['catalog', ok.url, 'none', 'off', '7', '0%'], 'catalog: 7 requests, no errors, no breaker, chaos off')
  const broken = cells('broken')
  t.equal(broken[0], 'broken')
  t.equal(broken[2], 'open', 'the breaker is shown open')
  t.equal(broken[3], 'chaos running', 'chaos is shown injecting, in words that cannot be misread')
  t.match(dom, /<p id="summary"[^>]*>[^<]*chaos running</, 'the summary says chaos is running (not "kill switch on")')
  t.equal(broken[4], '5', '5 requests')
  t.equal(broken[5], '100%', 'all failed')
  t.match(dom, /GET \/broken\/&lt;iframe&gt;/, 'the path is shown as text')
  t.notMatch(dom, /<iframe/, 'and never becomes an element')
})

t.test('headless Chromium shows the intent engine at a glance, with sparklines and a screenshot', { skip, timeout: 120_000 }, async (t) => {
  const ok = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    log: { level: 'silent' },
    controller: { evaluationMs: 200, minRequests: 1 },
    // The SLO cannot break (injected errors are capped at 0.5 by the budget, injected delays at the 1 s timeout,
    // under the 2 s p99): a window of a few requests on a loaded machine must not halt the guardrail before the
    // page is looked at (it would show "halted until ..."), and no injected hang holds the traffic loop.
    routes: [route('pay', '/pay', ok.url, { resilience: { timeoutMs: 1000 }, intent: { criticality: 'optional', slo: { errorRate: 0.9 } }, chaos: { enabled: true, budget: 0.5, seed: 2 } })]
  })
  type IntentStatus = { routes: Array<{ route: string, guardrail: string, history: Array<{ realErrorRate: number, injectedErrorRate: number }> }> }
  const intentStatus = async (): Promise<IntentStatus> => JSON.parse((await fetchText(`${proxy.adminUrl}/status/intent`)).body) as IntentStatus
  // Traffic until a few windows are kept (not for a fixed time); bounded in count and time.
  const until = Date.now() + 5_000
  for (let i = 0; i < 400 && Date.now() < until; i++) {
    await fetchText(`${proxy.url}/pay/${i}`).catch(() => undefined)
    if (i % 20 === 19 && (await intentStatus()).routes[0]!.history.length >= 3) break
  }
  const status = await intentStatus()
  t.equal(status.routes[0]!.route, 'pay')
  t.ok(status.routes[0]!.history.length >= 2, `windows kept for the sparklines (${status.routes[0]!.history.length})`)
  t.ok(status.routes[0]!.history.every((p) => 'realErrorRate' in p && 'injectedErrorRate' in p), 'real and injected failures kept apart')
  t.match(status.routes[0]!.guardrail, /^(running|holding)$/)

  const profile = await mkdtemp(join(tmpdir(), 'faultline-chromium-'))
  t.teardown(async () => { await rm(profile, { recursive: true, force: true }) })
  const common = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--virtual-time-budget=4000']
  // One Chromium run both dumps the DOM and renders the screenshot (a second launch cost seconds).
  const png = join(profile, 'status.png')
  const dom = (await run(chromium!, [...common, '--dump-dom', `--screenshot=${png}`, '--window-size=1400,1000', `${proxy.adminUrl}/`], { timeoutMs: 90_000 })).stdout
  const row = /<table id="engines">.*?<tr data-route="pay">(.*?)<\/tr>/s.exec(dom)?.[1] ?? ''
  t.match(row, /<td>pay<\/td>/, 'the route has a row in the intent engine table')
  // On a loaded machine a window of one injected failure can halt the guardrail between the traffic and
  // the render: any of the engine's states may show, but in its own words with its own badge.
  const shown = /class="state state-(\w+)">([^<]*)<\/span>/.exec(row)
  t.ok(shown !== null, 'its guardrail state is shown')
  t.match(shown?.[2], /^(running|holding|halted until \d{4}-\d\d-\d\dT[\d:.]+Z)$/, `in words that cannot be misread (${shown?.[2] ?? ''})`)
  t.equal(shown?.[1], shown?.[2]?.split(' ')[0], 'with the badge of that state')
  t.equal((row.match(/<svg [^>]*class="spark"/g) ?? []).length, 4, 'four sparklines: level, headroom, error rate, p99')
  t.match(row, /<polyline class="level"/)
  t.match(row, /<polyline class="real"/, 'real failures drawn')
  t.match(row, /<polyline class="injected"/, 'injected failures drawn apart')
  const size = await stat(png).then((s) => s.size, () => 0)
  t.ok(size > 10_000, `a screenshot was rendered (${size} bytes)`)
})
