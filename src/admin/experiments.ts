/**
 * Experiments and the intent engines on the admin API. Reads are open;
 * starting, stopping and resuming need the bearer token (the admin server
 * enforces it) and are audited.
 *
 *   POST /experiments                     { mode: intent|uniform, durationMs } -> 202
 *   GET  /experiments                     the running experiment, if any, and the last report's totals
 *   POST /experiments/stop                end the running experiment now -> its report
 *   GET  /experiments/report              the last report (JSON); ?format=markdown for Markdown; ?format=html
 *                                         for one page with the last intent and uniform reports side by side
 *   POST /routes/:route/intent/resume     clear a guardrail halt before its cool-down ends
 */
import { z } from 'zod'
import { duration } from '../config/units.js'
import { adminError, audit, type AdminExtension } from './server.js'
import { problemsFromZod } from '../config/errors.js'
import { ExperimentBusyError, type ExperimentRunner } from '../intent/experiment.js'
import { reportMarkdown } from '../intent/experiment-report.js'
import { reportHtml } from '../intent/report-html.js'

const startBody = z.strictObject({
  mode: z.enum(['intent', 'uniform']),
  /** Bounded: an experiment always ends by itself. */
  durationMs: duration(z.number().int().min(1_000).max(24 * 3600 * 1000))
})

export function experimentsAdmin (runner: ExperimentRunner): AdminExtension {
  return (app, control) => {
    app.post('/experiments', async (request, reply) => {
      const parsed = startBody.safeParse(request.body ?? {}, { reportInput: true })
      if (!parsed.success) {
        const problems = problemsFromZod(parsed.error)
        return await adminError(reply, 'invalid_experiment', problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; '), { problems })
      }
      try {
        await runner.start(parsed.data.mode, parsed.data.durationMs)
      } catch (err) {
        if (err instanceof ExperimentBusyError) return await adminError(reply, 'experiment_running', err.message)
        throw err
      }
      audit(request, 'experiment.start', parsed.data)
      return await reply.code(202).send({ started: parsed.data, routes: runner.current?.routes ?? [] })
    })

    app.get('/experiments', async () => ({
      running: runner.current ?? null,
      last: runner.lastReport === undefined ? null : { mode: runner.lastReport.mode, startedAt: runner.lastReport.startedAt, totals: runner.lastReport.totals }
    }))

    app.post('/experiments/stop', async (request, reply) => {
      const report = await runner.stop()
      if (report === undefined) return await adminError(reply, 'no_experiment', 'no experiment is running')
      audit(request, 'experiment.stop', { mode: report.mode })
      return report
    })

    app.get<{ Querystring: { format?: string } }>('/experiments/report', async (request, reply) => {
      const report = runner.lastReport
      if (report === undefined) return await adminError(reply, 'no_report', 'no experiment has finished yet')
      if (request.query.format === 'markdown') return await reply.type('text/markdown; charset=utf-8').send(reportMarkdown(report))
      if (request.query.format === 'html') {
        // Self-contained and script-free: a CSP that allows nothing else says so to the browser too.
        return await reply.type('text/html; charset=utf-8')
          .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'")
          .header('x-content-type-options', 'nosniff')
          .send(reportHtml(runner.lastReports))
      }
      return report
    })

    app.post<{ Params: { route: string } }>('/routes/:route/intent/resume', async (request, reply) => {
      const route = control.table().get(request.params.route)
      if (route?.intent === undefined) return await adminError(reply, 'no_intent', `no route named ${JSON.stringify(request.params.route)} with an intent engine`)
      route.intent.resume()
      audit(request, 'intent.resume', { route: route.name })
      return { route: route.name, level: route.intent.level }
    })
  }
}
