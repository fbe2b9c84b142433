/**
 * The last-known-good cache of a route with `cache.store: redis`: the
 * fleet's entries in Redis, with this replica's own in memory beside them
 * for when Redis is away.
 *
 * - Reads ask Redis while it is up (an answer any replica stored, and an
 *   invalidation any replica made, count); when Redis is down or does not
 *   answer within commandTimeoutMs (one deadline for the lookup), the
 *   local copy answers. A request
 *   never fails, nor waits longer than that, because of Redis.
 * - Writes go to both; the local one alone decides whether the write
 *   failed (Redis not taking it is not the request's problem).
 * - An invalidation is applied to both and published, so the other
 *   replicas drop their local copies too (a replica that misses the
 *   message keeps its copy only for use while Redis is down).
 *
 * The credential rules are the cache's (src/policies/cache.ts): the key a
 * store gets already keeps users apart; both stores key variants the same
 * way (variantKey), so a user's entry is found only with that user's key.
 */
import { Writable } from 'node:stream'
import { z } from 'zod'
import type { CacheKey, CacheStore, CacheStoreDescription, CacheStoreStats, CacheValue, CachedResponse } from '../policies/cache-store.js'
import type { MemoryCacheStore } from '../policies/memory-cache-store.js'
import type { RedisCacheStore } from './redis-cache-store.js'
import type { FleetRedis } from './redis.js'

const invalidation = z.strictObject({ ns: z.string().max(500), method: z.string().max(20), path: z.string().max(16_384), by: z.string().max(200) })

export class FleetCacheStore implements CacheStore {
  private readonly local: MemoryCacheStore
  private readonly remote: RedisCacheStore
  private readonly redis: FleetRedis
  private readonly namespace: string
  private readonly channel: string
  private readonly unsubscribe: () => void

  constructor (local: MemoryCacheStore, remote: RedisCacheStore, options: { redis: FleetRedis, namespace: string }) {
    this.local = local
    this.remote = remote
    this.redis = options.redis
    this.namespace = options.namespace
    this.channel = options.redis.key('cache', 'invalidations')
    this.unsubscribe = options.redis.subscribe(this.channel, (text) => { this.onInvalidation(text) })
  }

  /** Whether the fleet's entries are in use now (false: Redis unreachable, the local copy answers). */
  get shared (): boolean {
    return this.remote.available
  }

  async get (key: CacheKey): Promise<CachedResponse | undefined> {
    if (this.remote.available) {
      // One deadline for the whole lookup (it takes two commands): a slow Redis costs the request at most commandTimeoutMs.
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<undefined>((resolve) => { timer = setTimeout(() => { resolve(undefined) }, this.redis.config.redis.commandTimeoutMs) })
      const found = await Promise.race([this.remote.lookup(key), late])
      clearTimeout(timer)
      if (found !== undefined) return found ?? undefined
    }
    return this.local.get(key)
  }

  createWriteStream (key: CacheKey, value: CacheValue): Writable | undefined {
    const local = this.local.createWriteStream(key, value)
    if (local === undefined) return undefined
    const remote = this.remote.createWriteStream(key, value)
    remote?.on('error', () => {})
    /** Resolves when a writer finished (true) or failed (false). */
    const settled = (w: Writable | undefined): Promise<boolean> => new Promise((resolve) => {
      if (w === undefined) { resolve(false); return }
      w.once('finish', () => { resolve(true) })
      w.once('error', () => { resolve(false) })
      w.once('close', () => { resolve(false) })
    })
    const localDone = settled(local)
    const remoteDone = settled(remote)
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (remote !== undefined && !remote.destroyed) remote.write(chunk)
        local.write(chunk, (err) => { cb(err ?? undefined) })
      },
      final: (cb) => {
        local.end()
        remote?.end()
        // Redis's answer is bounded by commandTimeoutMs; only the local store decides the write's fate.
        void Promise.all([localDone, remoteDone]).then(([ok]) => { cb(ok ? undefined : new Error('the local cache store did not take the entry')) })
      },
      destroy: (err, cb) => {
        local.destroy()
        remote?.destroy()
        cb(err)
      }
    })
  }

  async delete (key: CacheKey): Promise<void> {
    this.local.delete(key)
    await this.remote.remove(key)
    const message = JSON.stringify({ ns: this.namespace, method: key.method, path: key.path, by: this.redis.instanceId })
    await this.redis.attempt(async (r) => await r.publish(this.channel, message), 'cache')
  }

  private onInvalidation (text: string): void {
    let message
    try {
      message = invalidation.parse(JSON.parse(text))
    } catch {
      return
    }
    if (message.ns !== this.namespace || message.by === this.redis.instanceId) return
    this.local.delete({ method: message.method, path: message.path, headers: {} })
  }

  stats (): CacheStoreStats {
    return this.shared ? this.remote.stats() : this.local.stats()
  }

  describe (): CacheStoreDescription {
    return { store: 'redis', scope: this.shared ? 'fleet' : 'local', local: this.local.stats() }
  }

  stop (): void {
    this.unsubscribe()
  }
}
