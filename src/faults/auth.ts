/**
 * Auth failures as an OAuth 2.0 resource server sends them (RFC 6750 §3):
 *   unauthorized  401, a Bearer challenge and no error code (no credentials accepted)
 *   expired       401, error="invalid_token": the token expired, a refresh should fix it
 *   forbidden     403, error="insufficient_scope": the token is fine, the permission is not
 * The cases a client must tell apart: refresh once on expired, never retry
 * forbidden, never hammer with bad credentials.
 */
import { z } from 'zod'
import { quotedHeaderText } from '../config/headers.js'
import { defineFault, faultObject } from './fault.js'

const VARIANTS = {
  unauthorized: { status: 401, challenge: '', body: { error: 'unauthorized', error_description: 'Authentication is required' } },
  expired: { status: 401, challenge: ', error="invalid_token", error_description="The access token expired"', body: { error: 'invalid_token', error_description: 'The access token expired' } },
  forbidden: { status: 403, challenge: ', error="insufficient_scope", error_description="The access token lacks the required scope"', body: { error: 'insufficient_scope', error_description: 'The access token lacks the required scope' } }
} as const

export const auth = defineFault({
  summary: 'answers 401 (missing or expired token) or 403 (insufficient scope)',
  example: 'auth',
  schema: faultObject('auth', {
    variant: z.enum(['unauthorized', 'expired', 'forbidden']).default('unauthorized'),
    realm: quotedHeaderText.default('faultline')
  }),
  header: { value: 'variant' },
  create: (config) => {
    const v = VARIANTS[config.variant]
    const headers = {
      'content-type': 'application/json',
      'www-authenticate': `Bearer realm="${config.realm}"${v.challenge}`
    }
    const body = JSON.stringify(v.body)
    return { apply: async (ctx, _next, io) => io.respond(ctx, v.status, headers, body) }
  }
})
