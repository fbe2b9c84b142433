#!/usr/bin/env node
/**
 * faultline run|check|plan|experiment|demo, parsed by commander so every
 * command answers --help, the program answers --version, and a mistake
 * gets one line plus the usage. Exit codes: 0 ok, 1 runtime failure, 2
 * invalid config or usage (and `check --strict` with warnings), 3 an
 * experiment that saw too little traffic to judge anything.
 */
import { realpathSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { loadConfigFile } from './config/load.js'
import type { Config } from './config/schema.js'
import { configWarnings, formatWarnings } from './config/warnings.js'
import { formatUnchecked, uncheckedConditions } from './config/unchecked.js'
import { ConfigError } from './config/errors.js'
import { Faultline } from './faultline.js'
import { ListenError } from './listen-error.js'
import { runDemo } from './demo/run.js'
import { planText, planViews } from './intent/plan-print.js'
import { reportMarkdown } from './intent/experiment-report.js'
import { writeReport } from './intent/report-files.js'
import { VERSION } from './version.js'
import { setFleetChaos } from './fleet/chaos-command.js'
import { fleetRedisSchema } from './fleet/schema.js'
import { readRedisPassword } from './fleet/redis.js'

export const EXIT = { ok: 0, failure: 1, usage: 2, tooLittleTraffic: 3 } as const

/** Says why and ends the command with `code` (main turns it into the exit code). */
function fail (message: string, code: number, write: (text: string) => void = (text) => { process.stderr.write(text) }): never {
  write(message.endsWith('\n') ? message : message + '\n')
  throw new CommanderError(code, 'faultline.failed', message)
}

/** Loads a config file, or exits 2 with its errors. */
async function loadOrFail (file: string, write?: (text: string) => void): Promise<Config> {
  try {
    return await loadConfigFile(file)
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, EXIT.usage, write)
    throw err
  }
}

/** Starts the proxy from a config file: exits 2 on config errors, 1 on a port that cannot be bound. */
async function startFromFile (file: string, watchFiles = false): Promise<Faultline> {
  try {
    return await Faultline.start(await loadOrFail(file), { configFile: file, watchFiles })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, EXIT.usage)
    if (err instanceof ListenError) fail(`${file}: ${err.message}`, EXIT.failure)
    throw err
  }
}

/** "60s", "2m", "1500ms" or plain milliseconds. */
export function parseDuration (text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (!m) return undefined
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h']
  return Math.round(Number(m[1]) * unit)
}

function durationArg (text: string): number {
  const ms = parseDuration(text)
  if (ms === undefined || ms < 1000) throw new InvalidArgumentError('expected a duration of at least 1s such as 60s or 2m.')
  return ms
}

interface FileOptions { config?: string }

/**
 * Every command that reads a config takes it the same three ways: a
 * positional FILE, --config FILE, or $FAULTLINE_CONFIG (in that order).
 */
function configFile (command: Command, positional: string | undefined, options: FileOptions): string {
  if (positional !== undefined && options.config !== undefined && positional !== options.config) {
    command.error(`error: two config files given ("${positional}" and --config "${options.config}"); pass one`, { exitCode: EXIT.usage, code: 'faultline.twoFiles' })
  }
  const file = positional ?? options.config ?? process.env.FAULTLINE_CONFIG
  if (file === undefined || file === '') {
    command.error('error: no config file: pass FILE, --config FILE or set FAULTLINE_CONFIG', { exitCode: EXIT.usage, code: 'faultline.noFile' })
  }
  return file
}

function withConfig (command: Command): Command {
  return command
    .argument('[file]', 'config file (YAML or JSON); or --config FILE, or $FAULTLINE_CONFIG')
    .option('-c, --config <file>', 'config file (same as the positional FILE)')
}

/**
 * The emergency stop that needs no network and no token: SIGUSR2 turns the
 * kill switch off (every injection stops, in-flight injected waits are
 * released at once). Whoever may signal the process holds it. Turning
 * chaos back on is POST /chaos/on, on purpose: a signal only ever stops.
 */
export function stopChaosOnSignal (faultline: Faultline): void {
  process.on('SIGUSR2', () => {
    const changed = faultline.chaos.turnOff()
    faultline.logger.warn({ signal: 'SIGUSR2', killSwitch: 'off', changed, fleet: faultline.chaos.told !== undefined }, 'kill switch off by signal: all fault injection stopped')
  })
}

