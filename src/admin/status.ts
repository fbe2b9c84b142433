/**
 * GET / on the admin port: a small self-refreshing status page (routes,
 * breaker states, chaos state, the failure report). Read-only; it reads
 * the same JSON endpoints anyone can (GET /routes, /chaos, /report).
 */
import type { AdminExtension } from './server.js'
import type { RouteTable } from '../proxy/router.js'
import { STATUS_CSS, STATUS_HTML, STATUS_JS } from './status/page.js'

/**
 * The intent engine of every route at a glance, for the status page: level,
 * headroom, guardrail state, margin and levels, and the last 15 minutes of
 * windows (kept in memory by each engine, bounded; a reload starts afresh).
 */
export function intentStatus (table: RouteTable, now = performance.now()): unknown {
  return {
    routes: table.routes.flatMap((route) => {
      const engine = route.intent
      if (engine === undefined) return []
      const report = engine.controllerReport(now)
      const chaos = route.chaosStatus(now)
      const guardrail = chaos.reason === 'kill_switch'
        ? 'chaos stopped by the kill switch'
        : report.halted
          ? `halted until ${new Date(Date.now() + (report.resumesInMs ?? 0)).toISOString()}`
          : chaos.reason === 'disabled'
            ? 'off (chaos disabled)'
            : chaos.reason === 'planned' ? 'running' : 'holding'
      const last = engine.history[engine.history.length - 1]
      return [{
        route: route.name,
        mode: engine.mode,
        declared: engine.declared,
        level: engine.level,
        headroom: last?.headroom ?? null,
        guardrail,
        resilienceMargin: report.resilienceMargin,
        significantLevel: report.significantLevel ?? null,
        disablingLevel: report.disablingLevel ?? null,
        slo: engine.intent.slo,
        history: engine.history
      }]
    })
  }
}

/** Only this origin, no inline script, no framing: the page renders untrusted strings (route names, paths). */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

export const statusPage: AdminExtension = (app, control) => {
  const send = (type: string, body: string) => async (_request: unknown, reply: import('fastify').FastifyReply) => await reply
    .header('content-type', type)
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .send(body)
  app.get('/', send('text/html; charset=utf-8', STATUS_HTML))
  app.get('/status.css', send('text/css; charset=utf-8', STATUS_CSS))
  app.get('/status.js', send('text/javascript; charset=utf-8', STATUS_JS))
  app.get('/status/intent', async () => intentStatus(control.table()))
}
