/**
 * Fleet control: the Redis every replica of a service shares (docs/FLEET.md).
 * Absent, faultline works alone and never touches Redis (the embedded
 * default). Everything that shares state across replicas (kill switch,
 * route levels, fault budget, breaker transitions, cache, deferral queue)
 * takes its connection from this one block.
 */
import { hostname } from 'node:os'
import { z } from 'zod'
import { duration, parseUrl } from '../config/units.js'

const redisUrl = z.string().superRefine((value, ctx) => {
  const url = parseUrl(value, ctx, 'a Redis URL such as redis://redis:6379')
  if (url === undefined) return
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    ctx.addIssue({ code: 'custom', message: `expected a redis:// or rediss:// URL, got ${JSON.stringify(url.protocol)}` })
  } else if (url.password !== '') {
    // A URL is logged and shown; a password belongs in a file (a mounted secret).
    ctx.addIssue({ code: 'custom', message: 'expected no password in the Redis URL; use fleet.redis.passwordFile' })
  }
})

export const fleetRedisSchema = z.strictObject({
  /** redis://host:port[/db] or rediss:// for TLS; the user name may be in the URL, the password may not. */
  url: redisUrl,
  /** Read the password from a file (a mounted secret), re-read on reload. */
  passwordFile: z.string().min(1).optional(),
  /** Every key and channel starts with this, so several fleets can share one Redis. */
  keyPrefix: z.string().regex(/^[a-zA-Z0-9_.:{}-]{1,64}$/, { error: 'expected 1-64 letters, digits or _ . : { } -' }).default('faultline:'),
  /** A connection attempt that takes longer fails (and is retried). */
  connectTimeoutMs: duration(z.number().int().positive().max(60_000).default(2_000)),
  /** A command unanswered after this fails; the caller falls back to its local state. */
  commandTimeoutMs: duration(z.number().int().positive().max(60_000).default(500)),
  /** Reconnect delays grow from 50 ms up to this, and never stop: Redis coming back is always noticed. */
  maxReconnectDelayMs: duration(z.number().int().positive().max(60_000).default(2_000))
})

export const fleetSchema = z.strictObject({
  redis: fleetRedisSchema,
  /** How often each replica reads the shared kill switch, in case it missed a message (a Redis restart, a dropped connection). */
  pollMs: duration(z.number().int().min(50).max(5_000).default(250)),
  /** This replica's name in Redis (leases, probes, logs); defaults to host name and process id. */
  instanceId: z.string().regex(/^[a-zA-Z0-9_.:-]{1,128}$/, { error: 'expected 1-128 letters, digits or _ . : -' }).optional()
})

export type FleetConfig = z.infer<typeof fleetSchema>
export type FleetRedisConfig = z.infer<typeof fleetRedisSchema>

/** The instance id in force: configured, or host name and pid (unique per replica on one host too). */
export function instanceIdOf (config: FleetConfig): string {
  return config.instanceId ?? `${hostname().replace(/[^a-zA-Z0-9_.:-]/g, '_').slice(0, 100)}-${process.pid}`
}