async function run (file: string): Promise<void> {
  // run watches its files (reload.watch); an experiment keeps the config it started with.
  const faultline = await startFromFile(file, true)
  guardProcess(faultline)
  stopChaosOnSignal(faultline)
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

async function check (file: string, options: { strict?: boolean }, output: ProgramOutput): Promise<void> {
  const config = await loadOrFail(file, output.writeErr)
  // The same checks run and reload make before building (schemas compile, files read).
  try {
    Faultline.check(config, file)
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, EXIT.usage, output.writeErr)
    throw err
  }
  const warnings = configWarnings(config)
  if (warnings.length > 0) {
    output.writeErr(formatWarnings(file, warnings))
    if (options.strict === true) fail(`${file}: ${warnings.length} warning(s), refused by --strict`, EXIT.usage, output.writeErr)
  }
  output.writeOut(`${file}: ok (${config.routes.length} route${config.routes.length === 1 ? '' : 's'}: ${config.routes.map((r) => r.name).join(', ')})\n`)
  // What only the machine that runs it can tell: said, not skipped in silence.
  output.writeErr(formatUnchecked(file, uncheckedConditions(config)))
}

async function plan (file: string, options: { json?: boolean }, output: ProgramOutput): Promise<void> {
  const config = await loadOrFail(file)
  output.writeOut(options.json === true ? JSON.stringify(planViews(config), null, 2) + '\n' : planText(config))
}

async function experiment (file: string, options: { duration: number, mode: 'intent' | 'uniform', out: string }): Promise<void> {
  const faultline = await startFromFile(file)
  stopChaosOnSignal(faultline)
  const { done } = await faultline.experiments.start(options.mode, options.duration)
  faultline.logger.info({ mode: options.mode, durationMs: options.duration }, 'experiment started: send traffic through the proxy')
  const hint = setTimeout(() => { trafficHint(faultline) }, Math.min(HINT_AFTER_MS, options.duration / 2))
  const stopEarly = (): void => { void faultline.experiments.stop() }
  process.once('SIGINT', stopEarly)
  process.once('SIGTERM', stopEarly)
  const report = await done
  clearTimeout(hint)
  const written = await writeReport(report, options.out)
  process.stdout.write(reportMarkdown(report) + `\nreport written to ${written.json}, ${written.markdown} and ${written.html}\n`)
  await faultline.close()
  if (report.tooLittleTraffic) {
    fail('faultline experiment: too little traffic to judge any evaluation window; the report is not a verdict (exit 3)', EXIT.tooLittleTraffic)
  }
}

const HINT_AFTER_MS = 5_000

/**
 * A few seconds in: no request yet means the operator has not pointed any
 * traffic at the proxy; a trickle below controller.minRequests per window
 * means no window will ever be judged. Either is said now, not after the
 * whole duration.
 */
function trafficHint (faultline: Faultline): void {
  const seen = faultline.experiments.trafficSoFar
  if (seen === undefined) return
  const { controller } = faultline.currentConfig
  const routes = faultline.experiments.current?.routes ?? []
  const prefixes = faultline.currentConfig.routes.filter((r) => routes.includes(r.name)).map((r) => r.match.pathPrefix)
  if (seen.requests === 0) {
    process.stderr.write(`faultline experiment: no requests in the first ${Math.round(seen.elapsedMs / 1000)} s: send traffic through the proxy at ${faultline.proxyAddress} (${prefixes.join(', ') || 'no route takes part: set chaos.enabled'})\n`)
    return
  }
  const perWindow = seen.requests / seen.elapsedMs * controller.evaluationMs
  if (perWindow < controller.minRequests) {
    process.stderr.write(`faultline experiment: at ${(seen.requests / seen.elapsedMs * 1000).toFixed(1)} req/s a ${controller.evaluationMs / 1000} s window sees about ${perWindow.toFixed(1)} requests, below controller.minRequests (${controller.minRequests}): no window can be judged; send more traffic\n`)
  }
}

/** Where the program writes help and errors (tests capture them). */
export interface ProgramOutput { writeOut: (text: string) => void, writeErr: (text: string) => void }

