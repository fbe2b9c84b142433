/**
 * Which config fields and headers hold secrets: the admin API redacts them
 * and config errors never echo their values. A leaf, so both can import it.
 */

/** Header and field names whose values are secrets (compared lowercased). */
const SECRET_KEYS = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'api-key',
  'apikey',
  'token',
  'password',
  'secret'
])

/** True for a field or header name whose value is a secret (compared lowercased). */
export function isSecretKey (key: string): boolean {
  return SECRET_KEYS.has(key.toLowerCase())
}
