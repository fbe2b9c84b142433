/**
 * The experiment report as one self-contained HTML file: no script, no
 * external style or font, charts as inline SVG, so it can be attached to a
 * ticket or opened from disk. Per route: the chaos level, the SLO headroom
 * and the injected faults per evaluation window, the weaknesses found and
 * the resilience margin. Given an intent and a uniform report, each route
 * shows them side by side. Every string from config or traffic is escaped.
 */
import type { WindowPoint } from './engine.js'
import type { ExperimentReport, RouteReport } from './experiment-report.js'

const escape = (text: unknown): string => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const pct = (x: number | null): string => (x === null ? 'n/a' : `${(x * 100).toFixed(1)}%`)

const round = (x: number): number => Math.round(x * 100) / 100

const W = 320
const H = 90
const PAD = 4

interface Series { values: Array<number | null>, min: number, max: number }

/** One small chart: a line (or bars) over the evaluation windows, with its range in the corner. */
function chart (title: string, series: Series, kind: 'line' | 'bars', css: string, zeroLine = false): string {
  const n = series.values.length
  const span = series.max - series.min || 1
  const x = (i: number): number => PAD + (n <= 1 ? 0 : (i * (W - 2 * PAD)) / (n - 1))
  const y = (v: number): number => H - PAD - ((Math.min(series.max, Math.max(series.min, v)) - series.min) / span) * (H - 2 * PAD)
  const parts: string[] = []
  if (zeroLine && series.min < 0 && series.max > 0) parts.push(`<line class="zero" x1="${PAD}" x2="${W - PAD}" y1="${y(0).toFixed(1)}" y2="${y(0).toFixed(1)}"/>`)
  if (kind === 'bars') {
    const bw = Math.max(1, (W - 2 * PAD) / Math.max(1, n) - 1)
    series.values.forEach((v, i) => {
      if (v === null || v <= 0) return
      const bx = PAD + (i * (W - 2 * PAD)) / Math.max(1, n)
      parts.push(`<rect class="${css}" x="${bx.toFixed(1)}" y="${y(v).toFixed(1)}" width="${bw.toFixed(1)}" height="${(H - PAD - y(v)).toFixed(1)}"/>`)
    })
  } else {
    // A gap where a window was not judged, instead of a line drawn through it.
    let run: string[] = []
    const flush = (): void => { if (run.length > 0) parts.push(`<polyline class="${css}" points="${run.join(' ')}"/>`); run = [] }
    series.values.forEach((v, i) => { if (v === null) flush(); else run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`) })
    flush()
    series.values.forEach((v, i) => { if (v !== null && n === 1) parts.push(`<circle class="${css}" cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2"/>`) })
  }
  return `<figure class="chart"><figcaption>${escape(title)}</figcaption>` +
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escape(title)}">` +
    `<rect class="frame" x="0.5" y="0.5" width="${W - 1}" height="${H - 1}"/>${parts.join('')}` +
    `<text x="${W - PAD}" y="12" text-anchor="end">${escape(round(series.max))}</text><text x="${W - PAD}" y="${H - PAD}" text-anchor="end">${escape(round(series.min))}</text>` +
    '</svg></figure>'
}

function charts (timeline: WindowPoint[]): string {
  if (timeline.length === 0) return '<p class="note">No evaluation window ended during the experiment: nothing to chart.</p>'
  const headroom = timeline.map((p) => p.headroom)
  const known = headroom.filter((h): h is number => h !== null)
  const injected = timeline.map((p) => p.injected)
  return chart('chaos level per window', { values: timeline.map((p) => p.level), min: 0, max: 1 }, 'line', 'level') +
    chart('SLO headroom per window (below 0: breached; gaps: not judged)', { values: headroom, min: Math.min(-0.5, ...known), max: 1 }, 'line', 'headroom', true) +
    chart('faults injected per window', { values: injected, min: 0, max: Math.max(1, ...injected) }, 'bars', 'injected')
}

function routeColumn (report: ExperimentReport, r: RouteReport): string {
  const weaknesses = r.weaknesses.length === 0
    ? `<p>${r.totalInjected === 0 ? 'No fault was injected: nothing was tested.' : 'No injected fault reached the caller: retries and fallbacks absorbed them.'}</p>`
    : `<ul class="weaknesses">${r.weaknesses.map((w) => `<li><b>${escape(w.fault)}</b> reached the caller in ${w.surfaced} of ${w.requests} requests (found after ${w.faultsToFind} fault(s))</li>`).join('')}</ul>`
  return `<div class="column" data-mode="${escape(report.mode)}">` +
    `<h3>${escape(report.mode)} mode${r.tooLittleTraffic ? ' <span class="flag">too little traffic to judge</span>' : ''}</h3>` +
    '<dl>' +
    `<dt>requests</dt><dd>${r.requests}</dd>` +
    `<dt>faults injected</dt><dd>${r.totalInjected}</dd>` +
    `<dt>reached the caller</dt><dd>${r.caller.surfaced}</dd>` +
    `<dt>SLO windows held</dt><dd>${r.sloWindows.withinSlo} of ${r.sloWindows.judged} judged (${r.sloWindows.elapsed} elapsed)</dd>` +
    `<dt>resilience margin</dt><dd>${report.mode === 'intent' ? `level ${r.level.resilienceMargin.toFixed(2)} (faults in up to ${pct(r.level.resilienceMargin * r.budget)} of requests)` : '- (intent mode only)'}</dd>` +
    `<dt>significant / disabling level</dt><dd>${r.level.significant?.toFixed(2) ?? '-'} / ${r.level.disabling?.toFixed(2) ?? '-'}</dd>` +
    `<dt>cascading risk</dt><dd>${pct(r.cascadingRisk)}</dd>` +
    '</dl>' +
    charts(r.timeline) +
    `<h4>Weaknesses</h4>${weaknesses}</div>`
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #fafbfc; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; } h2 { font-size: 1.15rem; margin: 1.8rem 0 .4rem; } h3 { font-size: 1rem; margin: .2rem 0; } h4 { margin: .8rem 0 .2rem; }
.summary { background: #fff; border: 1px solid #e3e6ea; padding: .6rem .8rem; }
.verdict-none { border-left: 4px solid #b3261e; }
.note { color: #5b6472; }
.flag { background: #fbd5d5; border-radius: .6rem; padding: 0 .45rem; font-size: .8em; font-weight: normal; }
.route { display: flex; gap: 1.2rem; flex-wrap: wrap; }
.column { background: #fff; border: 1px solid #e3e6ea; padding: .6rem .8rem; flex: 1 1 340px; }
dl { display: grid; grid-template-columns: max-content auto; gap: .1rem .8rem; margin: .4rem 0; } dt { color: #5b6472; } dd { margin: 0; }
figure.chart { margin: .4rem 0; } figcaption { font-size: .85em; color: #5b6472; }
svg .frame { fill: #fff; stroke: #e3e6ea; } svg text { font-size: 10px; fill: #5b6472; }
svg polyline { fill: none; stroke-width: 1.8; } svg .level { stroke: #6c4bd8; fill: none; } svg circle.level { fill: #6c4bd8; }
svg .headroom { stroke: #1f7a3d; fill: none; } svg circle.headroom { fill: #1f7a3d; } svg .zero { stroke: #b3261e; stroke-dasharray: 3 3; }
svg rect.injected { fill: #d9822b; }
`

/** One self-contained page for one or more reports (an intent and a uniform run are put side by side). */
export function reportHtml (reports: readonly ExperimentReport[]): string {
  const names = [...new Set(reports.flatMap((r) => r.routes.map((x) => x.route)))]
  const summaries = reports.map((report) => {
    const verdict = report.tooLittleTraffic ? ' verdict-none' : ''
    return `<div class="summary${verdict}" data-mode="${escape(report.mode)}"><b>${escape(report.mode)} mode</b>, started ${escape(report.startedAt)}, ran ${(report.durationMs / 1000).toFixed(1)} s: ` +
      `${report.totals.faultsInjected} faults injected, ${report.totals.surfaced} failures reached callers, ${report.totals.weaknessesFound} weakness(es) found, ` +
      `${report.traffic.windowsJudged} of ${report.traffic.windowsElapsed} evaluation window(s) judged.` +
      (report.tooLittleTraffic ? ' <span class="flag">too little traffic to judge: not a verdict</span>' : '') +
      report.notes.map((n) => `<p class="note">${escape(n)}</p>`).join('') + '</div>'
  }).join('')
  const routes = names.map((name) => {
    const columns = reports.map((report) => {
      const r = report.routes.find((x) => x.route === name)
      return r === undefined ? `<div class="column" data-mode="${escape(report.mode)}"><h3>${escape(report.mode)} mode</h3><p class="note">The route did not take part.</p></div>` : routeColumn(report, r)
    }).join('')
    const any = reports.flatMap((report) => report.routes.filter((x) => x.route === name))[0]!
    return `<section data-route="${escape(name)}"><h2>${escape(name)}</h2>` +
      `<p class="note">${escape(any.criticality)}, protects ${escape(any.protects)}; SLO p99 &le; ${escape(any.slo.p99Ms)} ms, errors &le; ${pct(any.slo.errorRate)}; planned-fault budget ${pct(any.budget)}</p>` +
      `<div class="route">${columns}</div></section>`
  }).join('')
  const title = `faultline experiment: ${reports.map((r) => r.mode).join(' vs ')}`
  return '<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${escape(title)}</title><style>${CSS}</style></head><body>` +
    `<h1>${escape(title)}</h1>${summaries}${routes || '<p class="note">No route took part.</p>'}</body></html>\n`
}
