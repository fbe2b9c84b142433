/**
 * A CacheStore in the fleet's Redis, so every replica can serve the
 * last-known-good answer any of them stored (`cache.store: redis`). Same
 * contract as the in-memory store (test/policies/cache-store-contract.ts):
 * entries expire (PX, Redis's clock), one per response variant, bounded by
 * entries and bytes for the whole fleet, least recently used out first.
 *
 * Keys, all under `<prefix>cache:{<namespace>}` (one hash slot):
 * `:e:<variant>` the entry (meta length, meta JSON, body), `:names:<path>`
 * the Vary names of a method+path, `:variants:<path>` its variants, `:lru`
 * (sorted by a counter in Redis, not a clock), `:size`, `:bytes`,
 * `:clock`. Variant and path parts are SHA-256 hashes, and stored Vary
 * values are hashed too: a request header a response varies on (a
 * credential hash, or an Authorization a response named in Vary) never
 * appears in Redis as it was sent.
 *
 * Every call goes through FleetRedis.attempt on the `cache` connection:
 * bounded by commandTimeoutMs, never throwing. `lookup` tells a miss (null)
 * from Redis failing (undefined), so a caller can fall back to local state.
 */
import { createHash } from 'node:crypto'
import type { Writable } from 'node:stream'
import type { CacheKey, CacheStore, CacheValue, CachedResponse } from '../policies/cache-store.js'
import { entrySize, entryWriter, primaryKey, variantKey, varyValue } from '../policies/cache-store.js'
import type { FleetRedis } from './redis.js'

export interface RedisCacheLimits {
  maxEntries: number
  maxBytes: number
  maxEntryBytes: number
}

const CONNECTION = 'cache'
/** The index keys outlive their last write by this: a route that stops caching leaves nothing for long. */
const INDEX_TTL_MS = 7 * 24 * 3600_000

/** Forgets variant v everywhere (entry, LRU order, size, its path's variant set). */
const EVICT = `
local function evict(v, lru, size, bytes, entryPrefix, variantsPrefix)
  local s = redis.call('HGET', size, v)
  if s then
    local n, path = string.match(s, '^(%d+) (.*)$')
    redis.call('DECRBY', bytes, tonumber(n))
    redis.call('HDEL', size, v)
    redis.call('SREM', variantsPrefix .. path, v)
  end
  redis.call('ZREM', lru, v)
  redis.call('DEL', entryPrefix .. v)
end
`

/**
 * KEYS: lru, size, bytes, clock, entry, names, variants.
 * ARGV: variant, blob, ttl, names JSON, maxEntries, maxBytes, entry bytes, entry prefix, path, variants prefix, index ttl.
 * Returns { entries, bytes } after evicting down to the limits.
 */
const PUT = EVICT + `
local v = ARGV[1]
local ttl = tonumber(ARGV[3])
local n = tonumber(ARGV[7])
if redis.call('HEXISTS', KEYS[2], v) == 1 then evict(v, KEYS[1], KEYS[2], KEYS[3], ARGV[8], ARGV[10]) end
redis.call('SET', KEYS[5], ARGV[2], 'PX', ttl)
redis.call('HSET', KEYS[2], v, n .. ' ' .. ARGV[9])
redis.call('INCRBY', KEYS[3], n)
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[4]), v)
redis.call('SET', KEYS[6], ARGV[4], 'PX', math.max(ttl, redis.call('PTTL', KEYS[6])))
redis.call('SADD', KEYS[7], v)
redis.call('PEXPIRE', KEYS[7], math.max(ttl, redis.call('PTTL', KEYS[7])))
local maxEntries = tonumber(ARGV[5])
local maxBytes = tonumber(ARGV[6])
while redis.call('ZCARD', KEYS[1]) > maxEntries or tonumber(redis.call('GET', KEYS[3]) or '0') > maxBytes do
  local victim = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not victim then break end
  evict(victim, KEYS[1], KEYS[2], KEYS[3], ARGV[8], ARGV[10])
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[11])) end
return { redis.call('ZCARD', KEYS[1]), tonumber(redis.call('GET', KEYS[3]) or '0') }`

/** KEYS: lru, size, bytes, clock, entry. ARGV: variant, entry prefix, variants prefix. The entry (touched), or nil. */
const GET = EVICT + `
local e = redis.call('GET', KEYS[5])
if not e then
  evict(ARGV[1], KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3])
  return false
end
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[4]), ARGV[1])
return e`

/** KEYS: lru, size, bytes, names, variants. ARGV: entry prefix, variants prefix. Returns { entries, bytes }. */
const DELETE = EVICT + `
for _, v in ipairs(redis.call('SMEMBERS', KEYS[5])) do evict(v, KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2]) end
redis.call('DEL', KEYS[4], KEYS[5])
return { redis.call('ZCARD', KEYS[1]), tonumber(redis.call('GET', KEYS[3]) or '0') }`

function digest (text: string): string {
  return createHash('sha256').update(text).digest('base64url')
}

/** A route's namespace: its name (readable in the keys) and a hash of its cache's identity (upstream, rewrite, options). */
export function cacheNamespace (route: string, identity: string): string {
  return `${route}:${digest(identity).slice(0, 16)}`
}

/** The Vary values as stored: hashed, so a header value never reaches Redis as sent. */
function hashedVary (vary: CacheValue['vary']): CacheValue['vary'] {
  if (vary === undefined) return undefined
  const out: Record<string, string | null> = {}
  for (const name in vary) { const v = vary[name]; out[name] = v === null || v === undefined ? null : digest(v) }
  return out
}

