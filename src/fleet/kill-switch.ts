/**
 * The fleet kill switch: `POST /chaos/off` (or SIGUSR2, or `faultline chaos
 * off --redis URL`) on any replica stops injection on every replica.
 *
 * Two paths, so a missed message still converges: a change is written to
 * the key `<prefix>chaos:switch` and published on the channel of the same
 * name. Every replica applies messages as they arrive and reads the key
 * every `fleet.pollMs`.
 *
 * Off is sticky, on is explicit. A missing key (a Redis restart lost it)
 * never turns chaos on: a replica that is off writes "off" back, so the
 * fleet converges on stopped. A local change made while Redis was
 * unreachable is kept and written as soon as Redis answers, before the
 * key is read, so an older "on" in Redis cannot undo it.
 */
import { z } from 'zod'
import type { Logger } from '../log.js'
import type { ChaosSwitch } from '../faults/switch.js'
import type { FleetRedis } from './redis.js'

/** What is stored in the key and published: peers' input, so validated. */
export const switchMessage = z.strictObject({
  state: z.enum(['on', 'off']),
  by: z.string().max(200),
  at: z.number()
})
export type SwitchMessage = z.infer<typeof switchMessage>

export const SWITCH_KEY = 'chaos:switch'

/** The message for a change, as the CLI and replicas write it. */
export function switchPayload (on: boolean, by: string): string {
  return JSON.stringify({ state: on ? 'on' : 'off', by, at: Date.now() } satisfies SwitchMessage)
}

export class FleetKillSwitch {
  private readonly redis: FleetRedis
  private readonly local: ChaosSwitch
  private readonly logger: Logger
  private readonly key: string
  private poller: NodeJS.Timeout | undefined
  private unsubscribe: (() => void) | undefined
  /** A local change Redis has not taken yet. */
  private pending: boolean | undefined
  private polling = false

  constructor (redis: FleetRedis, local: ChaosSwitch, options: { pollMs: number, logger: Logger }) {
    this.redis = redis
    this.local = local
    this.logger = options.logger
    this.key = redis.key(SWITCH_KEY)
    this.local.fleet = this
    this.unsubscribe = redis.subscribe(this.key, (message) => { this.applyText(message, 'message') })
    this.poller = setInterval(() => { void this.poll() }, options.pollMs)
    this.poller.unref()
    // A replica that starts (or reloads) while the fleet is off stops at once, not after a poll.
    void this.poll()
  }

  /** Writes and publishes a local change; false (and retried on the next poll) when Redis did not take it. */
  async tell (on: boolean): Promise<boolean> {
    // Pending from now: a poll answered before this write lands must not undo it.
    this.pending = on
    const payload = switchPayload(on, this.redis.instanceId)
    const ok = await this.redis.attempt(async (r) => {
      await r.multi().set(this.key, payload).publish(this.key, payload).exec().then(throwOnError)
      return true
    })
    if (ok === true) {
      if (this.pending === on) this.pending = undefined
      return true
    }
    this.pending = on
    this.logger.warn({ killSwitch: on ? 'on' : 'off' }, 'kill switch changed here, but the fleet Redis is unreachable: other replicas follow when it is back')
    return false
  }

  /** Reads the key (and first writes a change Redis missed). Overlapping polls are skipped. */
  async poll (): Promise<void> {
    if (this.polling) return
    this.polling = true
    try {
      if (this.pending !== undefined) {
        const pending = this.pending
        const ok = await this.redis.attempt(async (r) => {
          const payload = switchPayload(pending, this.redis.instanceId)
          await r.multi().set(this.key, payload).publish(this.key, payload).exec().then(throwOnError)
          return true
        })
        if (ok === true && this.pending === pending) {
          this.pending = undefined
          this.logger.info({ killSwitch: pending ? 'on' : 'off' }, 'fleet Redis is back: the kill switch change made meanwhile is told to the fleet')
        }
        return
      }
      const text = await this.redis.attempt(async (r) => await r.get(this.key))
      if (text === undefined) return
      if (text === null) {
        // Lost (a Redis restart) or never set: only "off" is re-asserted; absence never turns chaos on.
        if (!this.local.enabled) {
          await this.redis.attempt(async (r) => await r.set(this.key, switchPayload(false, this.redis.instanceId), 'NX'))
        }
        return
      }
      this.applyText(text, 'poll')
    } finally {
      this.polling = false
    }
  }

  private applyText (text: string, via: 'message' | 'poll'): void {
    let message: SwitchMessage
    try {
      message = switchMessage.parse(JSON.parse(text))
    } catch {
      this.logger.warn({ via }, 'ignored a malformed fleet kill switch value')
      return
    }
    // A change made here that Redis has not taken yet wins over what Redis still holds.
    if (this.pending !== undefined) return
    const on = message.state === 'on'
    if (this.local.setLocal(on)) {
      this.logger.warn({ killSwitch: message.state, by: message.by, via }, on ? 'kill switch on by the fleet: fault injection may resume' : 'kill switch off by the fleet: all fault injection stopped')
    }
  }

  stop (): void {
    clearInterval(this.poller)
    this.poller = undefined
    this.unsubscribe?.()
    this.unsubscribe = undefined
    if (this.local.fleet === this) this.local.fleet = undefined
  }
}

/** MULTI/EXEC resolves per-command errors instead of rejecting. */
function throwOnError (results: Array<[Error | null, unknown]> | null): void {
  if (results === null) throw new Error('transaction aborted')
  for (const [err] of results) if (err !== null) throw err
}
