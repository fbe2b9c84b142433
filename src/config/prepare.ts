/**
 * The checks a config must pass beyond its schema before anything is built
 * from it: every validate.schema compiles, every TLS file, the admin
 * token file and the Prometheus bearer token file can be read. `run`, `reload` and `check` all call this, so a
 * config `check` accepts is one a reload can swap in, and a reload that
 * fails here has acquired nothing (no pool, lease, listener or metric).
 */
import { readFileSync } from 'node:fs'
import type { Config } from './schema.js'
import { ConfigError, type ConfigProblem } from './errors.js'
import { compileSchema } from '../policies/validate.js'
import { checkUpstreamFiles } from '../proxy/upstreams.js'

export function prepareConfig (config: Config, file: string): void {
  const problems: ConfigProblem[] = []
  config.routes.forEach((route, i) => {
    if (route.validate?.schema !== undefined) {
      try {
        compileSchema(route.validate.schema)
      } catch (err) {
        problems.push({ path: `routes[${i}].validate.schema`, message: `expected a JSON Schema that compiles: ${(err as Error).message}` })
      }
    }
    try {
      checkUpstreamFiles(route.upstream)
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      for (const p of err.problems) problems.push({ path: `routes[${i}].${p.path}`, message: `${p.message} (${err.file})` })
    }
  })
  const tokenFile = config.controller.prometheus?.bearerTokenFile
  if (config.controller.source === 'prometheus' && tokenFile !== undefined) {
    try {
      if (readFileSync(tokenFile, 'utf8').trim() === '') problems.push({ path: 'controller.prometheus.bearerTokenFile', message: `expected a bearer token in ${tokenFile}, the file is empty` })
    } catch (err) {
      problems.push({ path: 'controller.prometheus.bearerTokenFile', message: `expected a readable file: ${(err as Error).message}` })
    }
  }
  if (problems.length > 0) throw new ConfigError(file, problems)
}
