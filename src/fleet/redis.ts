/**
 * The fleet's Redis connections: the one place faultline opens, watches and
 * closes them. Every fleet feature (kill switch, route levels, fault
 * budget, breaker transitions, cache, deferral queue) asks this module for
 * a named connection instead of making its own.
 *
 * - Lazy: nothing connects until a feature asks for a connection.
 * - Never in a request's way: commands fail fast while disconnected (no
 *   offline queue) and time out after commandTimeoutMs, so a caller falls
 *   back to local state instead of waiting; `attempt()` never throws.
 * - Bounded reconnect: delays grow from 50 ms to maxReconnectDelayMs and
 *   never stop, so a Redis that comes back is always found again.
 * - Counted and logged: `faultline_fleet_redis_up{connection}` and
 *   `faultline_fleet_redis_errors_total{connection}`; one log line when a
 *   connection goes down or comes back, not one per retry.
 * - Closed by its owner (Faultline) on shutdown, and on a reload that
 *   changes fleet.redis.
 */
import { readFileSync } from 'node:fs'
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from '../log.js'
import type { Metrics } from '../metrics/metrics.js'
import { ConfigError } from '../config/errors.js'
import { instanceIdOf, type FleetConfig, type FleetRedisConfig } from './schema.js'

/** Per-connection changes to the fleet's settings (a blocking reader needs no command timeout). */
export interface ConnectionOptions {
  /** false: no client-side command timeout (for blocking reads such as XREADGROUP BLOCK). */
  commandTimeoutMs?: number | false
}

const MIN_RECONNECT_MS = 50
/** How long close() waits for QUIT before it drops a connection. */
const QUIT_WAIT_MS = 500

/** The password in force: from fleet.redis.passwordFile, read at check and on every reload. */
export function readRedisPassword (config: FleetRedisConfig, file: string): string | undefined {
  if (config.passwordFile === undefined) return undefined
  try {
    return readFileSync(config.passwordFile, 'utf8').trim()
  } catch (err) {
    throw new ConfigError(file, [{ path: 'fleet.redis.passwordFile', message: `cannot read the Redis password file: ${(err as Error).message}` }])
  }
}

/** ioredis options for the fleet's settings; the CLI uses the same for `faultline chaos --redis`. */
export function redisOptions (config: FleetRedisConfig, password: string | undefined, name: string, options: ConnectionOptions = {}): RedisOptions {
  const commandTimeout = options.commandTimeoutMs === false ? undefined : (options.commandTimeoutMs ?? config.commandTimeoutMs)
  return {
    lazyConnect: true,
    connectionName: name,
    password,
    connectTimeout: config.connectTimeoutMs,
    commandTimeout,
    // Fail a command at once while disconnected: the caller has a local fallback, never a queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    // FleetRedis.subscribe re-subscribes on 'ready' itself, with its failure handled; ioredis's own
    // re-subscription leaves a rejected promise unhandled when the connection drops again at once.
    autoResubscribe: false,
    retryStrategy: (times: number) => Math.min(MIN_RECONNECT_MS * 2 ** Math.min(times - 1, 10), config.maxReconnectDelayMs)
  }
}

/** The URL without user info, for logs. */
export function redisAddress (url: string): string {
  const u = new URL(url)
  return `${u.protocol}//${u.host}${u.pathname === '/' ? '' : u.pathname}`
}

interface Connection {
  client: Redis
  up: boolean
}

let serials = 0

export class FleetRedis {
  readonly config: FleetConfig
  readonly instanceId: string
  /** Tells these connections from those a reload replaces (policy state that holds them is keyed by it). */
  readonly serial = ++serials
  private readonly password: string | undefined
  private readonly logger: Logger
  private readonly metrics: Metrics
  private readonly connections = new Map<string, Connection>()
  /** Channel -> handlers, over the 'subscriber' connection. */
  private readonly channels = new Map<string, Set<(message: string) => void>>()
  private subscriberWired = false
  private closed = false

  constructor (config: FleetConfig, deps: { logger: Logger, metrics: Metrics, password?: string }) {
    this.config = config
    this.instanceId = instanceIdOf(config)
    this.password = deps.password
    this.logger = deps.logger.child({ fleet: redisAddress(config.redis.url) })
    this.metrics = deps.metrics
  }

  /** A fleet key or channel name: the configured prefix, then the parts joined by ':'. */
  key (...parts: string[]): string {
    return this.config.redis.keyPrefix + parts.join(':')
  }

