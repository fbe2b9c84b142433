import t from 'tap'
import { SloTracker } from '../../src/intent/slo-tracker.js'

t.test('p99 and error rate over a sliding window, with old slices forgotten', async (t) => {
  let now = 0
  const tracker = new SloTracker(10_000, { slices: 10, now: () => now })
  t.teardown(() => { tracker.destroy() })
  t.same(tracker.snapshot(), { requests: 0, errors: 0, errorRate: 0, p99Ms: 0, p50Ms: 0 })
  for (let i = 0; i < 99; i++) tracker.record(10, false)
  tracker.record(500, true)
  let s = tracker.snapshot()
  t.equal(s.requests, 100)
  t.equal(s.errorRate, 0.01)
  t.ok(Math.abs(s.p50Ms - 10) < 0.2, `p50 ~10 ms (${s.p50Ms})`)
  t.ok(Math.abs(s.p99Ms - 10) < 0.2, `p99 of 100 values with one outlier is the 99th: ~10 ms (${s.p99Ms})`)
  for (let i = 0; i < 5; i++) tracker.record(800, true)
  s = tracker.snapshot()
  t.ok(s.p99Ms > 700 && s.p99Ms < 900, `p99 follows the tail (${s.p99Ms})`)
  now = 6_000
  for (let i = 0; i < 10; i++) tracker.record(20, false)
  t.equal(tracker.snapshot().requests, 115, 'all still inside the 10 s window')
  now = 11_500
  s = tracker.snapshot()
  t.equal(s.requests, 10, 'the first slices fell out of the window')
  t.equal(s.errors, 0)
  t.ok(Math.abs(s.p99Ms - 20) < 0.3)
  now = 100_000
  t.equal(tracker.snapshot().requests, 0, 'a long idle gap empties the window')
})
