/**
 * One chaos level per route across the fleet. Each evaluation window, per
 * route with an intent:
 *
 * - a short lease (`<prefix>route:<name>:lease`, SET NX PX, three windows
 *   long, renewed by its holder) elects the replica that evaluates;
 * - the evaluating replica writes the controller's state (level, cap,
 *   margin, significant and disabling levels, breaches) to
 *   `<prefix>route:<name>:level` and publishes it; the others adopt it at
 *   once (message) or at their next window (read);
 * - a guardrail breach seen by ANY replica halts the route fleet-wide: it
 *   sets `<prefix>route:<name>:halt` for the cool-down (PX, so Redis's
 *   clock, not the replicas', says when it ends) and publishes it; every
 *   replica, the evaluating one included, adopts a halt it finds;
 * - an operator's resume on any replica ends the fleet's halt: it deletes
 *   the halt key and publishes the resume; every replica resumes on the
 *   message, or at its next window when it finds the key gone.
 *
 * Redis down: every replica evaluates on its own from the state it last
 * had (role "local"), as a single instance would, and adopts the fleet's
 * again when Redis is back. `faultline_fleet_route_role` says which.
 */
import { z } from 'zod'
import type { Logger } from '../log.js'
import type { ControllerEvent } from '../intent/controller.js'
import type { IntentEngine } from '../intent/engine.js'
import type { FleetRedis } from './redis.js'

export type FleetRole = 'evaluates' | 'follows' | 'local'
export const FLEET_ROLES: readonly FleetRole[] = ['evaluates', 'follows', 'local']

const controllerState = z.strictObject({
  level: z.number().min(0).max(1),
  cap: z.number().min(0).max(1),
  margin: z.number().min(0).max(1),
  significant: z.number().min(0).max(1).nullable(),
  disabling: z.number().min(0).max(1).nullable(),
  breaches: z.number().int().min(0)
})

/** The level key's value and the message: peers' input, so validated. */
const levelMessage = z.strictObject({
  route: z.string().max(100),
  /** The controller settings it was computed under: a replica with another config ignores it. */
  plan: z.string().max(500),
  by: z.string().max(200),
  state: controllerState,
  /** On a published halt: its length in ms (the halt key holds it too). */
  haltMs: z.number().int().min(0).optional(),
  /** On a published resume: an operator ended the halt on the replica `by`. */
  resumed: z.literal(true).optional()
})
type LevelMessage = z.infer<typeof levelMessage>

/** Gets or renews the lease: 1 when this replica holds it (now or already), 0 when another does. */
const LEASE_SCRIPT = `
local holder = redis.call('GET', KEYS[1])
if holder == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`

/** How long the fleet's level outlives its last write: long enough to survive every replica restarting. */
const LEVEL_TTL_MS = 24 * 3600_000

/** The controller settings of an engine, as a fingerprint: states computed under other settings are not adopted. */
function planOf (engine: IntentEngine): string {
  return JSON.stringify(engine.plan.controller)
}

export class FleetLevels {
  private readonly redis: FleetRedis
  private readonly logger: Logger
  private readonly evaluationMs: () => number
  private readonly cooldownMs: () => number
  private readonly engines: () => Array<{ name: string, engine: IntentEngine }>
  private readonly channel: string
  private unsubscribe: (() => void) | undefined
  /**
   * Routes whose halt here is the fleet's (set in Redis by this replica, or
   * adopted from it): when the key is gone, the halt is over (resumed on
   * another replica, or its cool-down ran out on Redis's clock). A halt that
   * never reached Redis (it was down) keeps its own cool-down.
   */
  private readonly fleetHalts = new Set<string>()

  constructor (redis: FleetRedis, options: {
    logger: Logger
    evaluationMs: () => number
    cooldownMs: () => number
    /** The live routes' intent engines. */
    engines: () => Array<{ name: string, engine: IntentEngine }>
  }) {
    this.redis = redis
    this.logger = options.logger
    this.evaluationMs = options.evaluationMs
    this.cooldownMs = options.cooldownMs
    this.engines = options.engines
    this.channel = redis.key('levels')
    this.unsubscribe = redis.subscribe(this.channel, (text) => { this.onMessage(text) })
  }

