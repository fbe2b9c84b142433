/**
 * The two clocks, each for its own job (docs/DECISIONS.md, "One clock per job"):
 *
 * - `Clock` (wall time, epoch ms; `systemClock` by default) for what is
 *   matched against the calendar or shown to people: fault schedules
 *   (`window`, `until`, `ttl`), expiry, timestamps. It is passed in, so
 *   tests move time without sleeping.
 * - `performance.now()` (monotonic) for durations and deadlines on the
 *   request path (timeouts, backoff, latency metrics): an NTP step or a
 *   changed system time can never stretch or cut a request's deadline.
 */

/** Wall-clock milliseconds (epoch); injected where time decides something a person reads. */
export type Clock = () => number
export const systemClock: Clock = () => Date.now()
