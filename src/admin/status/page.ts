/**
 * The status page's three static files, kept as strings so there is no
 * build step and nothing to find on disk at run time. The script builds
 * the page with textContent only (never innerHTML), so route names, paths
 * and error messages cannot inject markup; the CSP in status.ts forbids
 * inline scripts and every origin but this one as a second line.
 */

export const STATUS_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>faultline status</title>
<link rel="stylesheet" href="/status.css">
<script src="/status.js" defer></script>
</head>
<body>
<header>
  <h1>faultline</h1>
  <p id="summary">loading&hellip;</p>
</header>
<main>
  <section>
    <h2>Routes</h2>
    <table id="routes">
      <thead><tr>
        <th>Route</th><th>Upstream</th><th>Breaker</th><th>Chaos</th>
        <th>Requests (5m)</th><th>Error rate (5m)</th><th>Retries that succeeded (1h)</th><th>Fallback (1h)</th>
      </tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section id="intent">
    <h2>Intent engine</h2>
    <p class="legend">Last 15 minutes, one point per evaluation window. Error rate: <span class="real">real failures</span> and <span class="injected">injected failures</span> drawn apart.</p>
    <table id="engines">
      <thead><tr>
        <th>Route</th><th>Chaos level</th><th>SLO headroom</th><th>Guardrail</th><th>Resilience margin</th><th>Significant / disabling</th>
        <th>Level</th><th>Headroom</th><th>Error rate</th><th>p99</th>
      </tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Suggestions</h2>
    <ul id="suggestions"></ul>
  </section>
  <section>
    <h2>Worst endpoints</h2>
    <table id="worst">
      <thead><tr><th>Route</th><th>Endpoint</th><th>Failures</th><th>Error classes</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<footer><span id="updated"></span> &middot; <a href="/report">report (JSON)</a> &middot; <a href="/routes">routes (JSON)</a> &middot; <a href="/metrics">metrics</a></footer>
</body>
</html>
`

export const STATUS_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #fafbfc; }
h1 { margin: 0; font-size: 1.4rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { display: inline-block; padding: 0 .45rem; border-radius: .6rem; font-size: .85em; }
.state-closed, .state-forced_closed, .state-off { background: #dff3e4; }
.state-half_open, .state-holding, .state-halted { background: #fff1c2; }
.state-running { background: #dff3e4; }
.state-open, .state-forced_open, .state-on, .state-killed { background: #fbd5d5; }
.state-none { background: #eceff3; color: #5b6472; }
#summary.error { color: #b3261e; }
svg.spark { display: block; background: #fff; }
svg.spark polyline { fill: none; stroke-width: 1.5; }
svg.spark .level { stroke: #6c4bd8; } svg.spark .headroom { stroke: #1f7a3d; } svg.spark .p99 { stroke: #2b6cb0; }
svg.spark .real { stroke: #b3261e; } svg.spark .injected { stroke: #d9822b; stroke-dasharray: 3 2; }
svg.spark .zero { stroke: #e3a0a0; stroke-dasharray: 2 2; }
.legend .real { color: #b3261e; } .legend .injected { color: #d9822b; }
.legend { color: #5b6472; margin: .2rem 0 .5rem; }
footer { margin-top: 2rem; color: #5b6472; }
`

