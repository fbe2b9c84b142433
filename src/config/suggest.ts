/**
 * "Did you mean": for a misspelt key, the closest key the schema knows at
 * that place; for a misspelt value, the closest accepted one. The schema is
 * walked along the path (with the document beside it, so a fault's
 * `kind` picks the right shape), which keeps the suggestions true to the
 * schema instead of a hand-kept list.
 */
import { closest, distance } from 'fastest-levenshtein'
import type { z } from 'zod'

interface Def {
  type: string
  shape?: Record<string, z.ZodType>
  element?: z.ZodType
  innerType?: z.ZodType
  in?: z.ZodType
  out?: z.ZodType
  options?: z.ZodType[]
  discriminator?: string
  valueType?: z.ZodType
  getter?: () => z.ZodType
}

const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def

/** The schema under wrappers (default, optional, pipes, lazy), choosing a union member by the value. */
function unwrap (schema: z.ZodType, value: unknown): z.ZodType {
  for (let i = 0; i < 32; i++) {
    const def = defOf(schema)
    if (def.innerType !== undefined) schema = def.innerType
    else if (def.type === 'pipe') schema = defOf(def.in!).type === 'transform' ? def.out! : def.in!
    else if (def.type === 'lazy') schema = def.getter!()
    else if (def.type === 'union') {
      const options = def.options ?? []
      const tag = def.discriminator !== undefined ? (value as Record<string, unknown> | undefined)?.[def.discriminator] : undefined
      const pick = options.find((o) => {
        const shape = defOf(unwrap(o, undefined)).shape
        if (shape === undefined) return false
        if (def.discriminator === undefined) return true
        const literal = defOf(shape[def.discriminator]!) as Def & { values?: unknown[] }
        return literal.values?.includes(tag) === true
      })
      if (pick === undefined) return schema
      schema = pick
    } else return schema
  }
  return schema
}

/** The object keys the schema accepts at `path` inside `document`, or undefined. */
export function knownKeysAt (root: z.ZodType, path: ReadonlyArray<PropertyKey>, document: unknown): string[] | undefined {
  let schema = root
  let value = document
  for (const key of path) {
    const def = defOf(unwrap(schema, value))
    const next = def.shape?.[String(key)] ?? def.element ?? def.valueType
    if (next === undefined) return undefined
    schema = next
    value = (value as Record<PropertyKey, unknown> | undefined)?.[key]
  }
  const shape = defOf(unwrap(schema, value)).shape
  return shape === undefined ? undefined : Object.keys(shape)
}

/** The candidate a person most likely meant, if one is close enough to be a typo or a shortening. */
export function didYouMean (word: string, candidates: readonly string[]): string | undefined {
  if (candidates.length === 0) return undefined
  const lower = word.toLowerCase()
  // `timeout` for `timeoutMs`, `5xx` for `http_5xx`: a prefix or suffix is a strong hint.
  const prefixed = candidates.find((c) => c.toLowerCase().startsWith(lower) || c.toLowerCase().endsWith(lower) || (lower.startsWith(c.toLowerCase()) && c.length >= 4))
  if (prefixed !== undefined && lower.length >= 3) return prefixed
  const best = closest(word, candidates as string[])
  return distance(lower, best.toLowerCase()) <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined
}
