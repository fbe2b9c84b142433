/**
 * The client-visible SLO of one route over a sliding window: p99 latency
 * and error rate *as the caller saw them* (after retries and fallbacks),
 * which is what the intent's thresholds are about.
 *
 * Memory is bounded: the window is a ring of `slices` HDR histograms
 * (2 significant digits, microseconds up to one hour) plus two counters
 * each; the oldest slice is reset as time moves on. Reads merge the ring.
 */
import * as hdr from 'hdr-histogram-js'

export interface SloSnapshot {
  /** Requests in the window. */
  requests: number
  /** Requests the client saw fail (5xx, aborted by the proxy). */
  errors: number
  errorRate: number
  /** Client-visible p99 in milliseconds (0 with no requests). */
  p99Ms: number
  p50Ms: number
}

interface Slice {
  startedAt: number
  histogram: hdr.Histogram
  requests: number
  errors: number
}

const HISTOGRAM = { lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 2 as const }

export class SloTracker {
  private readonly ring: Slice[]
  private readonly sliceMs: number
  private readonly merged = hdr.build(HISTOGRAM)
  private readonly now: () => number

  constructor (windowMs: number, options: { slices?: number, now?: () => number } = {}) {
    const slices = options.slices ?? 10
    this.sliceMs = Math.max(1, Math.floor(windowMs / slices))
    this.now = options.now ?? (() => performance.now())
    const t = this.now()
    this.ring = Array.from({ length: slices }, (_, i) => ({ startedAt: t - (slices - i) * this.sliceMs, histogram: hdr.build(HISTOGRAM), requests: 0, errors: 0 }))
    this.ring[this.ring.length - 1]!.startedAt = t
  }

  /** The slice for now, recycling the oldest slices that fell out of the window. */
  private current (): Slice {
    const t = this.now()
    let head = this.ring[this.ring.length - 1]!
    if (t - head.startedAt < this.sliceMs) return head
    const steps = Math.min(this.ring.length, Math.floor((t - head.startedAt) / this.sliceMs))
    for (let i = 0; i < steps; i++) {
      const oldest = this.ring.shift()!
      oldest.histogram.reset()
      oldest.requests = 0
      oldest.errors = 0
      oldest.startedAt = head.startedAt + this.sliceMs
      this.ring.push(oldest)
      head = oldest
    }
    if (t - head.startedAt >= this.sliceMs) head.startedAt = t
    return head
  }

  record (durationMs: number, failed: boolean): void {
    const slice = this.current()
    slice.histogram.recordValue(Math.max(1, Math.round(durationMs * 1000)))
    slice.requests++
    if (failed) slice.errors++
  }

  snapshot (): SloSnapshot {
    this.current()
    this.merged.reset()
    let requests = 0
    let errors = 0
    for (const slice of this.ring) {
      if (slice.requests === 0) continue
      this.merged.add(slice.histogram)
      requests += slice.requests
      errors += slice.errors
    }
    return {
      requests,
      errors,
      errorRate: requests === 0 ? 0 : errors / requests,
      p99Ms: requests === 0 ? 0 : this.merged.getValueAtPercentile(99) / 1000,
      p50Ms: requests === 0 ? 0 : this.merged.getValueAtPercentile(50) / 1000
    }
  }

  /** Empties the window (the next evaluation window starts from nothing). */
  reset (): void {
    for (const slice of this.ring) {
      slice.histogram.reset()
      slice.requests = 0
      slice.errors = 0
    }
  }

  /** Frees the histograms (WebAssembly-backed ones hold memory outside the JS heap). */
  destroy (): void {
    for (const slice of this.ring) slice.histogram.destroy()
    this.merged.destroy()
  }
}
