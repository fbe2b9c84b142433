/**
 * The running proxy: owns the listeners, the live config generation and
 * the shared parts (upstream pools, metrics, logger). A reload validates a
 * whole new config first and then swaps one reference; requests already in
 * flight keep the route table they started with.
 */
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import type { AddressInfo, Socket } from 'node:net'
import { isLoopbackHost, type Config, type ShutdownMode } from './config/schema.js'
import { loadConfigFile } from './config/load.js'
import { ConfigError } from './config/errors.js'
import { prepareConfig } from './config/prepare.js'
import { configWarnings, type ConfigWarning } from './config/warnings.js'
import { ListenError } from './listen-error.js'
import { createLogger, type Logger } from './log.js'
import { Metrics } from './metrics/metrics.js'
import { UpstreamPools } from './proxy/upstreams.js'
import { RouteRuntime } from './proxy/route.js'
import { RouteTable } from './proxy/router.js'
import { createProxyServer } from './proxy/server.js'
import { createAdminServer } from './admin/server.js'
import { createProbeServer } from './admin/probes.js'
import { FileWatcher } from './config/watch.js'
import { redactSecrets } from './admin/redact.js'
import { PolicyRegistry } from './policies/registry.js'
import { deferStepOf } from './policies/schema.js'
import { policyAdmin } from './admin/policies.js'
import { chaosAdmin } from './admin/chaos.js'
import { ChaosSwitch } from './faults/switch.js'
import type { Clock } from './faults/schedule.js'
import { FailureRecorder } from './failure-report/recorder.js'
import { reportAdmin } from './admin/report.js'
import { statusPage } from './admin/status.js'
import { AlertNotifier } from './alerts/notifier.js'
import { alertingEvents } from './alerts/policy-watch.js'
import { ExperimentRunner } from './intent/experiment.js'
import { experimentsAdmin } from './admin/experiments.js'
import { FleetRedis, readRedisPassword } from './fleet/redis.js'
import { Deferrals } from './deferral/service.js'
import { deferralsAdmin } from './admin/deferrals.js'
import { FleetKillSwitch } from './fleet/kill-switch.js'
import { RedisStreamStore } from './deferral/redis-store.js'
import { PrometheusSource } from './fleet/prometheus-source.js'
import type { ControllerEvent } from './intent/controller.js'
import { FleetLevels } from './fleet/levels.js'

export interface StartOptions {
  /** Where the config came from; needed for reloads from the file. */
  configFile?: string
  logger?: Logger
  metrics?: Metrics
  /**
   * Reload when the config file or admin.tokenFile changes, while the
   * config's reload.watch is on (`faultline run` passes true). Off for the
   * library by default: an embedding program decides its own reloads.
   */
  watchFiles?: boolean
  /** The wall clock fault schedules read (windows, until, ttl); tests inject one. */
  clock?: Clock
}

/** The admin token in force: tokenFile wins, so mounted secrets can rotate on reload. */
export function resolveAdminToken (config: Config): string | undefined {
  if (config.admin.tokenFile !== undefined) {
    let token: string
    try {
      token = readFileSync(config.admin.tokenFile, 'utf8').trim()
    } catch (err) {
      throw new ConfigError(config.admin.tokenFile, [{ path: '', message: `cannot read admin.tokenFile: ${(err as Error).message}` }])
    }
    if (token.length < 16) throw new ConfigError(config.admin.tokenFile, [{ path: '', message: 'expected a token of at least 16 characters in admin.tokenFile' }])
    return token
  }
  return config.admin.token
}