function hashedMatches (vary: CacheValue['vary'], headers: CacheKey['headers']): boolean {
  if (vary === undefined) return true
  for (const name in vary) {
    const value = varyValue(headers, name)
    if (vary[name] !== (value === null ? null : digest(value))) return false
  }
  return true
}

export class RedisCacheStore implements CacheStore {
  private readonly redis: FleetRedis
  private readonly limits: RedisCacheLimits
  private readonly base: string
  private last = { entries: 0, bytes: 0 }

  /** `namespace`: the route and its cache's identity (route name, upstream, options): two routes never share entries. */
  constructor (redis: FleetRedis, namespace: string, limits: RedisCacheLimits) {
    this.redis = redis
    this.limits = limits
    this.base = redis.key('cache', `{${namespace}}`)
    // Connect now: the first failure that needs the cache should find the connection up.
    redis.connection(CONNECTION)
  }

  /** Whether Redis answers now (the `cache` connection is up). */
  get available (): boolean {
    return this.redis.isUp(CONNECTION)
  }

  private k (part: string): string { return `${this.base}:${part}` }

  async get (key: CacheKey): Promise<CachedResponse | undefined> {
    return (await this.lookup(key)) ?? undefined
  }

  /** The entry, null on a miss, undefined when Redis failed or is unreachable. */
  async lookup (key: CacheKey): Promise<CachedResponse | null | undefined> {
    const primary = primaryKey(key)
    const path = digest(primary)
    return await this.redis.attempt(async (r) => {
      const names = parseNames(await r.get(this.k(`names:${path}`)))
      const variant = digest(variantKey(primary, names, key.headers))
      const blob = await r.callBuffer('EVAL', GET, 5, this.k('lru'), this.k('size'), this.k('bytes'), this.k('clock'), this.k(`e:${variant}`),
        variant, this.k('e:'), this.k('variants:')) as Buffer | null
      if (blob === null) return null
      const entry = decode(blob)
      if (entry === undefined || entry.deleteAt <= Date.now() || !hashedMatches(entry.vary, key.headers)) return null
      return entry
    }, CONNECTION)
  }

  createWriteStream (key: CacheKey, value: CacheValue): Writable | undefined {
    return entryWriter(this.limits.maxEntryBytes, (chunks, size, cb) => {
      const bytes = entrySize(value.headers, size)
      const ttl = Math.max(1, Math.round(value.deleteAt - Date.now()))
      if (bytes > this.limits.maxBytes) {
        cb(new Error(`cache entry larger than maxBytes (${this.limits.maxBytes})`))
        return
      }
      const primary = primaryKey(key)
      const path = digest(primary)
      const names = value.vary === undefined ? [] : Object.keys(value.vary)
      const variant = digest(variantKey(primary, names, key.headers))
      const meta = Buffer.from(JSON.stringify({ ...value, vary: hashedVary(value.vary) }))
      const head = Buffer.alloc(4)
      head.writeUInt32BE(meta.length)
      const blob = Buffer.concat([head, meta, ...chunks])
      void this.redis.attempt(async (r) => await r.eval(PUT, 7, this.k('lru'), this.k('size'), this.k('bytes'), this.k('clock'),
        this.k(`e:${variant}`), this.k(`names:${path}`), this.k(`variants:${path}`),
        variant, blob, String(ttl), JSON.stringify(names), String(this.limits.maxEntries), String(this.limits.maxBytes), String(bytes),
        this.k('e:'), path, this.k('variants:'), String(INDEX_TTL_MS)) as [number, number], CONNECTION)
        .then((stats) => {
          if (stats === undefined) {
            cb(new Error('the fleet Redis did not take the cache entry'))
            return
          }
          this.last = { entries: Number(stats[0]), bytes: Number(stats[1]) }
          cb()
        })
    })
  }

  async delete (key: CacheKey): Promise<void> {
    await this.remove(key)
  }

  /** Forgets every variant of the key's method and path; false when Redis failed. */
  async remove (key: CacheKey): Promise<boolean> {
    const path = digest(primaryKey(key))
    const stats = await this.redis.attempt(async (r) => await r.eval(DELETE, 5, this.k('lru'), this.k('size'), this.k('bytes'),
      this.k(`names:${path}`), this.k(`variants:${path}`), this.k('e:'), this.k('variants:')) as [number, number], CONNECTION)
    if (stats === undefined) return false
    this.last = { entries: Number(stats[0]), bytes: Number(stats[1]) }
    return true
  }

  /** As of the last write or delete (stats are read synchronously; Redis is not asked for them). */
  stats (): { entries: number, bytes: number } {
    return this.last
  }
}

function parseNames (text: string | null): string[] {
  if (text === null) return []
  try {
    const names = JSON.parse(text) as unknown
    return Array.isArray(names) && names.every((n) => typeof n === 'string') ? names : []
  } catch {
    return []
  }
}

function decode (blob: Buffer): CachedResponse | undefined {
  if (blob.length < 4) return undefined
  const length = blob.readUInt32BE(0)
  if (blob.length < 4 + length) return undefined
  try {
    const meta = JSON.parse(blob.subarray(4, 4 + length).toString('utf8')) as CacheValue
    // Written by a replica, but read back from a shared store: the shape is checked before it is served.
    if (typeof meta !== 'object' || meta === null || typeof meta.statusCode !== 'number' || typeof meta.deleteAt !== 'number' ||
      typeof meta.headers !== 'object' || meta.headers === null || typeof meta.policy !== 'object' || meta.policy === null) return undefined
    return { ...meta, body: blob.subarray(4 + length) }
  } catch {
    return undefined
  }
}
