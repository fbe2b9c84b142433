/**
 * The one clock type. Wall-clock milliseconds (epoch); passed in where time
 * decides something (schedules, windows, expiry) so tests need no sleeps.
 */
export type Clock = () => number
export const systemClock: Clock = () => Date.now()