export class Faultline {
  readonly logger: Logger
  readonly metrics: Metrics
  private readonly pools = new UpstreamPools()
  /** Breakers, caches, bulkheads and budgets, kept across reloads while their config is unchanged. */
  private readonly policyState = new PolicyRegistry()
  /** The kill switch: process-wide, outlives reloads. */
  readonly chaos = new ChaosSwitch()
  /** Failure patterns per route for GET /report; kept across reloads while a route keeps its name. */
  readonly report = new FailureRecorder()
  /** Webhook alerts. The intent engine raises guardrail halts with alerts.emit({ type: 'guardrail_halt', route, details }). */
  readonly alerts: AlertNotifier
  private readonly configFile: string | undefined
  private readonly clock: Clock | undefined
  private config: Config
  /** Valid but doing nothing or contradicting itself (src/config/warnings.ts): logged, and listed in GET /routes. */
  private warnings: ConfigWarning[] = []
  private table: RouteTable
  private adminToken: string | undefined
  private generation = 1
  private ready = false
  private closing: Promise<void> | undefined
  private reloading: Promise<unknown> = Promise.resolve()
  private proxy: FastifyInstance | undefined
  private admin: FastifyInstance | undefined
  /** Open connections to the proxy listener. */
  private readonly connections = new Set<Socket>()
  /** The probe-only listener (config `probes`), when configured. */
  private probes: FastifyInstance | undefined
  private readonly watchFiles: boolean
  private watcher: FileWatcher | undefined
  /** Starting or stopping the file watcher; serialised so a reload cannot start two. */
  private watcherSync: Promise<void> = Promise.resolve()
  /** Drives every route's intent engine, one tick per evaluation window. */
  private evaluation: NodeJS.Timeout | undefined
  /** controller.source prometheus: where the fleet's figures come from (undefined: each route judges its local window). */
  private fleetSource: PrometheusSource | undefined
  /** A fleet read in flight: the next window does not stack another on it. */
  private fleetReading = false
  readonly experiments: ExperimentRunner
  /** The fleet's Redis connections (config `fleet`); undefined when this instance works alone. Replaced by a reload that changes fleet.redis. */
  private fleetRedis: FleetRedis | undefined
  /** The deferral store and a deliverer per route with a `defer` step (src/deferral). */
  readonly deferrals: Deferrals
  /** The kill switch shared with the fleet, while `fleet` is configured. */
  private fleetSwitch: FleetKillSwitch | undefined
  /** One chaos level per route across the fleet, while `fleet` is configured. */
  private fleetLevels: FleetLevels | undefined

  private constructor (config: Config, options: StartOptions) {
    this.config = config
    this.configFile = options.configFile
    this.watchFiles = options.watchFiles ?? false
    this.clock = options.clock
    this.logger = options.logger ?? createLogger(config.log.level)
    this.metrics = options.metrics ?? new Metrics()
    this.adminToken = Faultline.check(config, options.configFile ?? '<config>')
    this.alerts = new AlertNotifier(config.alerts, { logger: this.logger, metrics: this.metrics, recorder: this.report })
    this.alerts.watchRoutes(() => this.table.routes.map((r) => r.name))
    this.fleetRedis = this.fleetFor(config, undefined)
    this.deferrals = new Deferrals(config.deferral, {
      logger: this.logger,
      metrics: this.metrics,
      routes: () => this.table.routes,
      openRedis: async (c) => {
        const fleet = this.fleetRedis
        if (fleet === undefined) throw new Error('deferral.store is redis but fleet.redis is not configured')
        const store = new RedisStreamStore({ fleet: () => this.fleetRedis, consumer: fleet.instanceId, retainMs: c.retainMs, claimIdleMs: c.claimIdleMs })
        // Not a reason to refuse to start: until Redis answers, writes are not deferred (the failure goes out as it is).
        if (!await store.ready(fleet.config.redis.connectTimeoutMs)) this.logger.warn('deferral store: Redis is not reachable yet; writes are not deferred until it is')
        return store
      }
    })
    this.table = this.buildTable(config)
    this.fleetSwitch = this.fleetRedis === undefined ? undefined : new FleetKillSwitch(this.fleetRedis, this.chaos, { pollMs: config.fleet?.pollMs ?? 250, logger: this.logger })
    this.fleetLevels = this.fleetLevelsFor(this.fleetRedis)
    this.metrics.fleetRoles = () => this.table.routes.flatMap((r) => r.intent?.fleet === undefined ? [] : [{ route: r.name, role: r.intent.fleet.role }])
    this.experiments = new ExperimentRunner(this.metrics, () => this.table.routes.flatMap((r) => r.config.chaos.enabled && r.intent !== undefined ? [r.intent] : []), () => this.config.controller.evaluationMs, () => this.config.controller.minRequests)
    this.metrics.chaosStatus = () => {
      const now = performance.now()
      return this.table.routes.map((r) => ({ route: r.name, ...r.chaosStatus(now) }))
    }
    this.syncFleetSource(undefined)
    this.metrics.controllerSourceStatus = () => {
      const states = this.fleetSource?.states
      if (states === undefined) return []
      return this.table.routes.flatMap((r) => {
        const state = r.intent !== undefined ? states.get(r.name) : undefined
        return state === undefined ? [] : [{ route: r.name, reason: state.reason }]
      })
    }
  }

