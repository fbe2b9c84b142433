/**
 * GET / on the admin port: a small self-refreshing status page (routes,
 * breaker states, chaos state, the failure report). Read-only; it reads
 * the same JSON endpoints anyone can (GET /routes, /chaos, /report).
 */
import type { AdminExtension } from './server.js'
import { STATUS_CSS, STATUS_HTML, STATUS_JS } from './status/page.js'

/** Only this origin, no inline script, no framing: the page renders untrusted strings (route names, paths). */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

export const statusPage: AdminExtension = (app) => {
  const send = (type: string, body: string) => async (_request: unknown, reply: import('fastify').FastifyReply) => await reply
    .header('content-type', type)
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .send(body)
  app.get('/', send('text/html; charset=utf-8', STATUS_HTML))
  app.get('/status.css', send('text/css; charset=utf-8', STATUS_CSS))
  app.get('/status.js', send('text/javascript; charset=utf-8', STATUS_JS))
}
