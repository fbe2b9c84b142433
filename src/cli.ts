#!/usr/bin/env node
/**
 * faultline run|check|demo. Exit codes: 0 ok, 1 runtime failure, 2 invalid
 * config or usage.
 */
import { parseArgs } from 'node:util'
import { loadConfigFile } from './config/load.js'
import type { Config } from './config/schema.js'
import { ConfigError } from './config/errors.js'
import { Faultline } from './faultline.js'
import { runDemo } from './demo/run.js'
import { planText, planViews } from './intent/plan-print.js'
import { reportMarkdown } from './intent/report.js'
import { writeReport } from './intent/report-files.js'

const USAGE = `usage:
  faultline run [--config FILE]    run the proxy (FILE defaults to $FAULTLINE_CONFIG)
  faultline check FILE             validate a config file and exit (2 when invalid)
  faultline plan FILE [--json]     print each route's intent-derived fault plan
  faultline experiment --config FILE --duration 60s --mode intent|uniform [--out DIR]
                                   run the proxy for an experiment against live traffic, then
                                   write its report (JSON and Markdown) and exit
  faultline demo                   run the bundled demo: upstream, proxy, traffic, summary
`

function fail (message: string, code: number): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n')
  process.exit(code)
}

/** Loads a config file, or exits 2 with its errors. */
async function loadOrFail (file: string): Promise<Config> {
  try {
    return await loadConfigFile(file)
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2)
    throw err
  }
}

/** Starts the proxy from a config file, or exits 2 with the config's errors. */
async function startFromFile (file: string, watchFiles = false): Promise<Faultline> {
  try {
    return await Faultline.start(await loadOrFail(file), { configFile: file, watchFiles })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2)
    throw err
  }
}

async function run (args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } })
  const file = values.config ?? process.env.FAULTLINE_CONFIG
  if (!file) fail('faultline run: no config file: pass --config FILE or set FAULTLINE_CONFIG\n' + USAGE, 2)
  // run watches its files (reload.watch); an experiment keeps the config it started with.
  const faultline = await startFromFile(file, true)
  guardProcess(faultline)
  process.on('SIGHUP', () => {
    faultline.reload().catch(() => { /* logged by reload; the old config stays live */ })
  })
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    faultline.logger.info({ signal }, 'signal received')
    faultline.close().then(() => process.exit(0), (err: unknown) => {
      faultline.logger.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => { stop('SIGTERM') })
  process.on('SIGINT', () => { stop('SIGINT') })
}

/**
 * Last-resort handlers. A stray rejected promise (a bug in a fault, a
 * policy or a library callback) has no stack of ours left to unwind: it
 * is logged and the proxy keeps serving, since one lost promise does not
 * make the rest of the state wrong. A thrown exception that reached the
 * top may have left anything half-done, so the proxy stops taking new
 * connections, drains what is in flight (shutdown.drainMs) and exits 1 for
 * the orchestrator to restart it; Node's default would drop every
 * in-flight request at once.
 */
function guardProcess (faultline: Faultline): void {
  process.on('unhandledRejection', (reason: unknown) => {
    faultline.logger.error({ err: reason }, 'unhandled promise rejection; still serving')
  })
  let failing = false
  process.on('uncaughtException', (err: Error) => {
    faultline.logger.fatal({ err }, 'uncaught exception: draining in-flight requests, then exiting')
    if (failing) return
    failing = true
    faultline.close('stop-accepting').finally(() => { process.exit(1) })
  })
}

async function check (args: string[]): Promise<void> {
  const file = args[0]
  if (!file) fail('faultline check: no file given\n' + USAGE, 2)
  const config = await loadOrFail(file)
  // The same checks run and reload make before building (schemas compile, files read).
  try {
    Faultline.check(config, file)
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2)
    throw err
  }
  process.stdout.write(`${file}: ok (${config.routes.length} route${config.routes.length === 1 ? '' : 's'}: ${config.routes.map((r) => r.name).join(', ')})\n`)
}

async function plan (args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } })
  const file = positionals[0]
  if (!file) fail('faultline plan: no file given\n' + USAGE, 2)
  const config = await loadOrFail(file)
  process.stdout.write(values.json === true ? JSON.stringify(planViews(config), null, 2) + '\n' : planText(config))
}

/** "60s", "2m", "1500ms" or plain milliseconds. */
export function parseDuration (text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (!m) return undefined
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h']
  return Math.round(Number(m[1]) * unit)
}

async function experiment (args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, duration: { type: 'string' }, mode: { type: 'string' }, out: { type: 'string' } } })
  const file = values.config ?? process.env.FAULTLINE_CONFIG
  if (!file) fail('faultline experiment: no config file: pass --config FILE\n' + USAGE, 2)
  const durationMs = parseDuration(values.duration ?? '60s')
  if (durationMs === undefined || durationMs < 1000) fail(`faultline experiment: --duration: expected a duration of at least 1s such as 60s or 2m, got ${JSON.stringify(values.duration)}`, 2)
  const mode = values.mode ?? 'intent'
  if (mode !== 'intent' && mode !== 'uniform') fail(`faultline experiment: --mode: expected intent or uniform, got ${JSON.stringify(mode)}`, 2)
  const faultline = await startFromFile(file)
  const { done } = await faultline.experiments.start(mode, durationMs)
  faultline.logger.info({ mode, durationMs }, 'experiment started: send traffic through the proxy')
  const stopEarly = (): void => { void faultline.experiments.stop() }
  process.once('SIGINT', stopEarly)
  process.once('SIGTERM', stopEarly)
  const report = await done
  const written = await writeReport(report, values.out ?? '.')
  process.stdout.write(reportMarkdown(report) + `\nreport written to ${written.json} and ${written.markdown}\n`)
  await faultline.close()
}

async function main (): Promise<void> {
  const [command, ...rest] = process.argv.slice(2)
  switch (command) {
    case 'run': return await run(rest)
    case 'check': return await check(rest)
    case 'plan': return await plan(rest)
    case 'experiment': return await experiment(rest)
    case 'demo': process.exitCode = await runDemo(); return
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE)
      return
    default:
      fail(`faultline: unknown command "${command}"\n` + USAGE, 2)
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`faultline: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
