/**
 * Reload on file change, for config files nobody can send SIGHUP to (a
 * Kubernetes ConfigMap or Secret volume). Watches the *directory* of each
 * file, and of the file its symlinks resolve to, rather than the file:
 * the kubelet updates such a volume by writing a new timestamped directory
 * and renaming the `..data` symlink over the old one, so the file's own
 * inode never changes and a watch on it (what fs.watch(file) and most
 * watcher libraries hold) goes quiet after the first swap. A directory
 * watch sees the rename; an in-place edit shows up there as a change too.
 *
 * Events only wake it up. After `debounceMs` of quiet it reads every file
 * and compares a content hash with the last one it saw, so a burst of
 * events is one reload, an event that changed nothing (a touch, the
 * kubelet's own bookkeeping) is none, and the same bad edit is not retried
 * in a loop. What a change does is the caller's (`onChange`: the same
 * validate-first reload as SIGHUP).
 */
import { watch, type FSWatcher } from 'node:fs'
import { readFile, realpath } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { dirname } from 'node:path'
import type { Logger } from '../log.js'

export interface FileWatchOptions {
  /** The files to watch, read again after every check (a reload may change admin.tokenFile). */
  files: () => string[]
  /** Read again after every event, so a reload can change it. */
  debounceMs: () => number
  /** Called once per settled change; the watcher waits for it before it looks again. */
  onChange: (changed: string[]) => Promise<unknown>
  logger: Logger
}

/** How long to wait before watching again a directory whose watch failed (it was removed, say). */
const REARM_MS = 2_000

export class FileWatcher {
  private readonly options: FileWatchOptions
  private readonly watchers = new Map<string, FSWatcher>()
  private fingerprints = new Map<string, string>()
  private timer: NodeJS.Timeout | undefined
  private rearm: NodeJS.Timeout | undefined
  private checking: Promise<void> | undefined
  /** An event came while a check was running: look again when it ends. */
  private again = false
  private closed = false

  private constructor (options: FileWatchOptions) {
    this.options = options
  }

  /** Starts watching; the files' current contents are the baseline. */
  static async start (options: FileWatchOptions): Promise<FileWatcher> {
    const watcher = new FileWatcher(options)
    watcher.fingerprints = await fingerprintAll(options.files())
    await watcher.arm()
    return watcher
  }

  /** The directories watched now (for tests and logs). */
  get directories (): string[] { return [...this.watchers.keys()] }

  close (): void {
    this.closed = true
    clearTimeout(this.timer)
    clearTimeout(this.rearm)
    for (const w of this.watchers.values()) w.close()
    this.watchers.clear()
  }

  /** Watches the directory of each file and of each file's symlink target; drops the rest. */
  private async arm (): Promise<void> {
    const wanted = new Set<string>()
    for (const file of this.options.files()) {
      wanted.add(dirname(file))
      try { wanted.add(dirname(await realpath(file))) } catch { /* missing now: its directory is watched */ }
    }
    if (this.closed) return
    for (const [dir, w] of this.watchers) {
      if (!wanted.has(dir)) { w.close(); this.watchers.delete(dir) }
    }
    for (const dir of wanted) {
      if (this.watchers.has(dir)) continue
      try {
        const w = watch(dir, { persistent: false }, () => { this.schedule() })
        w.on('error', (err) => {
          this.options.logger.warn({ err, dir }, 'config watch: lost the watch on a directory; trying again')
          w.close()
          this.watchers.delete(dir)
          this.retryArm()
        })
        this.watchers.set(dir, w)
      } catch (err) {
        this.options.logger.warn({ err, dir }, 'config watch: cannot watch a directory; trying again')
        this.retryArm()
      }
    }
  }

  private retryArm (): void {
    if (this.closed || this.rearm !== undefined) return
    this.rearm = setTimeout(() => {
      this.rearm = undefined
      // A directory that came back may hold a changed file.
      void this.arm().then(() => { this.schedule() })
    }, REARM_MS)
    this.rearm.unref()
  }

  private schedule (): void {
    if (this.closed) return
    if (this.checking !== undefined) { this.again = true; return }
    clearTimeout(this.timer)
    this.timer = setTimeout(() => { this.checking = this.check() }, this.options.debounceMs())
    this.timer.unref()
  }

  private async check (): Promise<void> {
    try {
      const files = this.options.files()
      const now = await fingerprintAll(files)
      const changed = files.filter((f) => now.get(f) !== this.fingerprints.get(f))
      // Record what was seen before acting, so a bad edit is tried once, not on every event.
      this.fingerprints = now
      if (changed.length > 0 && !this.closed) {
        this.options.logger.info({ files: changed }, 'config watch: file changed, reloading')
        await this.options.onChange(changed).catch(() => { /* the reload logs its own failure; the old config stays live */ })
        // The reload may have named another token file: its content now is its baseline.
        // (Files already known keep what this check saw, so an edit during the reload is not lost.)
        for (const file of this.options.files()) {
          if (!this.fingerprints.has(file)) this.fingerprints.set(file, await fingerprint(file))
        }
      }
      await this.arm()
    } catch (err) {
      this.options.logger.error({ err }, 'config watch: check failed')
    } finally {
      this.checking = undefined
      if (this.again) { this.again = false; this.schedule() }
    }
  }
}

async function fingerprintAll (files: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const file of files) out.set(file, await fingerprint(file))
  return out
}

/** A hash of the content, or why it could not be read: a file that goes missing is a change too. */
async function fingerprint (file: string): Promise<string> {
  try {
    return createHash('sha256').update(await readFile(file)).digest('hex')
  } catch (err) {
    return `unreadable:${(err as NodeJS.ErrnoException).code ?? 'error'}`
  }
}