export const STATUS_JS = `'use strict'
const REFRESH_MS = 5000

function el (tag, text, className) {
  const e = document.createElement(tag)
  if (text !== undefined && text !== null) e.textContent = String(text)
  if (className) e.className = className
  return e
}
function cell (row, text, className) { row.appendChild(el('td', text, className)); return row }
function badge (state, text) {
  const td = el('td')
  td.appendChild(el('span', text === undefined ? state : text, 'state state-' + String(state).replace(/[^a-z_]/g, '')))
  return td
}
function pct (x) { return x === null || x === undefined ? '-' : (Math.round(x * 1000) / 10) + '%' }
function sum (list, f) { return list.reduce((a, x) => a + f(x), 0) }
async function getJson (path) {
  const res = await fetch(path, { headers: { accept: 'application/json' }, cache: 'no-store' })
  if (!res.ok) throw new Error(path + ': HTTP ' + res.status)
  return await res.json()
}

const SVG = 'http://www.w3.org/2000/svg'
/** A sparkline built with DOM calls (no markup strings): one polyline per series, gaps where a value is null. */
function sparkline (series, min, max, zero) {
  const w = 120
  const h = 28
  const svg = document.createElementNS(SVG, 'svg')
  svg.setAttribute('class', 'spark')
  svg.setAttribute('width', String(w))
  svg.setAttribute('height', String(h))
  svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h)
  const span = (max - min) || 1
  const y = (v) => (h - 2 - ((Math.min(max, Math.max(min, v)) - min) / span) * (h - 4)).toFixed(1)
  if (zero && min < 0 && max > 0) {
    const line = document.createElementNS(SVG, 'line')
    line.setAttribute('class', 'zero'); line.setAttribute('x1', '0'); line.setAttribute('x2', String(w)); line.setAttribute('y1', y(0)); line.setAttribute('y2', y(0))
    svg.appendChild(line)
  }
  for (const s of series) {
    const n = s.values.length
    let points = []
    const flush = () => {
      if (points.length > 0) {
        const p = document.createElementNS(SVG, 'polyline')
        p.setAttribute('class', s.className)
        p.setAttribute('points', points.length === 1 ? points[0] + ' ' + points[0] : points.join(' '))
        svg.appendChild(p)
      }
      points = []
    }
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { flush(); return }
      points.push((n <= 1 ? w - 2 : (i * (w - 4)) / (n - 1) + 2).toFixed(1) + ',' + y(v))
    })
    flush()
  }
  const td = el('td')
  td.appendChild(svg)
  return td
}
function level (x) { return x === null || x === undefined ? '-' : Number(x).toFixed(2) }

function renderEngines (intent) {
  const tbody = document.querySelector('#engines tbody')
  tbody.replaceChildren()
  for (const r of intent.routes) {
    const row = el('tr')
    row.dataset.route = r.route
    const h = r.history
    cell(row, r.route)
    cell(row, level(r.level), 'num')
    cell(row, r.headroom === null ? '-' : pct(r.headroom), 'num')
    row.appendChild(badge(r.guardrail.startsWith('halted') ? 'halted' : r.guardrail.startsWith('chaos stopped') ? 'killed' : r.guardrail.split(' ')[0], r.guardrail))
    cell(row, level(r.resilienceMargin), 'num')
    cell(row, level(r.significantLevel) + ' / ' + level(r.disablingLevel), 'num')
    row.appendChild(sparkline([{ className: 'level', values: h.map((p) => p.level) }], 0, 1))
    const heads = h.map((p) => p.headroom).filter((v) => v !== null)
    row.appendChild(sparkline([{ className: 'headroom', values: h.map((p) => p.headroom) }], Math.min(-0.5, ...heads), 1, true))
    const rates = h.flatMap((p) => [p.realErrorRate, p.injectedErrorRate])
    row.appendChild(sparkline([{ className: 'real', values: h.map((p) => p.realErrorRate) }, { className: 'injected', values: h.map((p) => p.injectedErrorRate) }], 0, Math.max(r.slo.errorRate * 2, ...rates)))
    row.appendChild(sparkline([{ className: 'p99', values: h.map((p) => p.requests ? p.p99Ms : null) }], 0, Math.max(r.slo.p99Ms * 1.5, ...h.map((p) => p.p99Ms))))
    tbody.appendChild(row)
  }
  if (!intent.routes.length) {
    const row = el('tr')
    const td = el('td', 'No route has an intent or chaos enabled.')
    td.colSpan = 10
    row.appendChild(td)
    tbody.appendChild(row)
  }
}

function render (routes, chaos, report, intent) {
  renderEngines(intent)
  const byName = new Map(report.routes.map((r) => [r.route, r]))
  const chaosOf = new Map(chaos.routes.map((r) => [r.route, r]))
  const tbody = document.querySelector('#routes tbody')
  tbody.replaceChildren()
  for (const r of routes.routes) {
    const row = el('tr')
    row.dataset.route = r.name
    const rep = byName.get(r.name)
    const ups = rep ? rep.upstreams : []
    const five = ups.map((u) => u.windows['5m'])
    const hour = ups.map((u) => u.windows['1h'])
    const requests = sum(five, (w) => w.requests)
    const failed = sum(five, (w) => w.failed)
    const made = sum(hour, (w) => w.retries.made)
    const ok = sum(hour, (w) => w.retries.succeeded)
    const fallbacks = sum(hour, (w) => Object.values(w.fallbacks).reduce((a, b) => a + b, 0))
    const hourRequests = sum(hour, (w) => w.requests)
    const breaker = r.state && r.state.breaker ? r.state.breaker.state : 'none'
    const c = chaosOf.get(r.name)
    cell(row, r.name)
    cell(row, r.upstream && r.upstream.url)
    row.appendChild(badge(breaker))
    // Unambiguous: "kill switch on" read as chaos stopped while it was running.
    if (!c) row.appendChild(badge('none'))
    else if (c.injecting) row.appendChild(badge('on', 'chaos running'))
    else if (c.enabled && c.killSwitch === 'off') row.appendChild(badge('killed', 'stopped by the kill switch'))
    else row.appendChild(badge('off'))
    cell(row, requests, 'num')
    cell(row, requests ? pct(failed / requests) : '-', 'num')
    cell(row, made ? pct(ok / made) + ' of ' + made : '-', 'num')
    cell(row, hourRequests ? pct(fallbacks / hourRequests) : '-', 'num')
    tbody.appendChild(row)
  }
  const list = document.getElementById('suggestions')
  list.replaceChildren()
  for (const r of report.routes) for (const s of r.suggestions) list.appendChild(el('li', s))
  if (!list.children.length) list.appendChild(el('li', 'Nothing to suggest yet.'))
  const worst = document.querySelector('#worst tbody')
  worst.replaceChildren()
  for (const r of report.routes) {
    for (const e of r.worstEndpoints.slice(0, 5)) {
      const row = el('tr')
      cell(row, r.route)
      cell(row, e.method + ' ' + e.path)
      cell(row, e.failures, 'num')
      cell(row, Object.entries(e.errorClasses).map(([k, v]) => k + ' ' + v).join(', '))
      worst.appendChild(row)
    }
  }
  const summary = document.getElementById('summary')
  summary.className = ''
  summary.textContent = routes.routes.length + ' routes, config generation ' + routes.generation + ', ' + (chaos.killSwitch === 'on' ? 'chaos running' : 'chaos stopped by the kill switch')
  document.getElementById('updated').textContent = 'updated ' + new Date(report.generatedAt).toLocaleTimeString()
  document.body.dataset.loaded = 'true'
}

async function refresh () {
  try {
    const [routes, chaos, report, intent] = await Promise.all([getJson('/routes'), getJson('/chaos'), getJson('/report'), getJson('/status/intent')])
    render(routes, chaos, report, intent)
  } catch (err) {
    const summary = document.getElementById('summary')
    summary.className = 'error'
    summary.textContent = 'cannot load: ' + err.message
  } finally {
    setTimeout(refresh, REFRESH_MS)
  }
}
refresh()
`
