/**
 * A route's `chaos` block. Fault kinds and their parameters live in their
 * own files; the union of them comes from the registry. Issue 5 adds
 * `budget` and intent-derived plans beside `faults`.
 */
import { z } from 'zod'
import { share } from '../config/units.js'
import { faultSchema } from './registry.js'

export const chaosSchema = z.strictObject({
  /** Off by default: a route injects nothing until chaos is enabled (here or on the admin API). */
  enabled: z.boolean().default(false),
  /** Seeds the route's random source: the same seed and request sequence give the same decisions. Random when absent (shown in GET /routes). */
  seed: z.number().int().min(0).max(0xffffffff).optional(),
  /** Lets a request pick its own faults with `x-faultline-fault`. Never in production: any client could inject. */
  allowHeaderTriggers: z.boolean().default(false),
  /**
   * The largest size a trigger header may set (schemaDrift `maxBytes`, the
   * bytes it buffers per response): a client must not make the proxy
   * buffer whole large bodies. A larger trigger value is refused (400).
   */
  maxTriggerBytes: z.number().int().positive().max(64 * 1024 * 1024).default(1024 * 1024),
  /** Names the injected fault(s) in an `x-faultline-fault` response header. */
  exposeHeaders: z.boolean().default(false),
  faults: z.array(faultSchema).max(64).default([]),
  /**
   * Faults planned from the route's intent (docs/INTENT.md) are injected into
   * at most this share of requests, enforced as a hard cap, not an average.
   * Hand-written `faults` keep their own probabilities.
   */
  budget: share(z.number().min(0).max(1).default(0.05)),
  /**
   * The most any fault (hand-written, header-triggered or planned) may
   * touch: a hard cap on the share of this route's requests, counted per
   * request (a retried or alternate attempt is the same request, already
   * counted). 1 (the default) leaves hand-written faults to their own
   * probabilities.
   */
  maxShare: share(z.number().min(0).max(1).default(1)),
  /**
   * A cap on faults injected on this route per minute across the whole
   * fleet (every replica together; this instance alone without `fleet`):
   * a token bucket in Redis, leased in batches (docs/FLEET.md).
   */
  fleetBudget: z.strictObject({
    perMinute: z.number().int().positive().max(1_000_000),
    /** Tokens leased per Redis call; default a tenth of ten seconds' worth (1..20). */
    batch: z.number().int().positive().max(1_000).optional()
  }).optional()
}).superRefine((chaos, ctx) => {
  const seen = new Map<string, number>()
  chaos.faults.forEach((fault, index) => {
    if (fault.name === undefined) return
    const first = seen.get(fault.name)
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: ['faults', index, 'name'], message: `expected a unique fault name, "${fault.name}" is also faults[${first}]` })
    else seen.set(fault.name, index)
  })
})

export type ChaosConfig = z.infer<typeof chaosSchema>
export { faultSchema, type FaultConfig } from './registry.js'
