/**
 * `faultline chaos off|on`: the fleet kill switch from outside any replica
 * (an operator's laptop, a CI job, a runbook). It writes and publishes
 * exactly what a replica's POST /chaos/off does (src/fleet/kill-switch.ts),
 * with the same connection settings, and says how many replicas were
 * listening.
 */
import { hostname } from 'node:os'
import { Redis } from 'ioredis'
import { redisAddress, redisOptions } from './redis.js'
import { SWITCH_KEY, switchPayload } from './kill-switch.js'
import type { FleetRedisConfig } from './schema.js'

export interface SwitchResult {
  /** Replicas subscribed when the change was published (the rest read the key within fleet.pollMs). */
  listening: number
}

export async function setFleetChaos (config: FleetRedisConfig, password: string | undefined, on: boolean): Promise<SwitchResult> {
  const client = new Redis(config.url, { ...redisOptions(config, password, `faultline:cli-${process.pid}`), retryStrategy: () => null })
  client.on('error', () => {}) // reported by the rejected command below
  try {
    await client.connect()
    const key = config.keyPrefix + SWITCH_KEY
    const payload = switchPayload(on, `cli@${hostname()}`)
    const results = await client.multi().set(key, payload).publish(key, payload).exec()
    if (results === null) throw new Error('the transaction was aborted')
    for (const [err] of results) if (err !== null) throw err
    return { listening: Number(results[1]?.[1] ?? 0) }
  } catch (err) {
    throw new Error(`cannot set the fleet kill switch at ${redisAddress(config.url)}: ${(err as Error).message}`)
  } finally {
    client.disconnect()
  }
}
