/**
 * Abort: answer with an error status instead of the upstream (Envoy's
 * abort). The upstream is never called. Upstream side, a 5xx/429/401/403
 * counts as a failed attempt, so retry-on-status and the breaker see it.
 */
import { z } from 'zod'
import { defineFault, faultObject } from './fault.js'
import { userHeaders } from '../config/headers.js'

export const abort = defineFault({
  summary: 'answers with an error status instead of the upstream',
  example: 'abort',
  schema: faultObject('abort', {
    status: z.number().int().min(200).max(599).default(503),
    /** The body; a small JSON error naming the fault when absent. */
    body: z.string().optional(),
    /** Extra response headers (content-type defaults to text/plain for a given body). */
    headers: userHeaders.default({})
  }),
  header: { value: 'status' },
  create: (config) => {
    const { status } = config
    const body = config.body ?? JSON.stringify({ error: 'injected_fault', fault: 'abort', status })
    const headers = {
      'content-type': config.body === undefined ? 'application/json' : 'text/plain; charset=utf-8',
      ...config.headers
    }
    return { apply: async (ctx, _next, io) => io.respond(ctx, status, headers, body) }
  }
})
