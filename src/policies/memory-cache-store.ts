/**
 * The in-memory CacheStore: lru-cache bounded by entries and bytes, one
 * entry per response variant. A small index remembers which request
 * headers each method+path varies on, so a lookup can build the variant's
 * key before it has a response. Expired entries are dropped lazily (no
 * timers).
 */
import type { Writable } from 'node:stream'
import { LRUCache } from 'lru-cache'
import type { CacheKey, CacheStore, CacheValue, CachedResponse } from './cache-store.js'
import { entrySize, entryWriter, primaryKey, variantKey, varyMatches } from './cache-store.js'

export interface MemoryCacheStoreOptions {
  maxEntries: number
  maxBytes: number
  maxEntryBytes: number
}

export class MemoryCacheStore implements CacheStore {
  private readonly options: MemoryCacheStoreOptions
  private readonly entries: LRUCache<string, CachedResponse>
  private readonly varyNames: LRUCache<string, string[]>

  constructor (options: MemoryCacheStoreOptions) {
    this.options = options
    this.entries = new LRUCache<string, CachedResponse>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      maxEntrySize: Math.min(options.maxBytes, options.maxEntryBytes + 64 * 1024),
      sizeCalculation: (entry) => entrySize(entry.headers, entry.body.length)
    })
    this.varyNames = new LRUCache<string, string[]>({ max: options.maxEntries })
  }

  get (key: CacheKey): CachedResponse | undefined {
    const primary = primaryKey(key)
    const names = this.varyNames.get(primary) ?? []
    const entry = this.entries.get(variantKey(primary, names, key.headers))
    if (entry === undefined) return undefined
    if (entry.deleteAt <= Date.now() || !varyMatches(entry.vary, key.headers)) return undefined
    return entry
  }

  createWriteStream (key: CacheKey, value: CacheValue): Writable | undefined {
    return entryWriter(this.options.maxEntryBytes, (chunks, size, done) => {
      const primary = primaryKey(key)
      const names = value.vary === undefined ? [] : Object.keys(value.vary)
      this.varyNames.set(primary, names)
      const entry: CachedResponse = { ...value, body: Buffer.concat(chunks, size) }
      const ttl = Math.max(1, value.deleteAt - Date.now())
      this.entries.set(variantKey(primary, names, key.headers), entry, { ttl })
      done()
    })
  }

  delete (key: CacheKey): void {
    const primary = primaryKey(key)
    this.varyNames.delete(primary)
    // Variants under other header values are found by prefix: the index only knows the names.
    for (const k of [...this.entries.keys()]) {
      if (k === primary || k.startsWith(primary + '\n')) this.entries.delete(k)
    }
  }

  stats (): { entries: number, bytes: number } {
    return { entries: this.entries.size, bytes: this.entries.calculatedSize }
  }
}
