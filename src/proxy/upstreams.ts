/**
 * One undici Pool per upstream origin, shared by every route and every
 * config generation that points at it, so keep-alive connections survive a
 * reload. Pools no config uses any more are closed gracefully: undici's
 * close() lets in-flight requests finish first.
 *
 * For https:// origins the key includes a digest of the CA, certificate and
 * key files' contents, read on every reload: certificates rotated in place
 * (a renewed mounted secret, same paths) get a new pool on the next
 * reload, and the old pool drains.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { Pool } from 'undici'
import type { UpstreamConfig } from '../config/schema.js'
import { ConfigError } from '../config/errors.js'

export interface PoolOptions {
  connections: number
  connectTimeoutMs: number
  keepAliveTimeoutMs: number
  tls?: UpstreamConfig['tls']
}

function keyOf (origin: string, o: PoolOptions, connect: TlsConnect | undefined): string {
  const base = `${origin}|${o.connections}|${o.connectTimeoutMs}|${o.keepAliveTimeoutMs}`
  if (o.tls === undefined) return base
  const files = createHash('sha256')
  for (const pem of [connect?.ca, connect?.cert, connect?.key]) files.update(pem ?? '').update('\0')
  return `${base}|${JSON.stringify(o.tls)}|${files.digest('hex')}`
}

function readPem (path: string, key: string): Buffer {
  try {
    return readFileSync(path)
  } catch (err) {
    throw new ConfigError(path, [{ path: `upstream.tls.${key}`, message: `cannot read ${key}: ${(err as Error).message}` }])
  }
}

interface TlsConnect { ca?: Buffer, cert?: Buffer, key?: Buffer, servername?: string, rejectUnauthorized: boolean }

/** undici connect options for an https:// origin; files are read now, so a new pool picks up rotated files. */
function tlsConnect (origin: string, tls: PoolOptions['tls']): TlsConnect | undefined {
  if (tls === undefined || !origin.startsWith('https:')) return undefined
  return {
    ...(tls.ca !== undefined ? { ca: readPem(tls.ca, 'ca') } : {}),
    ...(tls.cert !== undefined ? { cert: readPem(tls.cert, 'cert') } : {}),
    ...(tls.key !== undefined ? { key: readPem(tls.key, 'key') } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    rejectUnauthorized: tls.rejectUnauthorized
  }
}

export class UpstreamPools {
  private readonly pools = new Map<string, Pool>()

  /** The pool for an origin with these options, created on first use. */
  get (origin: string, options: PoolOptions): Pool {
    const connect = tlsConnect(origin, options.tls)
    const key = keyOf(origin, options, connect)
    let pool = this.pools.get(key)
    if (pool === undefined) {
      pool = new Pool(origin, {
        ...(connect !== undefined ? { connect } : {}),
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
