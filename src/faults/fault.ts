/**
 * The one Fault interface and the envelope every fault shares.
 *
 * A fault acts on one exchange the way a policy does: it gets the context
 * and `next` (the upstream attempt, or for `at: client` the whole
 * pipeline) and may wait, answer instead of `next`, fail, or call `next`
 * and alter what comes back. Where it acts is not its business: the
 * FaultIO it is handed says what "wait", "fail" and "cut the body" mean at
 * that side. Whether it fires at all is not its business either: the
 * probability, the matchers and the schedule (schedule.ts) live in the
 * envelope, outside the fault (Toxiproxy's toxicity), so no fault carries
 * an `if` for them.
 */
import { z } from 'zod'
import { share } from '../config/units.js'
import type { RequestContext } from '../core/context.js'
import type { UpstreamCall, UpstreamResponse } from '../core/pipeline.js'
import { FAULT_SIDES, type FaultIO } from './io.js'
import { faultMatchSchema } from './match.js'
import { scheduleEnvelope } from './schedule.js'

export { FAULT_SIDES, type FaultSide } from './io.js'

export interface Fault {
  apply: (ctx: RequestContext, next: UpstreamCall, io: FaultIO) => Promise<UpstreamResponse>
}

/** A fault's name is a metric label value: short and bounded, like route names. */
export const faultName = z
  .string()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, {
    error: 'expected a fault name of letters, digits, "_", "." or "-" (at most 63 characters)'
  })

/** The shared envelope: every fault kind has these keys besides its own. */
export const envelope = {
  /** Names the fault in metrics, logs, headers and the admin API; the kind when absent. */
  name: faultName.optional(),
  probability: share(z.number().min(0).max(1).default(1)),
  at: z.enum(FAULT_SIDES).default('upstream'),
  match: faultMatchSchema.optional(),
  /** first, every, after, per, key, maxKeys, window, until, ttl: see schedule.ts and docs/FAULTS.md. */
  ...scheduleEnvelope
}

/** The schema of one kind: its literal `kind`, the envelope, and its own parameters. */
export function faultObject<const K extends string, P extends z.ZodRawShape> (kind: K, params: P) {
  return z.strictObject({ kind: z.literal(kind), ...envelope, ...params })
}

/** How the trigger header's short form maps onto a kind's parameters (`latency=200ms` sets `ms`). */
export interface HeaderForm {
  /** The parameter `kind=value` sets. */
  value?: string
  /** Parameters that take a list: `drop=a;drop=b`. */
  lists?: readonly string[]
  /** Parameters that take a map: `rename=id:userId`. */
  maps?: readonly string[]
}

export interface FaultKind<S extends z.ZodObject = z.ZodObject> {
  readonly kind: z.infer<S>['kind']
  readonly schema: S
  readonly create: (config: z.infer<S>) => Fault
  readonly header?: HeaderForm
  /** What the fault does, one line, for docs and error messages. */
  readonly summary: string
  /**
   * The shortest trigger header value that injects this kind (`latency=5ms`).
   * Required, so a new kind cannot be registered without one: the fault
   * contract test (test/faults/contract.test.ts) runs every registered
   * kind through it, at both sides, with no list to keep.
   */
  readonly example: string
}

/** A kind file is `export const x = defineFault({ ... })`; the kind's name is read from its schema. */
export function defineFault<S extends z.ZodObject> (def: Omit<FaultKind<S>, 'kind'>): FaultKind<S> {
  const kind = (def.schema.shape as { kind: z.ZodLiteral<string> }).kind.value as z.infer<S>['kind']
  return { ...def, kind }
}
