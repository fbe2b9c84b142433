/**
 * The longest delay a Node timer holds: setTimeout with more than 2^31-1 ms
 * fires after about 1 ms instead (with a TimeoutOverflowWarning). Config
 * bounds every fault delay to it; waits that can add up past it are chunked.
 */
export const MAX_TIMER_MS = 2_147_483_647
