/**
 * The deferral store for a fleet: Redis Streams, on the fleet's Redis
 * (config `fleet.redis`, connections from src/fleet/redis.ts).
 *
 *   <prefix>deferral:stream:<route>          the queue: one stream entry per accepted write (field `id`)
 *   <prefix>deferral:entry:<id>              a hash: `data` (the request, JSON) and the mutable state fields
 *   <prefix>deferral:key:<route>:<key>       the Idempotency-Key index -> id (one entry per route and key)
 *   <prefix>deferral:state:<route>:<state>   a sorted set per state (pending by createdAt, others by settledAt)
 *   <prefix>deferral:routes                  the routes with entries
 *
 * Every replica reads the stream through one consumer group, as its own
 * consumer (fleet.instanceId): a stream entry goes to one replica, stays
 * in that replica's pending-entry list (PEL) while it backs off, and is
 * acknowledged when it settles. A replica that dies leaves its entries
 * pending: another one takes them over with XAUTOCLAIM once they have been
 * idle for claimIdleMs. A replica touches an entry (XCLAIM to itself) just
 * before delivering it, so a live delivery is never taken over.
 *
 * Every change that must be atomic (accept with its key check, an attempt
 * recorded only while the entry is still pending, a move between states)
 * is one Lua script. Commands fail while Redis is down: accept() then
 * throws and the caller gets the original failure, not a 202.
 */
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { FleetRedis } from '../fleet/redis.js'
import type { AttemptOutcome, DeferralEntry, DeferralState, DeferralStats, DeferralStore, ListFilter, NewDeferral } from './store.js'
import { DEFERRAL_STATES, withAttempt } from './store.js'

export interface RedisStoreOptions {
  /** The fleet's Redis as it is now (a reload may replace it). */
  fleet: () => FleetRedis | undefined
  /** This replica's consumer name in the group. */
  consumer: string
  retainMs: number
  /** Entries idle this long in a consumer's PEL are taken over (that consumer is presumed dead). */
  claimIdleMs: number
}

const GROUP = 'deliverers'
const CONNECTION = 'deferrals'

/** The fields of an entry that change; `data` holds the rest (JSON). */
type Mutable = Pick<DeferralEntry, 'state' | 'attempts' | 'nextAttemptAt' | 'lastError' | 'result' | 'settledAt' | 'seq' | 'expiresAt' | 'history'>

/**
 * KEYS: keyIndex, routes. ARGV: prefix, route, id, data, createdAt, expiresAt.
 * Returns { id, created(1|0) }.
 */
const ACCEPT = `
local prefix, route, id = ARGV[1], ARGV[2], ARGV[3]
local held = redis.call('GET', KEYS[1])
if held then
  local state = redis.call('HGET', prefix .. 'entry:' .. held, 'state')
  if state == 'pending' or state == 'delivered' then return { held, 0 } end
end
local entry = prefix .. 'entry:' .. id
local seq = redis.call('XADD', prefix .. 'stream:' .. route, '*', 'id', id)
redis.call('HSET', entry, 'data', ARGV[4], 'state', 'pending', 'attempts', '0', 'nextAttemptAt', ARGV[5], 'expiresAt', ARGV[6], 'seq', seq)
redis.call('SET', KEYS[1], id)
redis.call('ZADD', prefix .. 'state:' .. route .. ':pending', ARGV[5], id)
redis.call('SADD', KEYS[2], route)
return { id, 1 }
`

/**
 * Moves an entry from one state to another (and acknowledges its stream
 * entry when it settles), only while it is in one of the `from` states.
 * KEYS: entry. ARGV: prefix, route, from (comma list), to, score, retainMs, then field/value pairs to set.
 */
const MOVE = `
local prefix, route = ARGV[1], ARGV[2]
local state = redis.call('HGET', KEYS[1], 'state')
if not state or not string.find(',' .. ARGV[3] .. ',', ',' .. state .. ',', 1, true) then return 0 end
local id = string.sub(KEYS[1], string.len(prefix .. 'entry:') + 1)
local to = ARGV[4]
for i = 7, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if to ~= state then
  redis.call('ZREM', prefix .. 'state:' .. route .. ':' .. state, id)
  redis.call('ZADD', prefix .. 'state:' .. route .. ':' .. to, ARGV[5], id)
  redis.call('HSET', KEYS[1], 'state', to)
end
local stream = prefix .. 'stream:' .. route
if to ~= 'pending' then
  redis.call('XACK', stream, '${GROUP}', redis.call('HGET', KEYS[1], 'seq'))
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
elseif state ~= 'pending' then
  -- Back from dead: queued again (at the end of the stream).
  local seq = redis.call('XADD', stream, '*', 'id', id)
  redis.call('HSET', KEYS[1], 'seq', seq)
  redis.call('PERSIST', KEYS[1])
end
return 1
`

