/**
 * Every fault kind, one line each. The config union is derived from this
 * list, so the schema cannot drift from the code: a new kind is its file
 * plus one line here (and a row in docs/FAULTS.md).
 */
import { z } from 'zod'
import type { Fault, FaultKind } from './fault.js'
import { none } from './none.js'
import { latency } from './latency.js'
import { slowHeaders } from './slow-headers.js'
import { abort } from './abort.js'
import { auth } from './auth.js'
import { rateLimit } from './rate-limit.js'
import { reset } from './reset.js'
import { timeout } from './timeout.js'
import { throttle } from './throttle.js'
import { truncate } from './truncate.js'
import { corrupt } from './corrupt.js'
import { schemaDrift } from './schema-drift.js'

export const FAULT_KINDS = [
  none,
  latency,
  slowHeaders,
  abort,
  auth,
  rateLimit,
  reset,
  timeout,
  throttle,
  truncate,
  corrupt,
  schemaDrift
] as const

/** The tuple of the kinds' schemas (a generic, so TypeScript maps the tuple element by element). */
type SchemasOf<T extends readonly unknown[]> = { -readonly [I in keyof T]: T[I] extends { schema: infer S } ? S : never }

export const faultSchema = z.discriminatedUnion('kind', FAULT_KINDS.map((k) => k.schema) as unknown as SchemasOf<typeof FAULT_KINDS>)
export type FaultConfig = z.infer<typeof faultSchema>
export type FaultKindName = FaultConfig['kind']

const BY_KIND = new Map<string, FaultKind>(FAULT_KINDS.map((k) => [k.kind, k as unknown as FaultKind]))

export function faultKind (kind: string): FaultKind | undefined {
  return BY_KIND.get(kind)
}

export function createFault (config: FaultConfig): Fault {
  return BY_KIND.get(config.kind)!.create(config)
}