  /** (Re)creates the fleet SLO source when controller.source or its settings changed. */
  private syncFleetSource (previous: Config['controller'] | undefined): void {
    const next = this.config.controller
    const same = previous !== undefined && previous.source === next.source && previous.evaluationMs === next.evaluationMs && JSON.stringify(previous.prometheus) === JSON.stringify(next.prometheus)
    if (same && (next.source !== 'prometheus' || this.fleetSource !== undefined)) return
    void this.fleetSource?.close()
    this.fleetSource = next.source === 'prometheus' && next.prometheus !== undefined
      ? new PrometheusSource(next.prometheus, { logger: this.logger, evaluationMs: next.evaluationMs })
      : undefined
    if (this.fleetSource !== undefined) this.logger.info({ url: next.prometheus?.url, selector: next.prometheus?.selector }, 'controller: judging each route on the fleet\'s figures from Prometheus')
  }

  /**
   * Everything `run` checks before building anything, beyond the schema:
   * the admin token (file), compiled schemas, readable TLS files. `faultline
   * check` runs exactly this. Returns the admin token in force.
   */
  static check (config: Config, file: string): string | undefined {
    const token = resolveAdminToken(config)
    if (!isLoopbackHost(config.admin.host) && token === undefined) {
      throw new ConfigError(file, [{
        path: 'admin.host',
        message: `expected a loopback address when no admin token is set, got "${config.admin.host}" (set admin.token or admin.tokenFile to expose the admin API)`
      }])
    }
    prepareConfig(config, file)
    if (config.fleet !== undefined) readRedisPassword(config.fleet.redis, file)
    return token
  }

  /** The fleet Redis for this config: the current one when its settings are unchanged, a new (unconnected) one otherwise. */
  private fleetFor (config: Config, current: FleetRedis | undefined): FleetRedis | undefined {
    if (config.fleet === undefined) return undefined
    const password = readRedisPassword(config.fleet.redis, this.configFile ?? '<config>')
    if (current?.sameAs(config.fleet, password) === true) return current
    return new FleetRedis(config.fleet, { logger: this.logger, metrics: this.metrics, password })
  }

  private fleetLevelsFor (redis: FleetRedis | undefined): FleetLevels | undefined {
    if (redis === undefined) return undefined
    return new FleetLevels(redis, {
      logger: this.logger,
      evaluationMs: () => this.config.controller.evaluationMs,
      cooldownMs: () => this.config.controller.cooldownMs,
      engines: () => this.table.routes.flatMap((r) => r.intent === undefined ? [] : [{ name: r.name, engine: r.intent }])
    })
  }

  /** The fleet's Redis connections, for fleet features and the deferral queue; undefined without `fleet` in the config. */
  get fleet (): FleetRedis | undefined { return this.fleetRedis }

  /** Validates, binds both listeners and returns once the proxy is ready. */
  static async start (config: Config, options: StartOptions = {}): Promise<Faultline> {
    const faultline = new Faultline(config, options)
    try {
      // Before the listeners: a write must never be answered 202 by a store that is not there.
      await faultline.deferrals.open(usesDefer(config))
      await faultline.listen()
    } catch (err) {
      await faultline.close()
      throw err
    }
    return faultline
  }

