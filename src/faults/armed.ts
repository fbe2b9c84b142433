/**
 * A fault as a route holds it: the config it came from, the fault it
 * built, its matchers and schedule. Apart from fault.ts (what a kind is)
 * because its config is the registry's union, and the registry is built
 * from the kinds.
 */
import type { Fault } from './fault.js'
import type { Matcher } from './match.js'
import type { FaultConfig } from './registry.js'
import type { Schedule } from './schedule.js'

/** A fault with its envelope, ready to be chosen. */
export interface ArmedFault {
  /** Stable handle for the admin API: the fault's name, or for an unnamed one its kind (kind-2, ... when taken). */
  readonly id: string
  /** Its metric label and log name: the same string as the id. */
  readonly label: string
  readonly config: FaultConfig
  readonly fault: Fault
  readonly matches: Matcher | undefined
  /** Its count and time gate (first, every, after, window, until, ttl); absent when it has none. */
  readonly schedule?: Schedule | undefined
}
