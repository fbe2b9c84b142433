/**
 * Admin endpoints for resilience policies. A route's breaker guards its
 * upstream and may be shared with other routes using the same upstream and
 * breaker options; acting through any of them acts on that one breaker,
 * and the answer lists the routes it covers.
 *
 *   POST /routes/:route/breaker/force-open   short-circuit every request until reset
 *   POST /routes/:route/breaker/force-close  let every request through, record nothing, until reset
 *   POST /routes/:route/breaker/reset        closed, history and trip count cleared
 *
 * Behind the bearer token like every state-changing admin call; audited.
 */
import type { AdminExtension } from './server.js'
import { adminError, audit } from './server.js'
import { isBreakerPolicy, type CircuitBreaker } from '../policies/breaker.js'

// A Map, not an object literal: "constructor" or "__proto__" must not find Object.prototype's members.
const ACTIONS = new Map<string, (breaker: CircuitBreaker) => void>([
  ['force-open', (b) => { b.forceOpen() }],
  ['force-close', (b) => { b.forceClose() }],
  ['reset', (b) => { b.reset() }]
])

export const policyAdmin: AdminExtension = (app, control) => {
  app.post<{ Params: { route: string, action: string } }>('/routes/:route/breaker/:action', async (request, reply) => {
    const { route: name, action } = request.params
    const apply = ACTIONS.get(action)
    if (apply === undefined) {
      return adminError(reply, 'not_found', `unknown breaker action "${action}": expected force-open, force-close or reset`)
    }
    const table = control.table()
    const route = table.get(name)
    if (route === undefined) return adminError(reply, 'no_route', `no route named "${name}"`)
    const policy = route.policies.find(isBreakerPolicy)
    if (policy === undefined) return adminError(reply, 'no_breaker', `route "${name}" has no circuit breaker (resilience.breaker)`)
    const breaker = policy.breaker
    const before = breaker.state.name
    apply(breaker)
    // A reset also clears what this route's experiments tripped (its own breaker for injected failures).
    if (action === 'reset') policy.shadow?.reset()
    const routes = table.routes.filter((r) => r.policies.some((p) => isBreakerPolicy(p) && p.breaker === breaker)).map((r) => r.name)
    audit(request, `breaker ${action}`, { route: name, upstream: breaker.upstream, from: before, to: breaker.state.name })
    return { route: name, upstream: breaker.upstream, action, from: before, state: breaker.snapshot(), routes }
  })
}
