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

t.test('ten slices by default; a request at a slice boundary starts the new slice', async (t) => {
  let now = 0
  const tracker = new SloTracker(10_000, { now: () => now })
  t.teardown(() => { tracker.destroy() })
  tracker.record(10, false)
  now = 1_000 // exactly one slice later: a new slice
  tracker.record(10, true)
  now = 10_000
  t.same(tracker.snapshot(), { ...tracker.snapshot(), requests: 1, errors: 1 }, 'the first slice left the window; the one from 1 s is still in it')
  now = 10_999
  t.equal(tracker.snapshot().requests, 1)
  now = 11_000
  t.equal(tracker.snapshot().requests, 0)
})

t.test('reset empties the window (an evaluation window starts from nothing)', async (t) => {
  const tracker = new SloTracker(Infinity, { slices: 1, now: () => 0 })
  t.teardown(() => { tracker.destroy() })
  tracker.record(300, true)
  t.equal(tracker.snapshot().errors, 1)
  tracker.reset()
  t.same(tracker.snapshot(), { requests: 0, errors: 0, errorRate: 0, p99Ms: 0, p50Ms: 0 })
  tracker.record(5, false)
  t.ok(Math.abs(tracker.snapshot().p99Ms - 5) < 0.1, 'the old 300 ms is gone from the histogram too')
})

t.test('slices follow a fixed grid: a request is forgotten one full window after the slice it fell in began', async (t) => {
  let now = 0
  const tracker = new SloTracker(10_000, { slices: 10, now: () => now })
  t.teardown(() => { tracker.destroy() })
  tracker.record(10, false) // slice [0, 1000)
  now = 1_500
  tracker.record(10, false) // slice [1000, 2000)
  now = 2_000
  tracker.record(10, false) // slice [2000, 3000)
  now = 11_000
  t.equal(tracker.snapshot().requests, 1, 'the slices from 0 and 1000 left; the one from 2000 stays until 12 s')
  now = 12_000
  t.equal(tracker.snapshot().requests, 0)
})

t.test('after an idle gap longer than the window, the new slice starts now', async (t) => {
  let now = 0
  const tracker = new SloTracker(10_000, { slices: 10, now: () => now })
  t.teardown(() => { tracker.destroy() })
  tracker.record(10, false)
  now = 100_500
  tracker.record(10, false)
  now = 101_000
  t.equal(tracker.snapshot().requests, 1, 'the request of 100.5 s is still there half a second later')
  now = 110_499
  t.equal(tracker.snapshot().requests, 1)
  now = 110_500
  t.equal(tracker.snapshot().requests, 0)
})

t.test('an idle gap of exactly the window plus one slice leaves the new slice aligned to now', async (t) => {
  let now = 0
  const tracker = new SloTracker(10_000, { slices: 10, now: () => now })
  t.teardown(() => { tracker.destroy() })
  tracker.record(10, false)
  now = 11_000
  tracker.record(10, false)
  now = 20_000
  t.equal(tracker.snapshot().requests, 1, 'the request of 11 s is inside the window at 20 s')
})