  /** Builds every route or none: a route that fails to build releases what the ones before it acquired. */
  private buildTable (config: Config): RouteTable {
    const routes: RouteRuntime[] = []
    try {
      for (const route of config.routes) {
        // One dependency a line: each feature that adds one adds a line.
        routes.push(new RouteRuntime(route, {
          pools: this.pools,
          metrics: this.metrics,
          policyState: this.policyState,
          chaos: this.chaos,
          controller: config.controller,
          chaosOptions: { clock: this.clock, logger: this.logger },
          fleet: this.fleetRedis,
          report: this.report,
          watchPolicies: (route, upstream, events) => alertingEvents(events, this.alerts, route, upstream),
          deferrals: this.deferrals,
          logger: this.logger
        }))
        const engine = routes[routes.length - 1]?.intent
        // An operator's resume ends the fleet's halt too (whichever FleetLevels is live then).
        if (engine !== undefined) engine.onResume = () => { void this.fleetLevels?.resume(route.name, engine) }
      }
    } catch (err) {
      for (const route of routes) route.dispose()
      // Records the failed build made for new route names go too.
      if (this.table !== undefined) this.report.retain(this.table.routes.map((r) => r.name))
      throw err
    }
    this.report.retain(config.routes.map((r) => r.name))
    return new RouteTable(routes)
  }

  private async listen (): Promise<void> {
    const { listen, admin } = this.config
    this.admin = createAdminServer({
      logger: this.logger,
      metrics: this.metrics,
      token: () => this.adminToken,
      authFailures: { max: admin.maxAuthFailures, windowMs: admin.authFailureWindowMs },
      allowedHosts: () => [this.config.admin.host, ...this.config.admin.allowedHosts],
      control: {
        isReady: () => this.ready,
        routes: () => redactSecrets(this.describeRoutes()),
        reload: async () => await this.reload(),
        table: () => this.table
      },
      extensions: [policyAdmin, chaosAdmin(this.chaos), experimentsAdmin(this.experiments), reportAdmin(this.report), statusPage, deferralsAdmin(this.deferrals)]
    })
    this.proxy = createProxyServer({ logger: this.logger, metrics: this.metrics, routes: () => this.table, listen })
    // Known connections, for the drain (shutdown): one that never sent a byte is closed there.
    this.proxy.server.on('connection', (socket: Socket) => {
      this.connections.add(socket)
      socket.once('close', () => { this.connections.delete(socket) })
    })
    await this.admin.listen({ host: admin.host, port: admin.port }).catch((err: unknown) => { throw new ListenError('admin', admin.host, admin.port, err) })
    if (this.config.probes !== undefined) {
      const probes = this.config.probes
      this.probes = createProbeServer({ logger: this.logger, isReady: () => this.ready })
      await this.probes.listen({ host: probes.host, port: probes.port }).catch((err: unknown) => { throw new ListenError('probes', probes.host, probes.port, err) })
    }
    await this.proxy.listen({ host: listen.host, port: listen.port }).catch((err: unknown) => { throw new ListenError('listen', listen.host, listen.port, err) })
    this.metrics.routesConfigured.set(this.config.routes.length)
    this.metrics.configLoaded.setToCurrentTime()
    this.startEvaluation()
    this.deferrals.sync()
    await this.syncWatcher()
    this.ready = true
    this.logWarnings(this.config)
    this.logger.info({ proxy: this.proxyAddress, admin: this.adminAddress, probes: this.probes === undefined ? undefined : addressOf(this.probes), routes: this.config.routes.map((r) => r.name) }, 'faultline ready')
  }

  /** Starts or stops the file watcher to match options.watchFiles and the live config's reload.watch. */
  private async syncWatcher (): Promise<void> {
    this.watcherSync = this.watcherSync.then(async () => {
      const wanted = this.watchFiles && this.configFile !== undefined && this.config.reload.watch && this.closing === undefined
      if (wanted && this.watcher === undefined) {
        const configFile = this.configFile!
        this.watcher = await FileWatcher.start({
          files: () => [configFile, ...(this.config.admin.tokenFile !== undefined ? [this.config.admin.tokenFile] : [])],
          debounceMs: () => this.config.reload.debounceMs,
          onChange: async () => await this.reload(),
          logger: this.logger
        })
        this.logger.info({ directories: this.watcher.directories, debounceMs: this.config.reload.debounceMs }, 'watching the config files: a change reloads them')
      } else if (!wanted && this.watcher !== undefined) {
        this.watcher.close()
        this.watcher = undefined
        this.logger.info('stopped watching the config files')
      }
    }).catch((err: unknown) => { this.logger.error({ err }, 'cannot watch the config files; SIGHUP and POST /reload still reload') })
    await this.watcherSync
  }

