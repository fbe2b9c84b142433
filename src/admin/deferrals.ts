/**
 * Admin endpoints for deferred writes (src/deferral). Every one of them,
 * reads included, needs the bearer token (server.ts, PRIVATE_READS): a
 * stored request is a customer's write.
 *
 *   GET    /deferrals?route=&state=&limit=   newest first (at most 500)
 *   GET    /deferrals/:id                     one entry: attempts, last error, and once delivered the upstream's status and (bounded) body
 *   POST   /deferrals/:id/retry               a pending entry is due now; a dead letter is pending again
 *   POST   /deferrals/:id/cancel              a pending or dead entry will never be delivered
 *   DELETE /deferrals/dead?route=             purge dead letters
 *
 * Stored secrets are never shown: request header values only for a short
 * list of harmless names, the request body never (its size and SHA-256).
 */
import { createHash } from 'node:crypto'
import type { AdminExtension } from './server.js'
import { adminError, audit } from './server.js'
import { REDACTED } from './redact.js'
import type { Deferrals } from '../deferral/service.js'
import { DEFERRAL_STATES, type DeferralEntry, type DeferralState } from '../deferral/store.js'

/** Request headers whose values are shown; every other value is redacted (it may be a credential). */
const SHOWN_HEADERS = new Set(['content-type', 'content-encoding', 'idempotency-key', 'accept', 'user-agent', 'x-request-id', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host'])

function summary (e: DeferralEntry): Record<string, unknown> {
  return {
    id: e.id,
    route: e.route,
    state: e.state,
    method: e.method,
    path: e.path.split('?')[0],
    idempotencyKey: e.key,
    injected: e.injected,
    reason: e.reason,
    attempts: e.attempts,
    createdAt: new Date(e.createdAt).toISOString(),
    expiresAt: new Date(e.expiresAt).toISOString(),
    ...(e.state === 'pending' ? { nextAttemptAt: new Date(e.nextAttemptAt).toISOString() } : {}),
    ...(e.lastError !== undefined ? { lastError: e.lastError } : {}),
    ...(e.settledAt !== undefined ? { settledAt: new Date(e.settledAt).toISOString() } : {}),
    ...(e.result !== undefined ? { upstreamStatus: e.result.status } : {})
  }
}

/** A body as text when it is printable UTF-8, else base64. */
function shownBody (base64: string): { encoding: 'utf8' | 'base64', text: string } {
  const buf = Buffer.from(base64, 'base64')
  const text = buf.toString('utf8')
  // eslint-disable-next-line no-control-regex
  return text.includes('\uFFFD') || /[\x00-\x08\x0E-\x1F]/.test(text) ? { encoding: 'base64', text: base64 } : { encoding: 'utf8', text }
}

function detail (e: DeferralEntry): Record<string, unknown> {
  const headers: Array<[string, string]> = []
  for (let i = 0; i < e.headers.length; i += 2) {
    const name = e.headers[i]!
    headers.push([name, SHOWN_HEADERS.has(name.toLowerCase()) ? e.headers[i + 1]! : REDACTED])
  }
  const body = Buffer.from(e.body, 'base64')
  return {
    ...summary(e),
    path: e.path.split('?')[0],
    request: { headers, bodyBytes: body.length, bodySha256: createHash('sha256').update(body).digest('hex') },
    history: (e.history ?? []).map((a) => ({ ...a, at: new Date(a.at).toISOString() })),
    ...(e.result !== undefined
      ? { result: { status: e.result.status, headers: e.result.headers, body: shownBody(e.result.body), truncated: e.result.truncated, at: new Date(e.result.at).toISOString() } }
      : {})
  }
}

export function deferralsAdmin (deferrals: Deferrals): AdminExtension {
  return (app) => {
    app.get<{ Querystring: { route?: string, state?: string, limit?: string } }>('/deferrals', async (request, reply) => {
      const store = deferrals.store
      if (store === undefined) return adminError(reply, 'deferral_not_configured', 'no route defers writes (a `defer` fallback step) and no deferral store is open')
      const { route, state, limit } = request.query
      if (state !== undefined && !(DEFERRAL_STATES as readonly string[]).includes(state)) {
        return adminError(reply, 'bad_request', `unknown state "${state}": expected one of ${DEFERRAL_STATES.join(', ')}`)
      }
      const n = limit === undefined ? 100 : Number(limit)
      if (!Number.isInteger(n) || n < 1 || n > 500) return adminError(reply, 'bad_request', 'expected limit to be an integer from 1 to 500')
      const entries = await store.list({ route, state: state as DeferralState | undefined, limit: n })
      return { deferrals: entries.map(summary) }
    })

    app.get<{ Params: { id: string } }>('/deferrals/:id', async (request, reply) => {
      const entry = await deferrals.store?.get(request.params.id)
      if (entry === undefined) return adminError(reply, 'no_deferral', `no deferral with id "${request.params.id}"`)
      return detail(entry)
    })

    app.post<{ Params: { id: string } }>('/deferrals/:id/retry', async (request, reply) => {
      const store = deferrals.store
      const entry = await store?.get(request.params.id)
      if (store === undefined || entry === undefined) return adminError(reply, 'no_deferral', `no deferral with id "${request.params.id}"`)
      if (!await store.retryNow(entry.id, Date.now())) {
        return adminError(reply, 'not_retryable', `deferral ${entry.id} is ${entry.state}${entry.state === 'dead' ? ' and its Idempotency-Key was deferred again since' : ''}: only a pending entry or a dead letter can be retried`)
      }
      deferrals.deliverer(entry.route)?.recovered()
      audit(request, 'deferral retry', { id: entry.id, route: entry.route, from: entry.state })
      return summary((await store.get(entry.id))!)
    })

    app.post<{ Params: { id: string } }>('/deferrals/:id/cancel', async (request, reply) => {
      const store = deferrals.store
      const entry = await store?.get(request.params.id)
      if (store === undefined || entry === undefined) return adminError(reply, 'no_deferral', `no deferral with id "${request.params.id}"`)
      if (!await store.cancel(entry.id, Date.now())) return adminError(reply, 'not_cancellable', `deferral ${entry.id} is ${entry.state}: only a pending entry or a dead letter can be cancelled`)
      audit(request, 'deferral cancel', { id: entry.id, route: entry.route, from: entry.state })
      return summary((await store.get(entry.id))!)
    })

    app.delete<{ Querystring: { route?: string } }>('/deferrals/dead', async (request, reply) => {
      const store = deferrals.store
      if (store === undefined) return adminError(reply, 'deferral_not_configured', 'no deferral store is open')
      const purged = await store.purgeDead(request.query.route)
      audit(request, 'deferral purge dead letters', { route: request.query.route ?? '*', purged })
      return { purged }
    })
  }
}
