/**
 * Header triggers: a request names its own faults, for a test that must
 * hit one request exactly. Only on routes with `chaos.allowHeaderTriggers`.
 *
 *   x-faultline-fault: <fault>[, <fault>...]
 *   <fault>            <kind>[=<value>][; <param>=<value>]...
 *
 *   latency=200ms   abort=503   reset   reset=body; afterBytes=10
 *   timeout   throttle=2000   truncate=100; clean=true   corrupt=bytes
 *   schemaDrift; drop=email; rename=id:userId; retype=price:string
 *   auth=expired   rateLimit=30   slowHeaders=1s   none   abort=502; at=client
 *   abort=503; first=2   abort=503; every=3; key=path   abort=503; first=1; key=header:idempotency-key
 *
 * `<kind>=<value>` sets the kind's main parameter; `200ms` and `2s` are
 * milliseconds; `at` and `probability` work as in the config, `name` and
 * `match` do not (names are metric labels: a client must not mint them).
 * The count schedules (`first`, `every`, `after`, `per`, `key`, `maxKeys`)
 * work as in the config, counted per route and header value (fault-set.ts);
 * the time ones (`window`, `until`, `ttl`) do not: a header lives for one request.
 * Every fault is validated by the same schema as the config. Parsed
 * headers are cached (bounded), so a repeated trigger costs a lookup.
 */
import { LRUCache } from 'lru-cache'
import { formatPath, describeIssue } from '../config/errors.js'
import { faultSchema, faultKind, createFault } from './registry.js'
import type { ArmedFault } from './armed.js'
import { FaultlineError } from '../core/errors.js'

export const TRIGGER_HEADER = 'x-faultline-fault'
const MAX_FAULTS = 8

export class TriggerError extends FaultlineError {
  constructor (message: string) {
    super('invalid_fault_trigger', message)
    this.name = 'TriggerError'
  }
}

const cache = new LRUCache<string, ArmedFault[] | TriggerError>({ max: 256 })

function scalar (raw: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(raw)) return Number(raw)
  const duration = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(raw)
  if (duration) return Number(duration[1]) * (duration[2] === 's' ? 1000 : 1)
  if (raw === 'true' || raw === 'false') return raw === 'true'
  return raw
}

function parseOne (text: string, index: number): ArmedFault {
  const [head = '', ...params] = text.split(';').map((s) => s.trim())
  const eq = head.indexOf('=')
  const kind = eq === -1 ? head : head.slice(0, eq).trim()
  const where = `${TRIGGER_HEADER}[${index}]`
  const spec = faultKind(kind)
  if (spec === undefined) throw new TriggerError(`${where}: unknown fault kind ${JSON.stringify(kind)}`)
  const form = spec.header ?? {}
  const input: Record<string, unknown> = { kind }
  if (eq !== -1) {
    if (form.value === undefined) throw new TriggerError(`${where}: ${kind} takes no value; use "; param=value"`)
    input[form.value] = scalar(head.slice(eq + 1).trim())
  }
  for (const param of params) {
    if (param === '') continue
    const at = param.indexOf('=')
    if (at <= 0) throw new TriggerError(`${where}: expected param=value, got ${JSON.stringify(param)}`)
    const key = param.slice(0, at).trim()
    const value = param.slice(at + 1).trim()
    if (key === 'name' || key === 'match' || key === 'kind') throw new TriggerError(`${where}: ${key} cannot be set from a header`)
    if (key === 'window' || key === 'until' || key === 'ttl') throw new TriggerError(`${where}: ${key} cannot be set from a header (a header lives for one request; add the fault on the admin API for a time schedule)`)
    if (key === 'key' && value.startsWith('header:')) {
      input.key = { header: value.slice('header:'.length) }
    } else if (form.lists?.includes(key) === true) {
      ((input[key] ??= []) as unknown[]).push(value)
    } else if (form.maps?.includes(key) === true) {
      const colon = value.indexOf(':')
      if (colon <= 0) throw new TriggerError(`${where}: expected ${key}=from:to, got ${JSON.stringify(value)}`)
      ;((input[key] ??= {}) as Record<string, string>)[value.slice(0, colon)] = value.slice(colon + 1)
    } else {
      input[key] = scalar(value)
    }
  }
  const parsed = faultSchema.safeParse(input, { reportInput: true })
  if (!parsed.success) {
    throw new TriggerError(parsed.error.issues.map((issue) => {
      const path = formatPath(issue.path)
      return `${where}${path ? '.' + path : ''}: ${describeIssue(issue)}`
    }).join('; '))
  }
  // Labelled by kind only: a header must not mint metric label values.
  return { id: kind, label: kind, config: parsed.data, fault: createFault(parsed.data), matches: undefined }
}

/** The faults a trigger header asks for; throws TriggerError naming what is wrong. */
export function parseTrigger (header: string): ArmedFault[] {
  let entry = cache.get(header)
  if (entry === undefined) {
    try {
      const parts = header.split(',').map((s) => s.trim()).filter((s) => s !== '')
      if (parts.length === 0) throw new TriggerError(`${TRIGGER_HEADER}: expected at least one fault`)
      if (parts.length > MAX_FAULTS) throw new TriggerError(`${TRIGGER_HEADER}: expected at most ${MAX_FAULTS} faults, got ${parts.length}`)
      entry = parts.map(parseOne)
    } catch (err) {
      if (!(err instanceof TriggerError)) throw err
      entry = err
    }
    cache.set(header, entry)
  }
  if (entry instanceof TriggerError) throw entry
  return entry
}

/** What a route lets a trigger header set (src/faults/schema.ts). */
export interface TriggerCaps {
  /** Bytes a fault may buffer (`maxBytes`). */
  maxBytes: number
}

/** Keys a trigger's schedule may remember (`maxKeys`): a client must not mint memory. */
export const MAX_TRIGGER_KEYS = 10_000

/**
 * Refuses a trigger whose sizes pass the route's caps: every size a header
 * can set is bounded by the route's configuration, not by the client.
 */
export function checkTriggerCaps (faults: readonly ArmedFault[], caps: TriggerCaps): void {
  faults.forEach((fault, index) => {
    const config = fault.config as { maxBytes?: unknown, maxKeys?: unknown }
    if (typeof config.maxBytes === 'number' && config.maxBytes > caps.maxBytes) {
      throw new TriggerError(`${TRIGGER_HEADER}[${index}].maxBytes: expected at most ${caps.maxBytes} (the route's chaos.maxTriggerBytes), got ${config.maxBytes}`)
    }
    if (typeof config.maxKeys === 'number' && config.maxKeys > MAX_TRIGGER_KEYS) {
      throw new TriggerError(`${TRIGGER_HEADER}[${index}].maxKeys: expected at most ${MAX_TRIGGER_KEYS} from a header, got ${config.maxKeys}`)
    }
  })
}
