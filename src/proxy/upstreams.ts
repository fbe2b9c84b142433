/**
 * One undici Pool per upstream origin, shared by every route and every
 * config generation that points at it, so keep-alive connections survive a
 * reload. Pools are reference counted: each route holds its pools until it
 * is retired and its last request is done (RouteRuntime), so a request
 * queued, backing off or held by an injected delay across a reload still
 * finds its pool open. Only a pool nobody holds is closed, gracefully.
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
export function tlsConnect (origin: string, tls: PoolOptions['tls']): TlsConnect | undefined {
  if (tls === undefined || !origin.startsWith('https:')) return undefined
  return {
    ...(tls.ca !== undefined ? { ca: readPem(tls.ca, 'ca') } : {}),
    ...(tls.cert !== undefined ? { cert: readPem(tls.cert, 'cert') } : {}),
    ...(tls.key !== undefined ? { key: readPem(tls.key, 'key') } : {}),
    ...(tls.servername !== undefined ? { servername: tls.servername } : {}),
    rejectUnauthorized: tls.rejectUnauthorized
  }
}

/** Reads every TLS file an upstream names, so a config whose files are unreadable fails before anything is built. */
export function checkUpstreamFiles (config: UpstreamConfig): void {
  for (const url of [config.url, ...config.alternates]) tlsConnect(new URL(url).origin, config.tls)
}

interface PoolEntry { pool: Pool, refs: number }

export class UpstreamPools {
  private readonly pools = new Map<string, PoolEntry>()

  /** The pool for an origin with these options, created on first use; the caller holds one reference until release(). */
  acquire (origin: string, options: PoolOptions): Pool {
    const connect = tlsConnect(origin, options.tls)
    const key = keyOf(origin, options, connect)
    let entry = this.pools.get(key)
    if (entry === undefined) {
      entry = {
        pool: new Pool(origin, {
          ...(connect !== undefined ? { connect } : {}),
          connections: options.connections,
          pipelining: 1,
          keepAliveTimeout: options.keepAliveTimeoutMs,
          connectTimeout: options.connectTimeoutMs
        }),
        refs: 0
      }
      this.pools.set(key, entry)
    }
    entry.refs++
    return entry.pool
  }

  forUpstream (config: UpstreamConfig, origin: string = config.url): Pool {
    return this.acquire(new URL(origin).origin, config)
  }

  /** Drops one reference; the last one closes the pool (undici lets its in-flight requests finish). */
  release (pool: Pool): void {
    for (const [key, entry] of this.pools) {
      if (entry.pool !== pool) continue
      if (--entry.refs > 0) return
      this.pools.delete(key)
      pool.close().catch(() => {})
      return
    }
  }

  /** How many pools are open (tests: nothing leaks across reloads). */
  get size (): number {
    return this.pools.size
  }

  async closeAll (): Promise<void> {
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.all(all.map(async (e) => { await e.pool.close().catch(() => {}) }))
  }

  /** Ends every connection now; for a shutdown whose drain deadline passed. */
  async destroyAll (): Promise<void> {
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.all(all.map(async (e) => { await e.pool.destroy().catch(() => {}) }))
  }
}