/** `faultline chaos off|on`: the fleet kill switch through Redis; exits 1 when Redis cannot be reached. */
async function chaosCommand (state: 'off' | 'on', options: { redis?: string, keyPrefix?: string, passwordFile?: string, config?: string }, command: Command, output: ProgramOutput): Promise<void> {
  let given: unknown
  if (options.config !== undefined) {
    const config = await loadOrFail(options.config, output.writeErr)
    if (config.fleet === undefined) fail(`${options.config}: no fleet.redis in this config; pass --redis URL`, EXIT.usage, output.writeErr)
    const overrides = { url: options.redis, keyPrefix: options.keyPrefix, passwordFile: options.passwordFile }
    given = { ...config.fleet.redis, ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined)) }
  } else if (options.redis !== undefined) {
    given = { url: options.redis, keyPrefix: options.keyPrefix, passwordFile: options.passwordFile }
  } else {
    command.error('error: where is the fleet? pass --redis URL or --config FILE', { exitCode: EXIT.usage, code: 'faultline.noRedis' })
  }
  const parsed = fleetRedisSchema.safeParse(given)
  if (!parsed.success) fail(`--redis: ${parsed.error.issues.map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ` : '') + i.message).join('; ')}`, EXIT.usage, output.writeErr)
  let password: string | undefined
  try {
    password = readRedisPassword(parsed.data, options.passwordFile ?? options.config ?? '--password-file')
  } catch (err) {
    fail((err as Error).message, EXIT.usage, output.writeErr)
  }
  try {
    const result = await setFleetChaos(parsed.data, password, state === 'on')
    output.writeOut(`kill switch ${state} for the fleet (${result.listening} replica${result.listening === 1 ? '' : 's'} listening; the others read it within fleet.pollMs)\n`)
  } catch (err) {
    fail((err as Error).message, EXIT.failure, output.writeErr)
  }
}

const STDIO: ProgramOutput = { writeOut: (text) => { process.stdout.write(text) }, writeErr: (text) => { process.stderr.write(text) } }

export function buildProgram (output: ProgramOutput = STDIO): Command {
  const program = new Command('faultline')
    .configureOutput(output)
    .description('Fault-injecting sidecar reverse proxy: intent-weighted chaos plus retry, circuit breaker, bulkhead and fallback')
    .version(VERSION, '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help')
    .showSuggestionAfterError(true)
    .addHelpText('after', '\nExit codes: 0 ok, 1 runtime failure (such as a port in use), 2 invalid config or usage,\n3 an experiment saw too little traffic to judge.\nRun "faultline <command> --help" for a command\'s options.')

  withConfig(program.command('run'))
    .description('run the proxy')
    .action(async (positional: string | undefined, options: FileOptions, command: Command) => {
      await run(configFile(command, positional, options))
    })

  withConfig(program.command('check'))
    .description('validate a config file, print its warnings, and exit (2 when invalid)')
    .option('--strict', 'treat warnings (configs that do nothing or contradict themselves) as errors')
    .action(async (positional: string | undefined, options: FileOptions & { strict?: boolean }, command: Command) => {
      await check(configFile(command, positional, options), options, output)
    })

  withConfig(program.command('plan'))
    .description("print each route's intent-derived fault plan")
    .option('--json', 'print the plan as JSON')
    .action(async (positional: string | undefined, options: FileOptions & { json?: boolean }, command: Command) => {
      await plan(configFile(command, positional, options), options, output)
    })

  withConfig(program.command('experiment'))
    .description('run the proxy for an experiment against live traffic, then write its report and exit')
    .addOption(new Option('--duration <duration>', 'how long the experiment runs (60s, 2m, 1500ms)').default(60_000, '60s').argParser(durationArg))
    .addOption(new Option('--mode <mode>', 'intent-weighted chaos or every fault kind uniformly').choices(['intent', 'uniform']).default('intent'))
    .option('--out <dir>', 'directory for the report files', '.')
    .addHelpText('after', '\nExits 3 when the experiment saw too little traffic to judge any evaluation window.')
    .action(async (positional: string | undefined, options: FileOptions & { duration: number, mode: 'intent' | 'uniform', out: string }, command: Command) => {
      await experiment(configFile(command, positional, options), options)
    })

  program.command('chaos')
    .description('turn fault injection off (or on) on every replica of a fleet, through its Redis (docs/FLEET.md)')
    .addArgument(new Argument('<state>', 'off stops every injection on every replica; on lets it resume').choices(['off', 'on']))
    .option('--redis <url>', 'the fleet\'s Redis, redis://host:port (or take fleet.redis from --config)')
    .option('--key-prefix <prefix>', 'the fleet\'s fleet.redis.keyPrefix (default faultline:)')
    .option('--password-file <file>', 'read the Redis password from this file')
    .option('-c, --config <file>', 'a faultline config whose fleet.redis to use')
    .action(async (state: 'off' | 'on', options: { redis?: string, keyPrefix?: string, passwordFile?: string, config?: string }, command: Command) => {
      await chaosCommand(state, options, command, output)
    })

  program.command('demo')
    .description('run the bundled demo: upstream, proxy, traffic, summary')
    .action(async () => { process.exitCode = await runDemo() })

  // Usage mistakes exit 2 with one line and the command's usage; help and version exit 0.
  const usageOnError = (command: Command): void => {
    command.exitOverride((err: CommanderError) => {
      if (err.exitCode === 0) throw err
      output.writeErr(`usage: ${commandPath(command)} ${command.usage()}\nRun "${commandPath(command)} --help" for more.\n`)
      throw new CommanderError(EXIT.usage, err.code, err.message)
    })
    for (const sub of command.commands) usageOnError(sub)
  }
  usageOnError(program)
  return program
}

function commandPath (command: Command): string {
  const names: string[] = []
  for (let c: Command | null = command; c !== null; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

async function main (): Promise<void> {
  const program = buildProgram()
  const args = process.argv.slice(2)
  if (args.length === 0) {
    program.outputHelp()
    return
  }
  try {
    await program.parseAsync(args, { from: 'user' })
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode)
    throw err
  }
}

// Run only as the program, so tests can import buildProgram and drive it in-process.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`faultline: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(EXIT.failure)
  })
}
