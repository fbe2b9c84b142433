/**
 * The embedded deferral store: an append-only journal on local disk
 * (docs/DECISIONS.md, "Deferral: a journal, not SQLite"). Every change is
 * one line, `<checksum> <json>\n`, written and fdatasync'ed before the
 * change is acknowledged, so a 202 is only sent for a request that is on
 * disk. Concurrent changes share one write and one sync (group commit).
 *
 * On open the journal is replayed into memory. A line whose checksum does
 * not match (a write torn by a crash or power loss, only ever the last
 * line of an append-only file) is skipped, and the journal is rewritten
 * without it. Compaction rewrites the live entries into a new file
 * (write, fsync, rename, fsync the directory) once it has grown past
 * compactBytes and twice its size after the last compaction; settled
 * entries older than retainMs are dropped then.
 *
 * One process owns a directory (a lock file with its pid): two writers
 * appending to one journal would interleave their lines.
 */
import { createHash, randomUUID } from 'node:crypto'
import { mkdir, open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { withAttempt, type AttemptOutcome, type DeferralEntry, type DeferralState, type DeferralStats, type DeferralStore, type ListFilter, type NewDeferral } from './store.js'

export interface JournalOptions {
  dir: string
  /** Delivered, dead and cancelled entries are kept this long after settling (GET /deferrals, answers by key). */
  retainMs: number
  /** Compact once the journal is larger than this and twice what the last compaction left. */
  compactBytes: number
  /** Called for lines skipped on replay (a torn last write, or damage). */
  onSkipped?: (count: number, lastLineTorn: boolean) => void
}

type Patch = Partial<Omit<DeferralEntry, 'id' | 'body' | 'headers'>>

type Op =
  | { op: 'add', e: DeferralEntry }
  | { op: 'set', id: string, p: Patch }
  | { op: 'del', ids: string[] }

const JOURNAL = 'deferrals.journal'
const LOCK = 'deferrals.lock'

function checksum (json: string): string {
  return createHash('sha256').update(json).digest('hex').slice(0, 16)
}

export function encodeLine (op: Op): string {
  const json = JSON.stringify(op)
  return `${checksum(json)} ${json}\n`
}

/** The op on one journal line, or undefined when the line is torn or damaged. */
export function decodeLine (line: string): Op | undefined {
  const space = line.indexOf(' ')
  if (space !== 16) return undefined
  const json = line.slice(17)
  if (checksum(json) !== line.slice(0, 16)) return undefined
  try {
    return JSON.parse(json) as Op
  } catch {
    return undefined
  }
}

function settled (state: DeferralState): boolean {
  return state !== 'pending'
}

/** Takes the directory's lock, or says which live process holds it. A lock left by a dead process (a crash) is taken over. */
async function lockDir (dir: string): Promise<void> {
  const path = join(dir, LOCK)
  for (let i = 0; i < 2; i++) {
    try {
      const fh = await open(path, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      return
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim())
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new Error(`deferral.dir ${dir} is in use by another process (pid ${pid}); each faultline needs its own directory, or the Redis store`)
    }
    await unlink(path).catch(() => {})
  }
  throw new Error(`cannot lock deferral.dir ${dir}`)
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export class JournalStore implements DeferralStore {
  readonly #options: JournalOptions
  readonly #path: string
  /** Every entry, in acceptance order (a Map keeps insertion order; replay and compaction keep it too). */
  readonly #entries = new Map<string, DeferralEntry>()
  /** route \0 key -> id of the entry holding the key. */
  readonly #keys = new Map<string, string>()
  #fh: FileHandle | undefined
  #seq = 0
  #bytes = 0
  #compactAt = 0
  /** Lines waiting for the next write, and who waits for their sync. */
  #queue: string[] = []
  #waiters: Array<{ resolve: () => void, reject: (err: Error) => void }> = []
  #writing: Promise<void> | undefined
  #closed = false

  private constructor (options: JournalOptions) {
    this.#options = options
    this.#path = join(options.dir, JOURNAL)
  }

  static async open (options: JournalOptions): Promise<JournalStore> {
    await mkdir(options.dir, { recursive: true, mode: 0o700 })
    await lockDir(options.dir)
    const store = new JournalStore(options)
    try {
      await store.#replay()
    } catch (err) {
      await unlink(join(options.dir, LOCK)).catch(() => {})
      throw err
    }
    return store
  }

  async #replay (): Promise<void> {
    let text = ''
    try {
      text = await readFile(this.#path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
    const lines = text.split('\n')
    // A file that does not end in a newline ends in a torn write.
    const tail = lines.pop() ?? ''
    let skipped = tail === '' ? 0 : 1
    for (const line of lines) {
      const op = decodeLine(line)
      if (op === undefined) {
        skipped++
        continue
      }
      this.#apply(op)
    }
    if (skipped > 0) this.#options.onSkipped?.(skipped, tail !== '')
    // Rewritten at once when anything was skipped, so new lines never follow a torn one.
    await this.#rewrite()
  }

  #apply (op: Op): void {
    if (op.op === 'add') {
      this.#entries.set(op.e.id, op.e)
      this.#keys.set(`${op.e.route}\0${op.e.key}`, op.e.id)
      this.#seq = Math.max(this.#seq, Number(op.e.seq))
    } else if (op.op === 'set') {
      const entry = this.#entries.get(op.id)
      if (entry !== undefined) Object.assign(entry, op.p)
    } else {
      for (const id of op.ids) this.#forget(id)
    }
  }

  #forget (id: string): void {
    const entry = this.#entries.get(id)
    if (entry === undefined) return
    this.#entries.delete(id)
    const k = `${entry.route}\0${entry.key}`
    if (this.#keys.get(k) === id) this.#keys.delete(k)
  }

  /** Applies an op in memory and resolves once its line is on disk. */
  async #commit (op: Op): Promise<void> {
    if (this.#closed) throw new Error('the deferral store is closed')
    this.#apply(op)
    await this.#append(encodeLine(op))
  }

  #append (line: string): Promise<void> {
    const done = new Promise<void>((resolve, reject) => { this.#waiters.push({ resolve, reject }) })
    this.#queue.push(line)
    this.#writing ??= this.#drain()
    return done
  }

  /** Group commit: everything queued goes out in one write and one fdatasync; repeats while more arrived. */
  async #drain (): Promise<void> {
    while (this.#queue.length > 0) {
      const lines = this.#queue
      const waiters = this.#waiters
      this.#queue = []
      this.#waiters = []
      try {
        const data = Buffer.from(lines.join(''))
        await this.#fh!.write(data)
        await this.#fh!.datasync()
        this.#bytes += data.length
        for (const w of waiters) w.resolve()
      } catch (err) {
        for (const w of waiters) w.reject(err as Error)
      }
      if (this.#queue.length === 0 && this.#shouldCompact()) {
        await this.#rewrite().catch(() => {})
      }
    }
    this.#writing = undefined
  }

  /** Compact when the journal has grown past compactBytes and past twice what the last compaction left. */
  #shouldCompact (): boolean {
    return this.#bytes > this.#compactAt
  }

  /**
   * Compaction: the live entries (settled ones past retainMs dropped) into
   * a new file, synced, renamed over the journal, the directory synced.
   * A crash at any point leaves either the old journal or the new one.
   */
  async #rewrite (): Promise<void> {
    const cutoff = Date.now() - this.#options.retainMs
    for (const [id, e] of this.#entries) {
      if (settled(e.state) && (e.settledAt ?? 0) < cutoff) this.#forget(id)
    }
    const tmp = `${this.#path}.tmp`
    const out = await open(tmp, 'w', 0o600)
    let bytes = 0
    try {
      const chunk: string[] = []
      for (const e of this.#entries.values()) chunk.push(encodeLine({ op: 'add', e }))
      const data = Buffer.from(chunk.join(''))
      await out.write(data)
      await out.sync()
      bytes = data.length
    } finally {
      await out.close()
    }
    await rename(tmp, this.#path)
    await syncDir(this.#options.dir)
    const previous = this.#fh
    this.#fh = await open(this.#path, 'a', 0o600)
    this.#bytes = bytes
    this.#compactAt = Math.max(this.#options.compactBytes, 2 * bytes)
    await previous?.close()
  }

  #newEntry (input: NewDeferral): DeferralEntry {
    this.#seq++
    return { ...input, id: randomUUID(), seq: String(this.#seq), state: 'pending', attempts: 0, nextAttemptAt: input.createdAt }
  }

  async accept (input: NewDeferral): Promise<{ entry: DeferralEntry, created: boolean }> {
    const held = this.#keys.get(`${input.route}\0${input.key}`)
    const existing = held !== undefined ? this.#entries.get(held) : undefined
    // A dead or cancelled entry never reached the upstream: the key may be deferred afresh.
    if (existing !== undefined && (existing.state === 'pending' || existing.state === 'delivered')) return { entry: existing, created: false }
    const entry = this.#newEntry(input)
    try {
      await this.#commit({ op: 'add', e: entry })
    } catch (err) {
      // Not on disk: not accepted (the caller gets the original failure, not a 202).
      this.#forget(entry.id)
      if (existing !== undefined) this.#keys.set(`${input.route}\0${input.key}`, existing.id)
      throw err
    }
    return { entry, created: true }
  }

  async get (id: string): Promise<DeferralEntry | undefined> {
    return this.#entries.get(id)
  }

  async byKey (route: string, key: string): Promise<DeferralEntry | undefined> {
    const id = this.#keys.get(`${route}\0${key}`)
    return id === undefined ? undefined : this.#entries.get(id)
  }

  async list (filter: ListFilter = {}): Promise<DeferralEntry[]> {
    const out: DeferralEntry[] = []
    const limit = filter.limit ?? 100
    const all = [...this.#entries.values()]
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) {
      const e = all[i]!
      if (filter.route !== undefined && e.route !== filter.route) continue
      if (filter.state !== undefined && e.state !== filter.state) continue
      out.push(e)
    }
    return out
  }

  async next (route: string, now: number): Promise<{ entry: DeferralEntry | undefined, expired: DeferralEntry[] }> {
    const expired: DeferralEntry[] = []
    let due: DeferralEntry | undefined
    for (const e of this.#entries.values()) {
      if (e.route !== route || e.state !== 'pending') continue
      if (e.expiresAt <= now) {
        expired.push(e)
        continue
      }
      // The oldest pending entry is the head: a later one never overtakes it (order per route, so per key).
      if (e.nextAttemptAt <= now) due = e
      break
    }
    for (const e of expired) {
      await this.#commit({ op: 'set', id: e.id, p: { state: 'dead', lastError: `expired: not delivered within maxAgeMs (attempts: ${e.attempts})`, settledAt: now } })
    }
    return { entry: due, expired }
  }

  async record (id: string, attempts: number, outcome: AttemptOutcome): Promise<boolean> {
    const entry = this.#entries.get(id)
    if (entry === undefined || entry.state !== 'pending') return false
    const now = Date.now()
    const history = withAttempt(entry.history, outcome, now)
    const p: Patch = outcome.kind === 'retry'
      ? { attempts, lastError: outcome.error, nextAttemptAt: outcome.nextAttemptAt, history }
      : outcome.kind === 'delivered'
        ? { attempts, state: 'delivered', result: outcome.result, settledAt: now, history }
        : { attempts, state: 'dead', lastError: outcome.error, settledAt: now, history }
    await this.#commit({ op: 'set', id, p })
    return true
  }

  async retryNow (id: string, now: number): Promise<boolean> {
    const entry = this.#entries.get(id)
    if (entry === undefined || (entry.state !== 'pending' && entry.state !== 'dead')) return false
    // Another entry took the key since this one died: bringing it back would give the key two entries.
    const holder = this.#keys.get(`${entry.route}\0${entry.key}`)
    if (holder !== id) return false
    await this.#commit({ op: 'set', id, p: { state: 'pending', nextAttemptAt: now, expiresAt: Math.max(entry.expiresAt, now + 60_000) } })
    return true
  }

  async cancel (id: string, now: number): Promise<boolean> {
    const entry = this.#entries.get(id)
    if (entry === undefined || (entry.state !== 'pending' && entry.state !== 'dead')) return false
    await this.#commit({ op: 'set', id, p: { state: 'cancelled', settledAt: now } })
    return true
  }

  async purgeDead (route?: string): Promise<number> {
    const ids = [...this.#entries.values()].filter((e) => e.state === 'dead' && (route === undefined || e.route === route)).map((e) => e.id)
    if (ids.length > 0) await this.#commit({ op: 'del', ids })
    return ids.length
  }

  async stats (route: string): Promise<DeferralStats> {
    const stats: DeferralStats = { pending: 0, dead: 0, delivered: 0, oldestPendingAt: undefined }
    for (const e of this.#entries.values()) {
      if (e.route !== route) continue
      if (e.state === 'pending') {
        stats.pending++
        stats.oldestPendingAt = Math.min(stats.oldestPendingAt ?? Infinity, e.createdAt)
      } else if (e.state === 'dead') {
        stats.dead++
      } else if (e.state === 'delivered') {
        stats.delivered++
      }
    }
    return stats
  }

  async routes (): Promise<string[]> {
    return [...new Set([...this.#entries.values()].map((e) => e.route))]
  }

  /** The journal's size in bytes now (tests check compaction). */
  get journalBytes (): number { return this.#bytes }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#writing
    await this.#fh?.close()
    this.#fh = undefined
    await unlink(join(this.#options.dir, LOCK)).catch(() => {})
  }
}

/** fsync of a directory makes a rename or a new file's name durable (POSIX). */
async function syncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } catch {
    // Some filesystems refuse fsync on a directory (EINVAL/EISDIR); the rename is then as durable as they make it.
  } finally {
    await fh.close()
  }
}
