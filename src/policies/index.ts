/**
 * The resilience policies of a route, outermost first. See DESIGN.md and
 * docs/POLICIES.md for why this order:
 *   fallback( bulkhead( total timeout( retry( breaker( attempt timeout( ...faults( upstream call )))))))
 */
import type { ResilienceConfig } from './schema.js'
import type { Policy } from '../proxy/pipeline.js'
import { attemptTimeout } from './attempt-timeout.js'

export function buildPolicies (config: ResilienceConfig): Policy[] {
  return [attemptTimeout(config.attemptTimeoutMs ?? config.timeoutMs)]
}