  private startEvaluation (): void {
    clearInterval(this.evaluation)
    this.evaluation = setInterval(() => { this.evaluate() }, this.config.controller.evaluationMs)
    this.evaluation.unref()
  }

  /** One evaluation window ended: every intent engine judges it; guardrail halts are logged loudly. */
  private evaluate (): void {
    const source = this.fleetSource
    if (source === undefined) {
      const now = performance.now()
      for (const route of this.table.routes) this.onControllerEvent(route, route.intent?.tick(now))
      return
    }
    // The fleet's figures: read off the request path, bounded by the source's timeout (inside one window).
    if (this.fleetReading) return
    this.fleetReading = true
    const routes = this.table.routes.filter((r) => r.intent !== undefined)
    source.read(routes.map((r) => ({ name: r.name, queries: r.intent?.intent.queries })))
      .then((readings) => {
        // A reload or a shutdown while reading: retired routes' engines are gone or going.
        if (this.fleetSource !== source || this.closing !== undefined) return
        const now = performance.now()
        const live = new Set(this.table.routes)
        for (const route of routes) if (live.has(route)) this.onControllerEvent(route, route.intent?.tick(now, readings.get(route.name)))
      })
      .catch((err: unknown) => { this.logger.error({ err }, 'controller: reading the fleet\'s figures failed') })
      .finally(() => { this.fleetReading = false })
  }

  private onControllerEvent (route: RouteRuntime, event: ControllerEvent | undefined): void {
    // Fleet control: halt the fleet on a breach, then write or adopt the route's one level (src/fleet/levels.ts).
    if (route.intent !== undefined) void this.fleetLevels?.afterWindow(route.name, route.intent, event)
    if (event === undefined) return
    if (event.type === 'breach') {
      this.logger.warn({ route: route.name, brokeAt: event.brokeAt, headroom: Math.round(event.headroom * 1000) / 1000, cooldownMs: this.config.controller.cooldownMs },
        'guardrail: client-visible SLO breached, planned injection halted on this route')
      this.alerts.emit({
        type: 'guardrail_halt',
        route: route.name,
        upstream: route.upstreamLabel,
        details: { brokeAtLevel: event.brokeAt, headroom: Math.round(event.headroom * 1000) / 1000, cooldownMs: this.config.controller.cooldownMs, slo: route.intent?.intent.slo }
      })
    } else if (event.type === 'upstream_breach') {
      // Real, not chaos: nothing was injected in this window. Said as such; no guardrail halt or alert about chaos.
      this.logger.warn({ route: route.name, upstream: route.upstreamLabel, injected: false, headroom: Math.round(event.headroom * 1000) / 1000, level: event.level },
        'SLO breached with nothing injected: the upstream itself is failing; the chaos level holds')
    } else if (event.type === 'resume') {
      this.logger.info({ route: route.name, level: event.level }, 'guardrail: cool-down over, planned injection resumes')
    }
  }

  /** Every GET path of the admin API (tests scan them all for secrets). */
  get adminReadPaths (): readonly string[] { return (this.admin as unknown as { readPaths?: string[] } | undefined)?.readPaths ?? [] }
  get proxyAddress (): string { return addressOf(this.proxy) }
  get adminAddress (): string { return addressOf(this.admin) }
  get proxyPort (): number { return portOf(this.proxy) }
  get adminPort (): number { return portOf(this.admin) }
  /** The probe listener's port, or 0 when `probes` is not configured. */
  get probesPort (): number { return portOf(this.probes) }
  get currentConfig (): Config { return this.config }
  get isReady (): boolean { return this.ready }

  /** Re-reads the config file; on any error the old config stays live and the error is thrown. */
  async reload (): Promise<{ generation: number, routes: string[] }> {
    const run = this.reloading.then(async () => {
      if (this.configFile === undefined) throw new Error('faultline was started without a config file; nothing to reload')
      try {
        const next = await loadConfigFile(this.configFile)
        return this.applyConfig(next)
      } catch (err) {
        this.metrics.configReloads.labels('failure').inc()
        this.logger.error({ err: err instanceof ConfigError ? err.message : err, file: this.configFile }, 'config reload failed; the previous config stays live')
        throw err
      }
    })
    this.reloading = run.catch(() => {})
    return await run
  }