/** Touches a PEL entry (resets its idle time) only while this consumer still owns it. KEYS: stream. ARGV: consumer, seq. */
const TOUCH = `
local p = redis.call('XPENDING', KEYS[1], '${GROUP}', ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[1] then return 0 end
redis.call('XCLAIM', KEYS[1], '${GROUP}', ARGV[1], 0, ARGV[2], 'JUSTID')
return 1
`

function parseEntry (id: string, h: Record<string, string>): DeferralEntry | undefined {
  if (h.data === undefined) return undefined
  const data = JSON.parse(h.data) as NewDeferral
  const m: Mutable = {
    state: h.state as DeferralState,
    attempts: Number(h.attempts),
    nextAttemptAt: Number(h.nextAttemptAt),
    expiresAt: Number(h.expiresAt),
    seq: h.seq ?? '',
    ...(h.lastError !== undefined ? { lastError: h.lastError } : {}),
    ...(h.result !== undefined ? { result: JSON.parse(h.result) as DeferralEntry['result'] } : {}),
    ...(h.settledAt !== undefined ? { settledAt: Number(h.settledAt) } : {}),
    ...(h.history !== undefined ? { history: JSON.parse(h.history) as DeferralEntry['history'] } : {})
  }
  return { ...data, id, ...m }
}

/** Compares two stream ids ("<ms>-<n>") numerically. */
function streamOrder (a: string, b: string): number {
  const [am = 0, an = 0] = a.split('-').map(Number)
  const [bm = 0, bn = 0] = b.split('-').map(Number)
  return am - bm || an - bn
}

type StreamReply = Array<[string, Array<[string, string[]]>]> | null

export class RedisStreamStore implements DeferralStore {
  readonly #options: RedisStoreOptions
  /** Streams whose group exists (created once per stream and store). */
  readonly #groups = new Set<string>()

  constructor (options: RedisStoreOptions) {
    this.#options = options
  }

