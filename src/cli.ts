#!/usr/bin/env node
/**
 * faultline run|check|demo. Exit codes: 0 ok, 1 runtime failure, 2 invalid
 * config or usage.
 */
import { parseArgs } from 'node:util'
import { loadConfigFile } from './config/load.js'
import { ConfigError } from './config/errors.js'
import { Faultline } from './faultline.js'
import { runDemo } from './demo/run.js'

const USAGE = `usage:
  faultline run [--config FILE]    run the proxy (FILE defaults to $FAULTLINE_CONFIG)
  faultline check FILE             validate a config file and exit (2 when invalid)
  faultline demo                   run the bundled demo: upstream, proxy, traffic, summary
`

function fail (message: string, code: number): never {
  process.stderr.write(message.endsWith('\n') ? message : message + '\n')
  process.exit(code)
}

async function run (args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } })
  const file = values.config ?? process.env.FAULTLINE_CONFIG
  if (!file) fail('faultline run: no config file: pass --config FILE or set FAULTLINE_CONFIG\n' + USAGE, 2)
  let faultline: Faultline
  try {
    faultline = await Faultline.start(await loadConfigFile(file), { configFile: file })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2)
    throw err
  }
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
    faultline.close().finally(() => { process.exit(1) })
  })
}

async function check (args: string[]): Promise<void> {
  const file = args[0]
  if (!file) fail('faultline check: no file given\n' + USAGE, 2)
  try {
    const config = await loadConfigFile(file)
    process.stdout.write(`${file}: ok (${config.routes.length} route${config.routes.length === 1 ? '' : 's'}: ${config.routes.map((r) => r.name).join(', ')})\n`)
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2)
    throw err
  }
}

async function main (): Promise<void> {
  const [command, ...rest] = process.argv.slice(2)
  switch (command) {
    case 'run': return await run(rest)
    case 'check': return await check(rest)
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
