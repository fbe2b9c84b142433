/**
 * One undici Pool per upstream origin, shared by every route and every
 * config generation that points at it, so keep-alive connections survive a
 * reload. Pools no config uses any more are closed gracefully: undici's
 * close() lets in-flight requests finish first.
 */
import { Pool } from 'undici'
import type { UpstreamConfig } from '../config/schema.js'

export interface PoolOptions {
  connections: number
  connectTimeoutMs: number
  keepAliveTimeoutMs: number
}

function keyOf (origin: string, o: PoolOptions): string {
  return `${origin}|${o.connections}|${o.connectTimeoutMs}|${o.keepAliveTimeoutMs}`
}

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>()

  /** The pool for an origin with these options, created on first use. */
  get (origin: string, options: PoolOptions): Pool {
    const key = keyOf(origin, options)
    let pool = this.pools.get(key)
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: options.connections,
        pipelining: 1,
        keepAliveTimeout: options.keepAliveTimeoutMs,
        connectTimeout: options.connectTimeoutMs
      })
      this.pools.set(key, pool)
    }
    return pool
  }

  forUpstream (config: UpstreamConfig, origin: string = config.url): Pool {
    return this.get(new URL(origin).origin, config)
  }

  /** Closes every pool not in `keep`, after its in-flight requests end. */
  async retain (keep: Set<Pool>): Promise<void> {
    const closing: Promise<void>[] = []
    for (const [key, pool] of this.pools) {
      if (!keep.has(pool)) {
        this.pools.delete(key)
        closing.push(pool.close().catch(() => {}))
      }
    }
    await Promise.all(closing)
  }

  async closeAll (): Promise<void> {
    await this.retain(new Set())
  }

  /** Ends every connection now; for a shutdown whose drain deadline passed. */
  async destroyAll (): Promise<void> {
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.all(all.map(async (p) => await p.destroy().catch(() => {})))
  }
}
