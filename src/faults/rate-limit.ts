/**
 * Rate limiting: 429 with Retry-After (RFC 9110 §10.2.3), and the
 * RateLimit header fields many APIs send. A good client waits at least
 * Retry-After before it tries again; the retry policy can be checked
 * against that.
 */
import { z } from 'zod'
import { defineFault, faultObject } from './fault.js'

export const rateLimit = defineFault({
  summary: 'answers 429 Too Many Requests with Retry-After',
  example: 'rateLimit',
  schema: faultObject('rateLimit', {
    retryAfterSeconds: z.number().int().min(0).default(1),
    /** The limit to advertise in RateLimit-Limit. */
    limit: z.number().int().positive().default(100)
  }),
  header: { value: 'retryAfterSeconds' },
  create: (config) => {
    const headers = {
      'content-type': 'application/json',
      'retry-after': String(config.retryAfterSeconds),
      'ratelimit-limit': String(config.limit),
      'ratelimit-remaining': '0',
      'ratelimit-reset': String(config.retryAfterSeconds)
    }
    const body = JSON.stringify({ error: 'rate_limited', retryAfterSeconds: config.retryAfterSeconds })
    return { apply: async (ctx, _next, io) => io.respond(ctx, 429, headers, body) }
  }
})
