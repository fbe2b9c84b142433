/**
 * Durations and shares as people write them: `250ms`, `1s`, `2m`, `1h`
 * wherever a duration is configured (keys ending in `Ms`), `5%` wherever a
 * probability or share is (Envoy and Istio accept both). The numeric
 * forms stay valid. A zod preprocess step converts the string before the
 * key's own schema checks it, so bounds and defaults are unchanged, in the
 * file and on the admin API alike.
 *
 * The wrapped schema keeps the inner schema's static type: code and tests
 * write numbers; the strings are for files and API bodies, parsed from
 * `unknown` anyway.
 */
import { z } from 'zod'

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const
const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/
const PERCENT = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/

/** "250ms", "1s", "1.5s", "2m", "1h" to milliseconds; undefined when it is not one. */
export function parseDurationMs (text: string): number | undefined {
  const m = DURATION.exec(text)
  if (m === null) return undefined
  return Math.round(Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS] * 1000) / 1000
}

/** "5%" to 0.05; undefined when it is not one. */
export function parsePercent (text: string): number | undefined {
  const m = PERCENT.exec(text)
  return m === null ? undefined : Number(m[1]) / 100
}

/** A duration in milliseconds: a number, or a string with a unit. */
export function duration<T extends z.ZodType> (schema: T): T {
  return z.preprocess((value, ctx) => {
    if (typeof value !== 'string') return value
    const ms = parseDurationMs(value)
    if (ms !== undefined) return ms
    ctx.addIssue({ code: 'custom', message: `expected a duration such as 250ms, 1s or 2m (or a number of milliseconds), got ${JSON.stringify(value)}` })
    return z.NEVER
  }, schema) as unknown as T
}

/** A probability or share: a number (0.05) or a percentage ("5%"). */
export function share<T extends z.ZodType> (schema: T): T {
  return z.preprocess((value, ctx) => {
    if (typeof value !== 'string') return value
    const p = parsePercent(value)
    if (p !== undefined) return p
    ctx.addIssue({ code: 'custom', message: `expected a share such as 0.05 or "5%", got ${JSON.stringify(value)}` })
    return z.NEVER
  }, schema) as unknown as T
}

/** `value` as a URL, or undefined after one issue saying what was expected: the first step of every URL refinement. */
export function parseUrl (value: string, ctx: z.RefinementCtx, expected = 'a URL'): URL | undefined {
  try {
    return new URL(value)
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected ${expected}, got ${JSON.stringify(value)}` })
    return undefined
  }
}