  #fleet (): FleetRedis {
    const fleet = this.#options.fleet()
    if (fleet === undefined) throw new Error('deferral.store is redis but fleet.redis is not configured')
    return fleet
  }

  /** Runs on the store's connection; throws while Redis is down (no offline queue). */
  #redis (): Redis {
    return this.#fleet().connection(CONNECTION)
  }

  #k (...parts: string[]): string {
    return this.#fleet().key('deferral', ...parts)
  }

  get #prefix (): string {
    return this.#fleet().key('deferral', '')
  }

  /** Waits (bounded) for the connection, so a store opened at start is usable at once. */
  async ready (timeoutMs: number): Promise<boolean> {
    const redis = this.#redis()
    if (redis.status === 'ready') return true
    return await new Promise((resolve) => {
      const timer = setTimeout(() => { redis.off('ready', onReady); resolve(false) }, timeoutMs)
      const onReady = (): void => { clearTimeout(timer); resolve(true) }
      redis.once('ready', onReady)
    })
  }

  async accept (input: NewDeferral): Promise<{ entry: DeferralEntry, created: boolean }> {
    const id = randomUUID()
    const reply = await this.#redis().eval(ACCEPT, 2, this.#k('key', input.route, input.key), this.#k('routes'),
      this.#prefix, input.route, id, JSON.stringify(input), String(input.createdAt), String(input.expiresAt)) as [string, number]
    const entry = await this.get(reply[0])
    if (entry === undefined) throw new Error(`deferral ${reply[0]} vanished right after it was stored`)
    return { entry, created: reply[1] === 1 }
  }

  async get (id: string): Promise<DeferralEntry | undefined> {
    const h = await this.#redis().hgetall(this.#k('entry', id))
    return parseEntry(id, h)
  }

  async byKey (route: string, key: string): Promise<DeferralEntry | undefined> {
    const id = await this.#redis().get(this.#k('key', route, key))
    return id === null ? undefined : await this.get(id)
  }

  async list (filter: ListFilter = {}): Promise<DeferralEntry[]> {
    const redis = this.#redis()
    const limit = filter.limit ?? 100
    const routes = filter.route !== undefined ? [filter.route] : await this.routes()
    const states = filter.state !== undefined ? [filter.state] : DEFERRAL_STATES
    const ids = new Set<string>()
    for (const route of routes) {
      for (const state of states) {
        const set = this.#k('state', route, state)
        // The newest `limit` by score, and every member tied with the last of them (same millisecond).
        const last = await redis.zrange(set, limit - 1, limit - 1, 'REV', 'WITHSCORES')
        const members = last[1] === undefined ? await redis.zrange(set, 0, -1) : await redis.zrangebyscore(set, last[1], '+inf')
        for (const id of members) ids.add(id)
      }
    }
    const entries: DeferralEntry[] = []
    for (const id of ids) {
      const e = await this.get(id)
      if (e !== undefined) entries.push(e)
    }
    // Newest first by acceptance: the stream id, "<ms>-<n>", compared as numbers.
    return entries.sort((a, b) => streamOrder(b.seq, a.seq)).slice(0, limit)
  }

  async #group (stream: string): Promise<void> {
    if (this.#groups.has(stream)) return
    try {
      // From the start of the stream: entries added before the group existed are delivered too.
      await this.#redis().xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM')
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err
    }
    this.#groups.add(stream)
  }

  /** The next stream entry for this consumer: its own pending ones first (oldest first), then a dead consumer's, then a new one. */
  async #claimNext (stream: string): Promise<{ seq: string, id: string } | undefined> {
    const redis = this.#redis()
    const consumer = this.#options.consumer
    const own = await redis.xreadgroup('GROUP', GROUP, consumer, 'COUNT', 1, 'STREAMS', stream, '0') as StreamReply
    const mine = own?.[0]?.[1]?.[0]
    if (mine !== undefined) return { seq: mine[0], id: mine[1][1]! }
    const claimed = await redis.xautoclaim(stream, GROUP, consumer, this.#options.claimIdleMs, '0-0', 'COUNT', 1) as [string, Array<[string, string[]] | null>]
    const taken = claimed[1].find((e) => e !== null)
    if (taken !== undefined && taken !== null) return { seq: taken[0], id: taken[1][1]! }
    const fresh = await redis.xreadgroup('GROUP', GROUP, consumer, 'COUNT', 1, 'STREAMS', stream, '>') as StreamReply
    const added = fresh?.[0]?.[1]?.[0]
    return added === undefined ? undefined : { seq: added[0], id: added[1][1]! }
  }

  async next (route: string, now: number): Promise<{ entry: DeferralEntry | undefined, expired: DeferralEntry[] }> {
    const stream = this.#k('stream', route)
    await this.#group(stream)
    const expired: DeferralEntry[] = []
    // Bounded: settled or expired entries met on the way are acknowledged and skipped.
    for (let i = 0; i < 50; i++) {
      const next = await this.#claimNext(stream)
      if (next === undefined) return { entry: undefined, expired }
      const entry = await this.get(next.id)
      if (entry === undefined || entry.state !== 'pending' || entry.seq !== next.seq) {
        // Settled, purged, or queued again under a newer stream id: this stream entry is done.
        await this.#redis().xack(stream, GROUP, next.seq)
        continue
      }
      if (entry.expiresAt <= now) {
        const error = `expired: not delivered within maxAgeMs (attempts: ${entry.attempts})`
        if (await this.#move(entry, ['pending'], 'dead', now, { lastError: error, settledAt: String(now) })) {
          expired.push({ ...entry, state: 'dead', lastError: error, settledAt: now })
        }
        continue
      }
      // The head of this consumer's queue blocks while it backs off: later entries do not overtake it.
      if (entry.nextAttemptAt > now) return { entry: undefined, expired }
      // Touched: its idle time starts again, so no other replica takes it over mid-delivery.
      const owned = await this.#redis().eval(TOUCH, 1, stream, this.#options.consumer, next.seq) as number
      if (owned !== 1) continue
      return { entry, expired }
    }
    return { entry: undefined, expired }
  }

  async #move (entry: DeferralEntry, from: DeferralState[], to: DeferralState, score: number, fields: Record<string, string>): Promise<boolean> {
    const args: string[] = [this.#prefix, entry.route, from.join(','), to, String(score), String(Math.max(1, this.#options.retainMs))]
    for (const [k, v] of Object.entries(fields)) args.push(k, v)
    const redis = this.#redis()
    if (await redis.eval(MOVE, 1, this.#k('entry', entry.id), ...args) !== 1) return false
    // The key index lives as long as its settled entry (answers to the same key), and forever while pending.
    const index = this.#k('key', entry.route, entry.key)
    if (to !== entry.state && await redis.get(index) === entry.id) {
      if (to === 'pending') await redis.persist(index)
      else await redis.pexpire(index, Math.max(1, this.#options.retainMs))
    }
    return true
  }

  async record (id: string, attempts: number, outcome: AttemptOutcome): Promise<boolean> {
    const entry = await this.get(id)
    if (entry === undefined) return false
    const now = Date.now()
    // Only the replica holding the entry records its attempts, so the history read above is current.
    const history = JSON.stringify(withAttempt(entry.history, outcome, now))
    if (outcome.kind === 'retry') {
      return await this.#move(entry, ['pending'], 'pending', entry.createdAt, { attempts: String(attempts), lastError: outcome.error, nextAttemptAt: String(outcome.nextAttemptAt), history })
    }
    if (outcome.kind === 'delivered') {
      return await this.#move(entry, ['pending'], 'delivered', now, { attempts: String(attempts), result: JSON.stringify(outcome.result), settledAt: String(now), history })
    }
    return await this.#move(entry, ['pending'], 'dead', now, { attempts: String(attempts), lastError: outcome.error, settledAt: String(now), history })
  }

  async retryNow (id: string, now: number): Promise<boolean> {
    const entry = await this.get(id)
    if (entry === undefined) return false
    // Another entry took the key since this one died: bringing it back would give the key two entries.
    if (entry.state === 'dead' && await this.#redis().get(this.#k('key', entry.route, entry.key)) !== id) return false
    return await this.#move(entry, ['pending', 'dead'], 'pending', entry.createdAt, { nextAttemptAt: String(now), expiresAt: String(Math.max(entry.expiresAt, now + 60_000)) })
  }

  async cancel (id: string, now: number): Promise<boolean> {
    const entry = await this.get(id)
    if (entry === undefined) return false
    return await this.#move(entry, ['pending', 'dead'], 'cancelled', now, { settledAt: String(now) })
  }

  async purgeDead (route?: string): Promise<number> {
    const redis = this.#redis()
    let purged = 0
    for (const r of route !== undefined ? [route] : await this.routes()) {
      const set = this.#k('state', r, 'dead')
      for (const id of await redis.zrange(set, 0, -1)) {
        const entry = await this.get(id)
        if (entry !== undefined && entry.state === 'dead') {
          const indexKey = this.#k('key', r, entry.key)
          if (await redis.get(indexKey) === id) await redis.del(indexKey)
          await redis.del(this.#k('entry', id))
          purged++
        }
        await redis.zrem(set, id)
      }
    }
    return purged
  }

  async stats (route: string, now: number): Promise<DeferralStats> {
    const redis = this.#redis()
    const cutoff = now - this.#options.retainMs
    // Settled entries past retainMs have expired hashes: their set members go too.
    for (const state of ['delivered', 'dead', 'cancelled'] as const) await redis.zremrangebyscore(this.#k('state', route, state), '-inf', `(${cutoff}`)
    const [pending, dead, delivered, oldest] = await Promise.all([
      redis.zcard(this.#k('state', route, 'pending')),
      redis.zcard(this.#k('state', route, 'dead')),
      redis.zcard(this.#k('state', route, 'delivered')),
      redis.zrange(this.#k('state', route, 'pending'), 0, 0, 'WITHSCORES')
    ])
    return { pending, dead, delivered, oldestPendingAt: oldest[1] !== undefined ? Number(oldest[1]) : undefined }
  }

  async routes (): Promise<string[]> {
    return (await this.#redis().smembers(this.#k('routes'))).sort()
  }

  /** The connection belongs to the fleet (src/fleet/redis.ts), which closes it. */
  async close (): Promise<void> {}
}
