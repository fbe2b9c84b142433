/**
 * How long a delay lasts: fixed (`ms`), fixed with uniform jitter
 * (`ms` ± `jitterMs`), or drawn from a distribution. Real latency is
 * heavy-tailed, so lognormal and pareto are there for realistic tails;
 * `maxMs` caps them so one unlucky draw cannot hold a request for hours.
 * Every draw comes from the route's seeded source.
 */
import { z } from 'zod'
import { duration } from '../config/units.js'
import { MAX_TIMER_MS } from '../util/timer.js'

// Bounded to what a Node timer holds (src/util/timer.ts): past it a timer fires after ~1 ms.
const ms = duration(z.number().min(0).max(MAX_TIMER_MS))
const positiveMs = duration(z.number().positive().max(MAX_TIMER_MS))
const positive = z.number().positive()

export const distributionSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('uniform'), minMs: ms, maxMs: ms }),
  z.strictObject({ type: z.literal('normal'), meanMs: ms, stddevMs: ms }),
  /** exp(N(ln medianMs, sigma²)): most draws near the median, a long right tail. */
  z.strictObject({ type: z.literal('lognormal'), medianMs: positiveMs, sigma: positive }),
  /** scaleMs / U^(1/alpha): at least scaleMs, a power-law tail (smaller alpha, heavier tail). */
  z.strictObject({ type: z.literal('pareto'), scaleMs: positiveMs, alpha: positive })
])

export const delayParams = {
  ms: ms.optional(),
  jitterMs: ms.optional(),
  distribution: distributionSchema.optional(),
  maxMs: duration(z.number().positive().max(MAX_TIMER_MS).default(60_000))
}

interface DelayConfig {
  ms?: number | undefined
  jitterMs?: number | undefined
  distribution?: z.infer<typeof distributionSchema> | undefined
  maxMs: number
}

/** Exactly one of `ms` and `distribution`; jitter only around a fixed `ms`. */
export function checkDelay (config: DelayConfig, ctx: z.core.$RefinementCtx): void {
  if ((config.ms === undefined) === (config.distribution === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['ms'], message: 'expected either ms (with optional jitterMs) or distribution, not both or neither' })
  } else if (config.jitterMs !== undefined && config.ms === undefined) {
    ctx.addIssue({ code: 'custom', path: ['jitterMs'], message: 'expected jitterMs only together with ms' })
  }
  const d = config.distribution
  if (d?.type === 'uniform' && d.minMs > d.maxMs) {
    ctx.addIssue({ code: 'custom', path: ['distribution', 'maxMs'], message: `expected maxMs >= minMs (${d.minMs}), got ${d.maxMs}` })
  }
}

/** A standard normal draw (Box-Muller); 1 - random() keeps the log away from 0. */
function gaussian (random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
}

/** Compiles a delay config to a sampler over a random source. */
export function delaySampler (config: DelayConfig): (random: () => number) => number {
  const cap = (value: number): number => Math.min(config.maxMs, Math.max(0, value))
  const d = config.distribution
  if (d === undefined) {
    const base = config.ms ?? 0
    const jitter = config.jitterMs ?? 0
    if (jitter === 0) {
      const fixed = cap(base)
      return () => fixed
    }
    return (random) => cap(base + (2 * random() - 1) * jitter)
  }
  switch (d.type) {
    case 'uniform': return (random) => cap(d.minMs + random() * (d.maxMs - d.minMs))
    case 'normal': return (random) => cap(d.meanMs + d.stddevMs * gaussian(random))
    case 'lognormal': {
      const mu = Math.log(d.medianMs)
      return (random) => cap(Math.exp(mu + d.sigma * gaussian(random)))
    }
    case 'pareto': return (random) => cap(d.scaleMs / Math.pow(1 - random(), 1 / d.alpha))
  }
}
