/**
 * Two counters over a sliding time window, kept in a ring of buckets so
 * adding and summing cost O(buckets) with no allocation and no timer: old
 * buckets are cleared lazily when time has moved past them. Used by the
 * retry budget (requests, retries) and the failure-rate breaker (calls,
 * failures).
 */
export class SlidingWindow {
  private readonly bucketMs: number
  private readonly a: Float64Array
  private readonly b: Float64Array
  /** Index (in bucket units since time 0) of the newest bucket written. */
  private head = -1

  constructor (windowMs: number, buckets = 10) {
    this.bucketMs = Math.max(1, windowMs / buckets)
    this.a = new Float64Array(buckets)
    this.b = new Float64Array(buckets)
  }

  private advance (now: number): number {
    const n = this.a.length
    const index = Math.floor(now / this.bucketMs)
    if (this.head === -1 || index - this.head >= n) {
      this.a.fill(0)
      this.b.fill(0)
    } else {
      for (let i = this.head + 1; i <= index; i++) {
        this.a[i % n] = 0
        this.b[i % n] = 0
      }
    }
    if (index > this.head) this.head = index
    return this.head % n
  }

  add (now: number, a: number, b: number): void {
    const slot = this.advance(now)
    this.a[slot]! += a
    this.b[slot]! += b
  }

  /** [sum of a, sum of b] over the window ending now. */
  sums (now: number): [number, number] {
    this.advance(now)
    let sa = 0
    let sb = 0
    for (let i = 0; i < this.a.length; i++) { sa += this.a[i]!; sb += this.b[i]! }
    return [sa, sb]
  }

  clear (): void {
    this.a.fill(0)
    this.b.fill(0)
    this.head = -1
  }
}