  private keys (route: string): { lease: string, level: string, halt: string } {
    return { lease: this.redis.key('route', route, 'lease'), level: this.redis.key('route', route, 'level'), halt: this.redis.key('route', route, 'halt') }
  }

  /**
   * After the route's engine judged its window (`event`): halts the fleet
   * on a breach, takes or renews the lease, then writes (evaluating
   * replica) or adopts (the others) the route's level.
   */
  async afterWindow (route: string, engine: IntentEngine, event: ControllerEvent | undefined): Promise<void> {
    if (engine.mode !== 'intent') {
      engine.fleet = undefined
      return
    }
    const keys = this.keys(route)
    const me = this.redis.instanceId
    const plan = planOf(engine)
    if (event?.type === 'breach') await this.haltFleet(route, engine, plan, event.brokeAt)
    const held = await this.redis.attempt(async (r) => await r.eval(LEASE_SCRIPT, 1, keys.lease, me, String(this.evaluationMs() * 3)))
    if (held === undefined) {
      this.setRole(route, engine, 'local', undefined)
      return
    }
    const read = await this.redis.attempt(async (r) => await r.multi().pttl(keys.halt).get(keys.level).get(keys.lease).exec())
    if (read === undefined || read === null) {
      this.setRole(route, engine, 'local', undefined)
      return
    }
    const haltMs = Math.max(0, Number(read[0]?.[1] ?? -2))
    const stored = parseLevel(read[1]?.[1])
    const holder = typeof read[2]?.[1] === 'string' ? read[2][1] : undefined
    const now = performance.now()
    const usable = stored !== undefined && stored.route === route && stored.plan === plan ? stored : undefined
    // The fleet's halt is gone (a missed resume message, or its expiry): it ends here too.
    const lifted = haltMs === 0 && this.liftHalt(route, engine, undefined, 'poll')
    if (held === 1) {
      this.setRole(route, engine, 'evaluates', me)
      // A halt another replica set, not yet applied here: the evaluating replica follows it too.
      if (haltMs > 0 && !engine.controllerReport(now).halted && usable !== undefined) {
        engine.adopt(usable.state, haltMs, now)
        this.fleetHalts.add(route)
        this.logger.warn({ route, haltMs, by: usable.by }, 'guardrail: the route is halted fleet-wide by another replica\'s breach')
        return
      }
      if (haltMs > 0) this.fleetHalts.add(route)
      const message: LevelMessage = { route, plan, by: me, state: engine.fleetState() }
      const text = JSON.stringify(message)
      await this.redis.attempt(async (r) => await r.multi().set(keys.level, text, 'PX', LEVEL_TTL_MS).publish(this.channel, text).exec())
      return
    }
    this.setRole(route, engine, 'follows', holder)
    // Just resumed: the stored state may still be the halted one; the evaluating replica writes its resumed state next.
    if (usable === undefined || lifted) return
    engine.adopt(usable.state, haltMs, now)
    if (haltMs > 0) this.fleetHalts.add(route)
  }

  /**
   * An operator resumed the route on this replica (POST
   * /routes/:route/intent/resume): the fleet's halt ends too. Deletes the
   * halt key (so no replica's next window adopts it again) and publishes
   * the resume.
   */
  async resume (route: string, engine: IntentEngine): Promise<void> {
    if (engine.mode !== 'intent') return
    this.fleetHalts.delete(route)
    const keys = this.keys(route)
    const text = JSON.stringify({ route, plan: planOf(engine), by: this.redis.instanceId, state: engine.fleetState(), resumed: true } satisfies LevelMessage)
    const ok = await this.redis.attempt(async (r) => await r.multi().del(keys.halt).publish(this.channel, text).exec())
    if (ok === undefined) this.logger.warn({ route }, 'guardrail: resumed here; the fleet Redis is unreachable, so the other replicas stay halted until their cool-down ends')
    else this.logger.info({ route }, 'guardrail: the route is resumed on every replica of the fleet')
  }