  /** Swaps in an already-validated config. Listener and admin addresses need a restart to change. */
  applyConfig (next: Config): { generation: number, routes: string[] } {
    // Everything that can fail is checked before anything is acquired or swapped.
    prepareConfig(next, this.configFile ?? '<config>')
    const token = resolveAdminToken(next)
    if (!isLoopbackHost(this.config.admin.host) && token === undefined) {
      throw new ConfigError(this.configFile ?? '<config>', [{ path: 'admin.token', message: 'expected a token: the admin API listens on a non-loopback address' }])
    }
    for (const key of ['listen', 'admin', 'shutdown', 'probes', 'deferral'] as const) {
      const { token: _a, tokenFile: _b, ...before } = { ...this.config[key] } as Record<string, unknown>
      const { token: _c, tokenFile: _d, ...after } = { ...next[key] } as Record<string, unknown>
      if (JSON.stringify(before) !== JSON.stringify(after)) {
        this.logger.warn({ section: key }, `config.${key} changed: it takes effect on restart`)
      }
    }
    const previousFleet = this.fleetRedis
    const previousPollMs = this.config.fleet?.pollMs
    const fleet = this.fleetFor(next, previousFleet)
    let table: RouteTable
    try {
      this.fleetRedis = fleet
      table = this.buildTable(next)
    } catch (err) {
      this.fleetRedis = previousFleet
      if (fleet !== previousFleet) void fleet?.close()
      // buildTable released what it acquired; the caller gets a 400 with the reason, not a 500.
      if (err instanceof ConfigError) throw err
      throw new ConfigError(this.configFile ?? '<config>', [{ path: '', message: `the config could not be built: ${(err as Error).message}` }])
    }
    const previous = this.table
    const evaluationChanged = next.controller.evaluationMs !== this.config.controller.evaluationMs
    const previousController = this.config.controller
    // An experiment's books live in the routes being replaced: end it with what it has.
    if (this.experiments.current !== undefined) {
      this.logger.warn('config reloaded during an experiment: the experiment ends now')
      void this.experiments.stop()
    }
    this.table = table
    this.config = next
    this.adminToken = token
    this.logger.level = next.log.level
    this.alerts.configure(next.alerts)
    this.generation++
    this.syncFleetSource(previousController)
    if (evaluationChanged && this.evaluation !== undefined) this.startEvaluation()
    // Old routes release their pools and policy leases when their last in-flight request settles.
    for (const route of previous.routes) route.retire()
    // Retired routes that still drain fall back to local state, as they would with Redis down.
    if (previousFleet !== fleet || next.fleet?.pollMs !== previousPollMs) {
      this.fleetSwitch?.stop()
      this.fleetSwitch = fleet === undefined ? undefined : new FleetKillSwitch(fleet, this.chaos, { pollMs: next.fleet?.pollMs ?? 250, logger: this.logger })
    }
    if (previousFleet !== fleet) {
      this.fleetLevels?.stop()
      this.fleetLevels = this.fleetLevelsFor(fleet)
      void previousFleet?.close()
    }
    // A route that newly defers may need the store (with the deferral settings faultline started with).
    void this.deferrals.open(usesDefer(next)).then(() => { this.deferrals.sync() }, (err: unknown) => {
      this.logger.error({ err }, 'cannot open the deferral store: writes are not deferred')
    })
    this.metrics.configReloads.labels('success').inc()
    this.metrics.configLoaded.setToCurrentTime()
    this.metrics.routesConfigured.set(next.routes.length)
    void this.syncWatcher()
    this.logWarnings(next)
    this.logger.info({ generation: this.generation, routes: next.routes.map((r) => r.name) }, 'config reloaded')
    return { generation: this.generation, routes: next.routes.map((r) => r.name) }
  }

  private logWarnings (config: Config): void {
    this.warnings = configWarnings(config)
    for (const w of this.warnings) this.logger.warn({ path: w.path, file: this.configFile }, `config warning: ${w.path}: ${w.message}`)
  }

