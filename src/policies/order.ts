/**
 * The order of a route's pipeline, outermost first: the one place it is
 * written, as cockatiel's `wrap(a, b, c)` or undici's `compose(...)` show
 * it in one expression. buildPolicies (./index.ts) builds the configured
 * policies and RouteRuntime (src/proxy/route.ts) adds `validate` and the
 * fault stage; both hand what they built to inPipelineOrder(), which puts
 * it in this order and refuses a step the table does not know. A step is
 * in a route's pipeline only when its `when` holds, so a route pays for
 * nothing it did not configure. docs/ARCHITECTURE.md and docs/POLICIES.md
 * show this table (test/policies/order.test.ts checks they match); why
 * this order: docs/POLICIES.md, "The order, and why".
 */
import type { Policy } from '../core/pipeline.js'

export const PIPELINE_ORDER = [
  { name: 'fallback', when: '`resilience.fallback` is not empty' },
  { name: 'bulkhead', when: '`resilience.bulkhead` is set' },
  // With one attempt there is nothing for it to bound that the attempt timeout and ctx.deadline do not.
  { name: 'totalTimeout', when: '`resilience.retry` is set: it bounds the attempts and the backoff between them' },
  { name: 'retry', when: '`resilience.retry` is set' },
  { name: 'authGuard', when: '`resilience.authGuard` is set' },
  { name: 'breaker', when: '`resilience.breaker` is set' },
  { name: 'attemptTimeout', when: 'always (`resilience.attemptTimeoutMs`, else `timeoutMs`)' },
  { name: 'validate', when: '`validate` is set' },
  { name: 'faults', when: 'the route has an upstream-side fault to inject; the pipeline is recomposed when that changes' }
] as const

export type PipelineStep = (typeof PIPELINE_ORDER)[number]['name']

const RANK = new Map<string, number>(PIPELINE_ORDER.map((step, i) => [step.name, i]))

/** The given policies (undefined: not configured) in pipeline order, outermost first. */
export function inPipelineOrder (policies: ReadonlyArray<Policy | undefined>): Policy[] {
  const present = policies.filter((p): p is Policy => p !== undefined)
  const seen = new Set<string>()
  for (const p of present) {
    if (!RANK.has(p.name)) throw new Error(`policy "${p.name}" has no place in PIPELINE_ORDER (src/policies/order.ts)`)
    if (seen.has(p.name)) throw new Error(`policy "${p.name}" is in the pipeline twice`)
    seen.add(p.name)
  }
  return present.sort((a, b) => (RANK.get(a.name) ?? 0) - (RANK.get(b.name) ?? 0))
}

/** The pipeline as nested calls, for docs and tests: `fallback( bulkhead( ... upstream attempt ))`. */
export function pipelineDiagram (label: (name: PipelineStep) => string = (name) => name): string {
  const names = PIPELINE_ORDER.map((step) => label(step.name))
  return `${names.join('( ')}( upstream attempt ${')'.repeat(names.length)}`
}