  /** Ends a halt here that was the fleet's, as the fleet's halt ended; true when it did. */
  private liftHalt (route: string, engine: IntentEngine, by: string | undefined, via: 'message' | 'poll'): boolean {
    if (!this.fleetHalts.delete(route) || !engine.controllerReport(performance.now()).halted) return false
    // As a local resume: the window held through the halt is dropped, so it cannot halt the route again.
    engine.resume('fleet')
    this.logger.warn({ route, by, via }, via === 'message'
      ? 'guardrail: the route is resumed fleet-wide by an operator on another replica'
      : 'guardrail: the fleet\'s halt on the route is over (resumed on another replica, or its cool-down ended): planned injection resumes')
    return true
  }

  /** A breach here halts the route on every replica: the halt key for the cool-down, the state, a message. */
  private async haltFleet (route: string, engine: IntentEngine, plan: string, brokeAt: number): Promise<void> {
    const keys = this.keys(route)
    const haltMs = this.cooldownMs()
    const text = JSON.stringify({ route, plan, by: this.redis.instanceId, state: engine.fleetState(), haltMs } satisfies LevelMessage)
    const ok = await this.redis.attempt(async (r) => await r.multi()
      .set(keys.halt, JSON.stringify({ by: this.redis.instanceId, brokeAt }), 'PX', Math.max(1, haltMs))
      .set(keys.level, text, 'PX', LEVEL_TTL_MS)
      .publish(this.channel, text)
      .exec())
    if (ok === undefined) {
      this.logger.warn({ route }, 'guardrail: halted here; the fleet Redis is unreachable, so the other replicas judge on their own')
    } else {
      this.fleetHalts.add(route)
      this.logger.warn({ route, brokeAt, haltMs }, 'guardrail: the route is halted on every replica of the fleet')
    }
  }

  private onMessage (text: string): void {
    const message = parseLevel(text)
    if (message === undefined || message.by === this.redis.instanceId) return
    const found = this.engines().find((e) => e.name === message.route)
    if (found === undefined || found.engine.mode !== 'intent' || message.plan !== planOf(found.engine)) return
    const now = performance.now()
    if (message.resumed === true) {
      // Marked as the fleet's halt, whatever set it here: the operator ended the fleet's halt.
      if (found.engine.controllerReport(now).halted) this.fleetHalts.add(message.route)
      this.liftHalt(message.route, found.engine, message.by, 'message')
    } else if (message.haltMs !== undefined) {
      // A halt: every replica applies it at once, the evaluating one too.
      found.engine.adopt(message.state, message.haltMs, now)
      this.fleetHalts.add(message.route)
      this.logger.warn({ route: message.route, by: message.by, haltMs: message.haltMs }, 'guardrail: the route is halted fleet-wide by another replica\'s breach')
    } else if (found.engine.fleet?.role === 'follows') {
      found.engine.adopt(message.state, found.engine.controllerReport(now).resumesInMs ?? 0, now)
    }
  }

  private setRole (route: string, engine: IntentEngine, role: FleetRole, evaluatedBy: string | undefined): void {
    const before = engine.fleet?.role
    engine.fleet = { role, evaluatedBy }
    if (before !== role) this.logger.info({ route, role, evaluatedBy }, role === 'local' ? 'fleet level: Redis unreachable, this replica evaluates the route on its own' : `fleet level: this replica ${role === 'evaluates' ? 'evaluates the route for the fleet' : 'follows the fleet\'s level'}`)
  }

  stop (): void {
    this.unsubscribe?.()
    this.unsubscribe = undefined
  }
}

function parseLevel (value: unknown): LevelMessage | undefined {
  if (typeof value !== 'string') return undefined
  try {
    return levelMessage.parse(JSON.parse(value))
  } catch {
    return undefined
  }
}
