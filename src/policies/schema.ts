/**
 * Per-route resilience options. Each policy's own options live in this file
 * so src/config/schema.ts only composes them.
 */
import { z } from 'zod'

export const resilienceSchema = z.strictObject({
  /** Deadline for the whole request, all attempts and backoff included: 504 when exceeded. */
  timeoutMs: z.number().int().positive().default(15_000),
  /** Deadline for one attempt to receive response headers; defaults to timeoutMs. */
  attemptTimeoutMs: z.number().int().positive().optional(),
  /** Longest pause between two body chunks from the upstream before the response is cut. */
  bodyIdleTimeoutMs: z.number().int().positive().default(30_000)
})

export type ResilienceConfig = z.infer<typeof resilienceSchema>
