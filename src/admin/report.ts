/**
 * GET /report: the failure-pattern report (src/failure-report/report.ts), read-only.
 * `?route=<name>` narrows it to one route; `?top=<n>` sets how many worst
 * endpoints to list (1..50, default 10).
 */
import type { AdminExtension } from './server.js'
import { adminError } from './server.js'
import { buildReport } from '../failure-report/report.js'
import type { FailureRecorder } from '../failure-report/recorder.js'

export function reportAdmin (recorder: FailureRecorder): AdminExtension {
  return (app, control) => {
    app.get<{ Querystring: { route?: string, top?: string } }>('/report', async (request, reply) => {
      const names = control.table().routes.map((r) => r.name)
      const { route, top } = request.query
      if (route !== undefined && !names.includes(route)) return adminError(reply, 'no_route', `no route named "${route}"`)
      const n = top === undefined ? 10 : Number(top)
      if (!Number.isInteger(n) || n < 1 || n > 50) return adminError(reply, 'bad_request', 'top: expected an integer from 1 to 50')
      reply.header('cache-control', 'no-store')
      return buildReport(recorder, route === undefined ? names : [route], { worst: n })
    })
  }
}
