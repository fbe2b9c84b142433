/**
 * Policy state that outlives a config generation: breakers and auth guards
 * per upstream, caches, bulkheads and retry budgets per route. Owned by
 * Faultline (like UpstreamPools). Each entry is keyed by what it protects
 * plus its own options, so a reload that leaves them unchanged keeps the
 * state (an open breaker stays open, the cache stays warm, in-flight
 * requests of the old generation still count against the bulkhead), and a
 * changed option starts afresh.
 *
 * Entries are reference counted: a route acquires on build and releases on
 * dispose. A reload builds the new routes before disposing the old ones,
 * so shared entries never drop to zero in between.
 */

interface Entry {
  value: unknown
  refs: number
  /** Ends what the value owns (a timer, a subscription) when the last lease is released. */
  dispose: ((value: unknown) => void) | undefined
}

export interface Lease<T> {
  readonly value: T
  /** Idempotent. */
  release: () => void
}

export class PolicyRegistry {
  private readonly entries = new Map<string, Entry>()

  acquire<T> (key: string, create: () => T, dispose?: (value: T) => void): Lease<T> {
    let entry = this.entries.get(key)
    if (entry === undefined) {
      entry = { value: create(), refs: 0, dispose: dispose as ((value: unknown) => void) | undefined }
      this.entries.set(key, entry)
    }
    entry.refs++
    let released = false
    const held = entry
    return {
      value: held.value as T,
      release: () => {
        if (released) return
        released = true
        held.refs--
        if (held.refs === 0 && this.entries.get(key) === held) {
          this.entries.delete(key)
          held.dispose?.(held.value)
        }
      }
    }
  }

  has (key: string): boolean {
    return this.entries.has(key)
  }

  get size (): number {
    return this.entries.size
  }
}

/** A stable key part from options: same options, same text. */
export function optionsKey (value: unknown): string {
  return JSON.stringify(value)
}
