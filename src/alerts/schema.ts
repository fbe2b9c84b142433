/**
 * `alerts:` in the config: where faultline POSTs its own alerts (see
 * src/alerts/notifier.ts and docs/OBSERVABILITY.md), and when.
 */
import { z } from 'zod'
import { duration, share } from '../config/units.js'
import { userHeaders } from '../config/headers.js'

export const ALERT_TYPES = ['breaker_opened', 'auth_guard_tripped', 'error_rate', 'guardrail_halt'] as const
export type AlertType = (typeof ALERT_TYPES)[number]

const httpUrl = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
  .refine((u) => { const p = new URL(u); return p.username === '' && p.password === '' }, { error: 'expected no credentials in the URL: put them in headers' })

export const webhookSchema = z.strictObject({
  url: httpUrl,
  /** Extra request headers (e.g. authorization); never logged. */
  headers: userHeaders.default({}),
  /** Alert types sent to this webhook; all when absent. */
  types: z.array(z.enum(ALERT_TYPES)).min(1).optional(),
  /** Deadline for one POST. */
  timeoutMs: duration(z.number().int().positive().max(60_000).default(5_000)),
  /** Tries per alert, the first included; a 2xx ends them, a 4xx other than 408/429 too (it would fail again). */
  attempts: z.number().int().min(1).max(10).default(4),
  backoff: z.strictObject({
    baseMs: duration(z.number().int().positive().default(500)),
    maxMs: duration(z.number().int().positive().default(30_000))
  }).prefault({}),
  /** At most this many alerts a minute to this webhook; the rest are dropped and counted. */
  perMinute: z.number().int().positive().max(600).default(20),
  /** Alerts waiting to be sent (or retried); the oldest is dropped when full. */
  maxQueue: z.number().int().positive().max(1_000).default(100)
})

export const alertsSchema = z.strictObject({
  webhooks: z.array(webhookSchema).default([]),
  /** The same alert (type, route, upstream) is not sent again within this time. */
  dedupeMs: duration(z.number().int().min(0).default(300_000)),
  /** Client-visible error rate (5xx or no answer) over the last five minutes, checked periodically. */
  errorRate: z.strictObject({
    /** Alert above this share of requests: the route's error budget (1 - SLO). */
    threshold: share(z.number().gt(0).max(1).default(0.05)),
    /** Too few requests prove nothing. */
    minRequests: z.number().int().positive().default(20),
    checkIntervalMs: duration(z.number().int().min(100).default(15_000))
  }).prefault({})
})

export type AlertsConfig = z.infer<typeof alertsSchema>
export type WebhookConfig = z.infer<typeof webhookSchema>
