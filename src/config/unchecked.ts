/**
 * What `faultline check` cannot check where it runs: conditions that hold
 * or fail only on the machine (or in the container) that runs the proxy.
 * `check` performs every check `run` makes before listening; these are the
 * ones `run` meets only after it, so `check` names them instead of passing
 * them over in silence.
 */
import type { Config } from './schema.js'
import { deferStepOf } from '../policies/schema.js'

export function uncheckedConditions (config: Config): string[] {
  const lines: string[] = []
  const ports = [`listen.port ${config.listen.host}:${config.listen.port}`, `admin.port ${config.admin.host}:${config.admin.port}`]
  if (config.probes !== undefined) ports.push(`probes.port ${config.probes.host}:${config.probes.port}`)
  lines.push(`free to bind: ${ports.join(', ')}`)
  const origins = new Set(config.routes.flatMap((r) => [r.upstream.url, ...r.upstream.alternates]))
  lines.push(`upstreams reachable: ${[...origins].join(', ')}`)
  if (config.fleet !== undefined) lines.push(`Redis reachable: fleet.redis.url ${redacted(config.fleet.redis.url)}`)
  if (config.controller.source === 'prometheus' && config.controller.prometheus !== undefined) {
    lines.push(`Prometheus reachable and answering: controller.prometheus.url ${config.controller.prometheus.url}`)
  }
  const defers = config.routes.some((r) => deferStepOf(r.resilience) !== undefined)
  if (defers && config.deferral.store === 'journal' && config.deferral.dir !== undefined) {
    lines.push(`writable and not locked by another process: deferral.dir ${config.deferral.dir}`)
  }
  return lines
}

/** The text `check` prints after "ok": one line each, to stderr beside the warnings. */
export function formatUnchecked (file: string, lines: string[]): string {
  return lines.map((line) => `${file}: not checked here (only where it runs): ${line}\n`).join('')
}

function redacted (url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString()
  } catch {
    return '<unparsable>'
  }
}
