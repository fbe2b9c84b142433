/**
 * A route's HTTP/1.1 upgrades (WebSocket): on or off, and the
 * connection-level faults that make sense for a long-lived connection
 * (docs/FAULTS.md, "WebSocket"). Separate from `chaos.faults`, whose
 * faults act on one request and its response.
 */
import { z } from 'zod'

const probability = z.number().min(0).max(1).default(1)

/** Close codes an endpoint may send (RFC 6455 §7.4.1, IANA registry): not 1004-1006 or 1015. */
const closeCode = z.number().int().refine((c) => (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999), {
  error: 'expected a close code a server may send: 1000-1003, 1007-1014 or 3000-4999'
})

export const upgradeFaultSchema = z.discriminatedUnion('kind', [
  /** Holds the handshake before it is sent upstream. */
  z.strictObject({ kind: z.literal('delay'), ms: z.number().int().min(1).max(60_000), probability }),
  /** Answers the handshake with an error status instead of switching protocols; the upstream never sees it. */
  z.strictObject({ kind: z.literal('refuse'), status: z.number().int().min(400).max(599).default(503), probability }),
  /** Closes an open connection with a close frame, after a time or a number of messages (both directions counted). */
  z.strictObject({
    kind: z.literal('close'),
    afterMs: z.number().int().min(1).max(3_600_000).optional(),
    afterMessages: z.number().int().min(1).max(1_000_000).optional(),
    code: closeCode.default(1001),
    reason: z.string().regex(/^[\x20-\x7e]{0,100}$/, { error: 'expected at most 100 printable ASCII characters' }).default('faultline: injected close'),
    probability
  }).refine((f) => (f.afterMs === undefined) !== (f.afterMessages === undefined), { error: 'expected exactly one of afterMs and afterMessages' })
])

export const upgradesSchema = z.strictObject({
  /** Off: an upgrade request is answered 501, never passed on as a plain request. */
  enabled: z.boolean().default(true),
  /** Injected only while the route's chaos is enabled and the kill switch is armed. */
  faults: z.array(upgradeFaultSchema).max(16).default([])
})

export type UpgradesConfig = z.infer<typeof upgradesSchema>
export type UpgradeFault = z.infer<typeof upgradeFaultSchema>
