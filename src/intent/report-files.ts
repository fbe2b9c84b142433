/** Writes an experiment report as JSON, Markdown and a self-contained HTML page side by side. */
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { reportMarkdown, type ExperimentReport } from './experiment-report.js'
import { reportHtml } from './report-html.js'

export async function writeReport (report: ExperimentReport, dir: string): Promise<{ json: string, markdown: string, html: string }> {
  await mkdir(dir, { recursive: true })
  const stamp = report.startedAt.replace(/[:.]/g, '-')
  const base = join(dir, `faultline-experiment-${report.mode}-${stamp}`)
  await writeFile(`${base}.json`, JSON.stringify(report, null, 2) + '\n')
  await writeFile(`${base}.md`, reportMarkdown(report) + '\n')
  await writeFile(`${base}.html`, reportHtml([report]))
  return { json: `${base}.json`, markdown: `${base}.md`, html: `${base}.html` }
}