  /**
   * The named connection, created and connecting on first use. Names are
   * fixed strings in code (they are metric labels). A subscriber or a
   * blocking reader needs a connection of its own; plain commands share
   * 'commands'.
   */
  connection (name = 'commands', options: ConnectionOptions = {}): Redis {
    const existing = this.connections.get(name)
    if (existing !== undefined) return existing.client
    if (this.closed) throw new Error('the fleet Redis connections are closed')
    const client = new Redis(this.config.redis.url, redisOptions(this.config.redis, this.password, `faultline:${this.instanceId}:${name}`, options))
    const conn: Connection = { client, up: false }
    this.connections.set(name, conn)
    const up = this.metrics.fleetRedisUp.labels(name)
    const errors = this.metrics.fleetRedisErrors.labels(name)
    up.set(0)
    errors.inc(0)
    client.on('ready', () => {
      if (!conn.up) this.logger.info({ connection: name }, 'fleet Redis connected')
      conn.up = true
      up.set(1)
    })
    client.on('error', (err: Error) => {
      errors.inc()
      if (conn.up) this.logger.warn({ connection: name, err: err.message }, 'fleet Redis error; fleet features fall back to local state until it is back')
    })
    client.on('close', () => {
      if (conn.up && !this.closed) this.logger.warn({ connection: name }, 'fleet Redis connection lost; reconnecting, local state meanwhile')
      conn.up = false
      up.set(0)
    })
    // Failures are reported through 'error' and retried by the retry strategy.
    client.connect().catch(() => {})
    return client
  }

  /** True while the named connection is connected and ready. */
  isUp (name = 'commands'): boolean {
    return this.connections.get(name)?.up === true
  }

  /**
   * Runs `fn` on the named connection; resolves undefined (and counts an
   * error) when Redis is down or the command fails. Never throws: fleet
   * state is an improvement on local state, never a reason to fail.
   */
  async attempt<T> (fn: (redis: Redis) => Promise<T>, name = 'commands'): Promise<T | undefined> {
    if (this.closed) return undefined
    const client = this.connection(name)
    // ioredis's own status as well as ours: between a dropped stream and the 'close' event that clears `up`,
    // a command (a MULTI's parts above all) is refused inside ioredis, where a rejection can go unheard.
    if (this.connections.get(name)?.up !== true || client.status !== 'ready') return undefined
    try {
      return await fn(client)
    } catch (err) {
      this.metrics.fleetRedisErrors.labels(name).inc()
      this.logger.debug({ connection: name, err: (err as Error).message }, 'fleet Redis command failed')
      return undefined
    }
  }

  /**
   * Calls `handler` with every message on `channel` (a fleet key, see
   * key()), over the shared 'subscriber' connection. Subscribes again
   * whenever that connection is (re)established, so a Redis restart or a
   * connection that was down at start loses nothing but the messages sent
   * meanwhile (every feature also polls for that). Returns the unsubscribe.
   */
  subscribe (channel: string, handler: (message: string) => void): () => void {
    const client = this.connection('subscriber', { commandTimeoutMs: false })
    let handlers = this.channels.get(channel)
    if (handlers === undefined) {
      handlers = new Set()
      this.channels.set(channel, handlers)
    }
    handlers.add(handler)
    if (!this.subscriberWired) {
      this.subscriberWired = true
      client.on('message', (from: string, message: string) => {
        for (const h of this.channels.get(from) ?? []) {
          try { h(message) } catch (err) { this.logger.error({ err, channel: from }, 'fleet message handler failed') }
        }
      })
      client.on('ready', () => { this.resubscribe(client) })
    }
    if (this.isUp('subscriber')) this.resubscribe(client)
    return () => {
      handlers.delete(handler)
      if (handlers.size === 0) {
        this.channels.delete(channel)
        if (this.isUp('subscriber')) client.unsubscribe(channel).catch(() => {})
      }
    }
  }

  private resubscribe (client: Redis): void {
    const channels = [...this.channels.keys()]
    if (channels.length === 0) return
    client.subscribe(...channels).catch((err: unknown) => {
      this.metrics.fleetRedisErrors.labels('subscriber').inc()
      this.logger.debug({ err: (err as Error).message }, 'fleet Redis subscribe failed; retried when the connection is back')
    })
  }

  /** Whether a reload with this config (and password) can keep these connections. */
  sameAs (config: FleetConfig, password: string | undefined): boolean {
    return JSON.stringify(config.redis) === JSON.stringify(this.config.redis) && password === this.password &&
      instanceIdOf(config) === this.instanceId
  }

  /** Quits every connection (dropping any that does not answer within half a second). */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    const all = [...this.connections.entries()]
    this.connections.clear()
    await Promise.all(all.map(async ([name, conn]) => {
      this.metrics.fleetRedisUp.remove(name)
      let timer: NodeJS.Timeout | undefined
      const dropped = new Promise<void>((resolve) => { timer = setTimeout(resolve, QUIT_WAIT_MS) })
      const quit = conn.up ? conn.client.quit().then(() => {}, () => {}) : Promise.resolve()
      await Promise.race([quit, dropped])
      clearTimeout(timer)
      conn.client.disconnect()
    }))
  }
}
