/**
 * Credentials never leave through the admin API or the audit log. Config
 * can carry them in places the schema cannot refuse: a fault that matches
 * on an Authorization header, a static fallback that sets a cookie. So
 * anything shown is walked once and such values are replaced.
 */
import { isSecretKey } from '../config/secret-keys.js'

export { isSecretKey }

/** `scheme://user:pass@host` -> `scheme://[redacted]@host`. */
const URL_USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/i

export const REDACTED = '[redacted]'

export function redactSecrets<T> (value: T): T {
  return walk(value, 0) as T
}

function walk (value: unknown, depth: number): unknown {
  // Config is shallow; the bound only keeps a pathological value from recursing forever.
  if (depth > 32) return value
  if (typeof value === 'string') return URL_USERINFO.test(value) ? value.replace(URL_USERINFO, `$1${REDACTED}@`) : value
  if (Array.isArray(value)) return value.map((item) => walk(item, depth + 1))
  if (value !== null && typeof value === 'object') {
    // Dates and the like: what JSON would show is what is walked.
    const toJSON = (value as { toJSON?: unknown }).toJSON
    if (typeof toJSON === 'function') return walk(toJSON.call(value), depth + 1)
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) {
      out[key] = isSecretKey(key) && item !== undefined && item !== null ? REDACTED : walk(item, depth + 1)
    }
    return out
  }
  return value
}
