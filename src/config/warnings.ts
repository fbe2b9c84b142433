/**
 * Configs that are valid but do nothing, or contradict themselves: a
 * warning each, with the path and what to change. `check`, `run` and
 * `reload` print them, GET /routes lists them, `check --strict` refuses
 * them. They are not errors because each can be meant (faults staged
 * before chaos is switched on from the admin API, say).
 */
import type { Config, RouteConfig } from './schema.js'
import type { ConfigProblem } from './errors.js'
import { faultDelayMs } from '../faults/delay-ms.js'

export { faultDelayMs }

export type ConfigWarning = ConfigProblem

function routeWarnings (route: RouteConfig, at: string, out: ConfigWarning[]): void {
  const { chaos, resilience, intent } = route
  if (!chaos.enabled && chaos.faults.length > 0) {
    out.push({ path: `${at}.chaos.faults`, message: `${chaos.faults.length} fault(s) configured but chaos.enabled is false: nothing is injected until chaos is enabled (set chaos.enabled: true, or enable it on the admin API)` })
  }
  if (intent !== undefined && !chaos.enabled) {
    out.push({ path: `${at}.intent`, message: 'an intent is declared but chaos.enabled is false: no planned chaos runs and no experiment injects here (set chaos.enabled: true)' })
  }
  if (intent !== undefined && chaos.enabled && chaos.budget === 0) {
    out.push({ path: `${at}.chaos.budget`, message: 'chaos.budget is 0: the intent engine plans faults for no request' })
  }
  if (intent !== undefined && intent.slo.p99Ms >= resilience.timeoutMs) {
    out.push({ path: `${at}.intent.slo.p99Ms`, message: `the SLO's p99 (${intent.slo.p99Ms} ms) is not below resilience.timeoutMs (${resilience.timeoutMs} ms): requests end at the timeout first, so the latency SLO can never be missed` })
  }
  if (resilience.attemptTimeoutMs !== undefined && resilience.attemptTimeoutMs >= resilience.timeoutMs) {
    out.push({ path: `${at}.resilience.attemptTimeoutMs`, message: `attemptTimeoutMs (${resilience.attemptTimeoutMs} ms) is not below timeoutMs (${resilience.timeoutMs} ms): the whole-request deadline always fires first, so no attempt is ever retried after a timeout` })
  }
  if (resilience.retry?.attempts === 1) {
    out.push({ path: `${at}.resilience.retry.attempts`, message: 'retry.attempts is 1 (the first try included): nothing is ever retried' })
  }
  chaos.faults.forEach((fault, i) => {
    if (fault.probability === 0) out.push({ path: `${at}.chaos.faults[${i}].probability`, message: 'probability is 0: this fault never fires' })
    const delay = faultDelayMs(fault as unknown as Record<string, unknown>)
    if (delay !== undefined && delay > resilience.timeoutMs) {
      out.push({ path: `${at}.chaos.faults[${i}]`, message: `a ${fault.kind} of ${delay} ms is above resilience.timeoutMs (${resilience.timeoutMs} ms): the route's timeout answers first, so this is a timeout fault` })
    }
  })
}

/** The fleet SLO source (docs/FLEET.md): settings that are ignored or cannot work as written. */
function controllerWarnings (config: Config, out: ConfigWarning[]): void {
  const { controller } = config
  if (controller.source === 'local') {
    if (controller.prometheus !== undefined) out.push({ path: 'controller.prometheus', message: 'controller.prometheus is set but controller.source is local: Prometheus is not read (set controller.source: prometheus)' })
    config.routes.forEach((route, i) => {
      if (route.intent?.queries !== undefined) out.push({ path: `routes[${i}].intent.queries`, message: 'fleet queries are set but controller.source is local: they are not used (set controller.source: prometheus)' })
    })
    return
  }
  if (!config.routes.some((r) => r.intent !== undefined)) {
    out.push({ path: 'controller.source', message: 'controller.source is prometheus but no route declares an intent: there is nothing for the fleet figures to judge' })
  }
  const prometheus = controller.prometheus
  if (prometheus !== undefined && prometheus.timeoutMs >= controller.evaluationMs) {
    out.push({ path: 'controller.prometheus.timeoutMs', message: `timeoutMs (${prometheus.timeoutMs} ms) is not below evaluationMs (${controller.evaluationMs} ms): a query is cut at 80% of the window instead, so windows never overlap` })
  }
}

export function configWarnings (config: Config): ConfigWarning[] {
  const out: ConfigWarning[] = []
  // Same prefix, host and methods: the router takes the first, the later one is never reached.
  const seen = new Map<string, number>()
  config.routes.forEach((route, i) => {
    const key = `${route.match.host ?? '*'} ${route.match.pathPrefix} ${[...(route.match.methods ?? ['*'])].sort().join(',')}`
    const first = seen.get(key)
    if (first !== undefined) {
      out.push({ path: `routes[${i}].match`, message: `the same pathPrefix "${route.match.pathPrefix}"${route.match.host !== undefined ? ` and host "${route.match.host}"` : ''} as routes[${first}] ("${config.routes[first]!.name}"): this route is never matched` })
    } else {
      seen.set(key, i)
    }
    routeWarnings(route, `routes[${i}]`, out)
  })
  controllerWarnings(config, out)
  return out
}

/** "fl.yaml: warning: routes[0].chaos.faults: ..." one line each. */
export function formatWarnings (file: string, warnings: readonly ConfigWarning[]): string {
  return warnings.map((w) => `${file}: warning: ${w.path ? w.path + ': ' : ''}${w.message}\n`).join('')
}