  describeRoutes (): { generation: number, warnings: ConfigWarning[], routes: unknown[] } {
    return {
      generation: this.generation,
      warnings: this.warnings,
      routes: this.table.routes.map((route) => ({
        name: route.name,
        match: route.config.match,
        // Upstream URLs never carry credentials: the schema refuses them.
        upstream: route.config.upstream,
        resilience: route.config.resilience,
        state: route.snapshot()
      }))
    }
  }

  /**
   * Graceful shutdown: not ready at once; then, by shutdown.mode, either
   * stop accepting and let in-flight requests finish until the drain
   * deadline (stop-accepting), or go on serving new requests until the
   * deadline (keep-accepting); then cut what is left. `mode` overrides the
   * config's: a process that must stop (an uncaught exception) passes
   * stop-accepting, which also ends a keep-accepting window already running.
   */
  async close (mode?: ShutdownMode): Promise<void> {
    if (mode === 'stop-accepting') this.endAcceptWindow?.()
    this.closing ??= this.shutdown(mode ?? this.config.shutdown.mode)
    await this.closing
  }

  /** Ends a keep-accepting drain window early. */
  private endAcceptWindow: (() => void) | undefined

  private async shutdown (mode: ShutdownMode): Promise<void> {
    this.ready = false
    clearInterval(this.evaluation)
    // Deliveries stop first (what is pending stays in the store for the next start); the store stays open for the drain.
    await this.deferrals.stopDelivering()
    void this.fleetSource?.close()
    this.experiments.dispose()
    this.watcher?.close()
    const drainMs = this.config.shutdown.drainMs
    const proxy = this.proxy
    if (proxy !== undefined && mode === 'keep-accepting') {
      // A sidecar's application may still be shutting down beside it and
      // calling out: serve it for the whole window, then stop.
      this.logger.info({ drainMs, mode }, 'shutting down: still serving new requests until the drain window ends')
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        this.endAcceptWindow = resolve
        timer = setTimeout(resolve, drainMs)
      })
      clearTimeout(timer)
      this.logger.info({ drainMs }, 'drain window over: closing the listener and the remaining connections')
      const closed = proxy.close()
      proxy.server.closeAllConnections()
      await this.pools.destroyAll()
      await closed
    } else if (proxy !== undefined) {
      this.logger.info({ drainMs, mode }, 'shutting down: draining in-flight requests')
      // Connections whose last response just ended become idle: close them
      // as they do, instead of waiting for their keep-alive timeout.
      // closeIdleConnections() leaves a connection that never sent a request (a client's preconnect,
      // a spare in a client's pool): it would hold the drain until drainMs, serving nothing.
      const sweep = setInterval(() => {
        proxy.server.closeIdleConnections()
        for (const socket of this.connections) if (socket.bytesRead === 0) socket.destroy()
      }, 50)
      let deadline: NodeJS.Timeout | undefined
      const expired = new Promise<'expired'>((resolve) => { deadline = setTimeout(() => { resolve('expired') }, drainMs) })
      const result = await Promise.race([proxy.close().then(() => 'drained' as const), expired])
      clearInterval(sweep)
      clearTimeout(deadline)
      if (result === 'expired') {
        this.logger.warn({ drainMs }, 'drain deadline passed: closing the remaining connections')
        proxy.server.closeAllConnections()
        await this.pools.destroyAll()
      }
    }
    await this.deferrals.close()
    await this.pools.closeAll()
    for (const route of this.table.routes) route.dispose()
    this.fleetSwitch?.stop()
    this.fleetLevels?.stop()
    await this.fleetRedis?.close()
    await this.admin?.close()
    await this.probes?.close()
    this.alerts.close()
    this.logger.info('faultline stopped')
    this.logger.flush()
  }
}

function usesDefer (config: Config): boolean {
  return config.routes.some((r) => deferStepOf(r.resilience) !== undefined)
}

function addressOf (app: FastifyInstance | undefined): string {
  const address = app?.server.address() as AddressInfo | null | undefined
  if (!address) return ''
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  return `http://${host}:${address.port}`
}

function portOf (app: FastifyInstance | undefined): number {
  const address = app?.server.address() as AddressInfo | null | undefined
  return address?.port ?? 0
}
