/**
 * The Docker files, checked by parsing them (no Docker engine runs here):
 * docker-compose.yml, Dockerfile, .dockerignore, docker/faultline.yaml, the
 * Prometheus config and the Grafana provisioning and dashboard must agree
 * with each other and with the code: the schema's default ports, the admin
 * API's paths, the metric names the registry really exports.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { configSchema } from '../src/config/schema.js'
import { loadConfigFile } from '../src/config/load.js'
import { ConfigError } from '../src/config/errors.js'
import { isLoopbackHost as isLoopback } from '../src/config/schema.js'
import { Metrics } from '../src/metrics/metrics.js'
import { DEMO_CALLS } from '../src/demo/client.js'
import { closedPort, route, scrape, startProxy, startUpstream, fetchText, type Teardown } from './helpers.js'
import {
  REPO, repoText, parseDockerfile, splitFlags, execForm, parsePort, parseVolume, composeDefault,
  promqlMetricNames, promqlLabelNames, type Instruction
} from './docker-files.js'
import { startBusyProxy } from './observability/workload.js'

const run = promisify(execFile)
const TEST_TOKEN = 'test-admin-token-0123456789'

// ---- the files, parsed once ----

/** The part of the compose format these files use; anything else fails the parse. */
const serviceSchema = z.looseObject({
  image: z.string().optional(),
  build: z.object({ context: z.string(), dockerfile: z.string() }).optional(),
  entrypoint: z.array(z.string()).optional(),
  environment: z.record(z.string(), z.string()).optional(),
  ports: z.array(z.string()).optional(),
  expose: z.array(z.string()).optional(),
  volumes: z.array(z.string()).optional(),
  network_mode: z.string().optional(),
  stop_grace_period: z.string().optional(),
  healthcheck: z.object({ test: z.array(z.string()).optional(), disable: z.boolean().optional() }).loose().optional(),
  depends_on: z.record(z.string(), z.object({ condition: z.string() })).optional()
})
const composeSchema = z.looseObject({ services: z.record(z.string(), serviceSchema) })
type Service = z.infer<typeof serviceSchema>

const compose = composeSchema.parse(parseYaml(await repoText('docker-compose.yml')))
const dockerfile = parseDockerfile(await repoText('Dockerfile'))
const dockerignore = (await repoText('.dockerignore')).split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
const prometheus = z.object({
  global: z.object({ scrape_interval: z.string() }).loose(),
  scrape_configs: z.array(z.object({
    job_name: z.string(),
    metrics_path: z.string().optional(),
    static_configs: z.array(z.object({ targets: z.array(z.string()) }).loose())
  }).loose())
}).loose().parse(parseYaml(await repoText('docker/prometheus/prometheus.yml')))
const datasources = z.object({
  datasources: z.array(z.object({ uid: z.string(), type: z.string(), url: z.string(), jsonData: z.object({ timeInterval: z.string() }).loose() }).loose())
}).loose().parse(parseYaml(await repoText('docker/grafana/provisioning/datasources/prometheus.yml')))
const dashboardProviders = z.object({
  providers: z.array(z.object({ type: z.literal('file'), options: z.object({ path: z.string() }) }).loose())
}).loose().parse(parseYaml(await repoText('docker/grafana/provisioning/dashboards/faultline.yml')))

const DOCKER_CONFIG = join(REPO, 'docker/faultline.yaml')
const dockerConfig = await loadConfigFile(DOCKER_CONFIG, { FAULTLINE_ADMIN_TOKEN: TEST_TOKEN })
/** The product's defaults, read from the schema rather than written down again. */
const defaults = configSchema.parse({ routes: [{ name: 'x', match: { pathPrefix: '/' }, upstream: { url: 'http://127.0.0.1:1' } }] })

function service (name: string): Service {
  const s = compose.services[name]
  if (s === undefined) throw new Error(`docker-compose.yml has no service "${name}"`)
  return s
}
const mounts = (s: Service) => (s.volumes ?? []).map(parseVolume)
const published = (s: Service) => (s.ports ?? []).map(parsePort)
const finalStage = Math.max(...dockerfile.map((i) => i.stage))
const inFinal = (keyword: string): Instruction[] => dockerfile.filter((i) => i.keyword === keyword && i.stage === finalStage)
/** The last ENTRYPOINT/CMD of the image, as Docker would run it. */
const imageArgv = (keyword: 'ENTRYPOINT' | 'CMD'): string[] => execForm(inFinal(keyword).at(-1)?.args ?? '[]')
/** The config path the image's CMD passes to `faultline run --config`. */
function imageConfigPath (): string | undefined {
  const cmd = imageArgv('CMD')
  const i = cmd.indexOf('--config')
  return i === -1 ? undefined : cmd[i + 1]
}
const seconds = (d: string): number => {
  const m = /^(\d+)(ms|s|m)$/.exec(d)
  if (!m) throw new Error(`unexpected duration: ${d}`)
  return Number(m[1]) * ({ ms: 0.001, s: 1, m: 60 } as const)[m[2] as 'ms' | 's' | 'm']
}

/**
 * Real series from real proxies: requests that succeed, get a 5xx and cannot
 * connect, plus the observability workload (retries, breaker, cache,
 * faults), so every metric the dashboard reads has its labels present.
 */
async function realSeries (t: Teardown): Promise<{ adminUrl: string, labelsOf: Map<string, Set<string>> }> {
  const upstream = await startUpstream(t, (req, res) => { res.statusCode = req.url?.startsWith('/fail') === true ? 503 : 200; res.end('x') })
  const proxy = await startProxy(t, {
    routes: [route('ok', '/ok', upstream.url), route('fail', '/fail', upstream.url), route('down', '/down', `http://127.0.0.1:${await closedPort()}`)]
  })
  for (const path of ['/ok', '/fail', '/down', '/nowhere']) await fetchText(proxy.url + path)
  const labelsOf = new Map<string, Set<string>>()
  // And a proxy with every policy and fault, for the retry, breaker, cache and chaos series.
  const busy = await startBusyProxy(t)
  for (const s of [...await scrape(proxy), ...await scrape(busy.proxy)]) {
    const set = labelsOf.get(s.name) ?? new Set<string>()
    for (const k of Object.keys(s.labels)) set.add(k)
    labelsOf.set(s.name, set)
  }
  return { adminUrl: proxy.adminUrl, labelsOf }
}

// ---- docker/faultline.yaml ----

t.test('docker/faultline.yaml is valid and exposes the admin API only behind a token', async (t) => {
  t.notOk(isLoopback(dockerConfig.admin.host), `admin.host (${dockerConfig.admin.host}) is not loopback: Prometheus, in another container, must reach it`)
  t.equal(dockerConfig.admin.token, TEST_TOKEN, 'admin.token comes from FAULTLINE_ADMIN_TOKEN')
  t.notOk(isLoopback(dockerConfig.listen.host), 'the proxy listens beyond loopback, so the published port reaches it')
  t.equal(dockerConfig.listen.port, defaults.listen.port, 'proxy port is the product default')
  t.equal(dockerConfig.admin.port, defaults.admin.port, 'admin port is the product default')
  await t.rejects(loadConfigFile(DOCKER_CONFIG, {}), ConfigError, 'without FAULTLINE_ADMIN_TOKEN the config is refused')

  // The same routes as the demo, only pointed at the compose service.
  const demo = await loadConfigFile(join(REPO, 'config/demo.yaml'), {})
  const shape = (c: typeof demo) => c.routes.map((r) => ({ name: r.name, match: r.match, resilience: r.resilience }))
  t.same(shape(dockerConfig), shape(demo), 'routes mirror config/demo.yaml')

  // Every call the demo client makes lands on the route it is named after.
  for (const call of DEMO_CALLS) {
    const matches = dockerConfig.routes
      .filter((r) => call.path === r.match.pathPrefix || call.path.startsWith(r.match.pathPrefix + '/') || call.path.startsWith(r.match.pathPrefix + '?'))
      .filter((r) => r.match.methods === undefined || r.match.methods.includes(call.method))
      .sort((a, b) => b.match.pathPrefix.length - a.match.pathPrefix.length)
    t.equal(matches[0]?.name, call.route, `${call.method} ${call.path} is routed to ${call.route}`)
  }
})

// ---- docker-compose.yml ----

t.test('compose: the services and the sidecar wiring', async (t) => {
  t.same(Object.keys(compose.services).sort(), ['app', 'faultline', 'grafana', 'prometheus', 'upstream'])
  const app = service('app')
  const faultline = service('faultline')
  const upstream = service('upstream')

  t.equal(faultline.network_mode, 'service:app', 'faultline shares the app\'s network namespace')
  t.equal(faultline.ports, undefined, 'a service in another\'s namespace cannot publish ports')
  t.same(faultline.entrypoint, undefined, 'faultline runs the image\'s own entrypoint')

  for (const name of ['app', 'faultline', 'upstream']) {
    const s = service(name)
    t.same(s.build, { context: '.', dockerfile: 'Dockerfile' }, `${name} is built from this repo's Dockerfile`)
    t.equal(s.image, app.image, `${name} shares one image tag`)
  }

  // The app calls its dependency through the sidecar on localhost.
  t.equal(app.environment?.TARGET, `http://localhost:${dockerConfig.listen.port}`)
  t.same(app.entrypoint, ['node', 'dist/demo/client.js'])
  t.ok(existsSync(join(REPO, 'src/demo/client.ts')), 'dist/demo/client.js is built from src/demo/client.ts')
  t.same(upstream.entrypoint, ['node', 'dist/demo/upstream.js'])
  t.ok(existsSync(join(REPO, 'src/demo/upstream.ts')))

  // Every route's upstream is the `upstream` service, on the port it listens on.
  const upstreamPort = Number(upstream.environment?.PORT)
  t.ok(upstreamPort > 0, 'the upstream service sets PORT')
  for (const r of dockerConfig.routes) {
    const url = new URL(r.upstream.url)
    t.equal(url.hostname, 'upstream', `${r.name} goes to the upstream service`)
    t.equal(Number(url.port), upstreamPort, `${r.name} uses the upstream's PORT`)
  }
  t.ok(upstream.healthcheck?.test?.some((a) => a.includes(`:${upstreamPort}/healthz`)), 'the upstream healthcheck probes its own port')
  t.equal(app.healthcheck?.disable, true, 'the image\'s faultline healthcheck is off for the app')
  t.equal(faultline.depends_on?.upstream?.condition, 'service_healthy')

  // The admin token: from the environment, with a development default that passes validation.
  const token = composeDefault(faultline.environment?.FAULTLINE_ADMIN_TOKEN ?? '')
  t.equal(token?.variable, 'FAULTLINE_ADMIN_TOKEN', 'the token is taken from the environment')
  t.match(token?.fallback, /dev/, 'the default says it is for development')
  const withDefault = await loadConfigFile(DOCKER_CONFIG, { FAULTLINE_ADMIN_TOKEN: token?.fallback })
  t.equal(withDefault.admin.token, token?.fallback, 'docker/faultline.yaml accepts the default token')

  // Docker's grace period must outlast faultline's own drain.
  t.ok(seconds(faultline.stop_grace_period ?? '10s') > dockerConfig.shutdown.drainMs / 1000, 'stop_grace_period > shutdown.drainMs')
})

t.test('compose: published ports agree with docker/faultline.yaml and the schema defaults', async (t) => {
  const ports = published(service('app'))
  const expected = [defaults.listen.port, defaults.admin.port].sort()
  t.same(ports.map((p) => p.containerPort).sort(), [dockerConfig.listen.port, dockerConfig.admin.port].sort(), 'the app publishes the sidecar\'s listen and admin ports')
  t.same(ports.map((p) => p.containerPort).sort(), expected, 'which are the product defaults')
  t.same(ports.map((p) => p.hostPort).sort(), expected, 'on the same host ports')
  let count = 0
  for (const [name, s] of Object.entries(compose.services)) {
    for (const p of published(s)) {
      count++
      t.equal(p.hostIp, '127.0.0.1', `${name} publishes ${p.containerPort} on loopback only`)
    }
  }
  t.ok(count >= 4, 'app (2), prometheus and grafana publish ports')
})

t.test('compose: every mounted host path exists and is mounted read-only', async (t) => {
  let count = 0
  for (const [name, s] of Object.entries(compose.services)) {
    for (const m of mounts(s)) {
      count++
      t.match(m.source, /^\.\//, `${name}: ${m.source} is a path in the repo`)
      t.ok(existsSync(join(REPO, m.source)), `${name}: ${m.source} exists`)
      t.ok(m.readOnly, `${name}: ${m.source} is read-only`)
    }
  }
  t.ok(count >= 4, 'faultline, prometheus and grafana mount their configs')
  const config = mounts(service('faultline')).find((m) => m.source === './docker/faultline.yaml')
  t.ok(config, 'faultline mounts docker/faultline.yaml')
  t.equal(config?.target, imageConfigPath(), 'where the image\'s CMD reads its config')
})

// ---- Prometheus ----

t.test('Prometheus scrapes the sidecar\'s admin port at the admin API\'s /metrics path', async (t) => {
  const job = prometheus.scrape_configs.find((j) => j.job_name === 'faultline')
  t.ok(job, 'a faultline job')
  const targets = job?.static_configs.flatMap((c) => c.targets) ?? []
  t.equal(targets.length, 1)
  const [host, port] = (targets[0] ?? '').split(':')
  // The sidecar has no name of its own on the network: it answers as the namespace's owner.
  t.equal(`service:${host}`, service('faultline').network_mode, 'the target host owns faultline\'s network namespace')
  t.equal(Number(port), dockerConfig.admin.port, 'the target port is admin.port')
  t.equal(prometheus.global.scrape_interval, '5s')
  t.ok(mounts(service('prometheus')).some((m) => m.source === './docker/prometheus/prometheus.yml' && m.target === '/etc/prometheus/prometheus.yml'))

  // The path, against the real admin API.
  const { adminUrl } = await realSeries(t)
  const res = await fetchText(adminUrl + (job?.metrics_path ?? '/metrics'))
  t.equal(res.status, 200)
  t.match(res.body, /^faultline_requests_total\{/m, 'the scrape path serves faultline\'s metrics')
})

// ---- Grafana provisioning ----

t.test('Grafana: anonymous viewers, the provisioned datasource and dashboards', async (t) => {
  const grafana = service('grafana')
  t.equal(grafana.environment?.GF_AUTH_ANONYMOUS_ENABLED, 'true')
  t.equal(grafana.environment?.GF_AUTH_ANONYMOUS_ORG_ROLE, 'Viewer', 'anonymous users can look, not edit')
  t.ok(mounts(grafana).some((m) => m.source === './docker/grafana/provisioning' && m.target === '/etc/grafana/provisioning'))

  const ds = datasources.datasources[0]
  t.equal(datasources.datasources.length, 1)
  t.equal(ds?.type, 'prometheus')
  const url = new URL(ds?.url ?? '')
  t.ok(compose.services[url.hostname], `the datasource host ${url.hostname} is a compose service`)
  t.ok(published(service(url.hostname)).some((p) => p.containerPort === Number(url.port)), 'on the port that service serves')
  t.equal(ds?.jsonData.timeInterval, prometheus.global.scrape_interval, 'timeInterval matches the scrape interval')

  const dashboards = mounts(grafana).find((m) => m.source === './docker/grafana/dashboards')
  t.ok(dashboards, 'the dashboards folder is mounted')
  t.equal(dashboardProviders.providers[0]?.options.path, dashboards?.target, 'the provider reads the mounted folder')
  t.equal(grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH, `${dashboards?.target}/faultline.json`, 'the home dashboard is a mounted file')
  const home = JSON.parse(await repoText('docker/grafana/dashboards/faultline.json')) as { panels?: unknown[] }
  t.ok((home.panels?.length ?? 0) > 0, 'the home dashboard is a dashboard with panels')
})

// ---- Dockerfile and .dockerignore ----

t.test('Dockerfile: stages, user, dependencies, ports, entrypoint', async (t) => {
  const froms = dockerfile.filter((i) => i.keyword === 'FROM')
  t.ok(froms.length >= 2, 'multi-stage')
  const stageNames = froms.map((f) => / AS (\S+)$/i.exec(f.args)?.[1])
  for (const from of froms) {
    const image = from.args.split(/\s+/)[0] ?? ''
    const major = Number(/^node:(\d+)-bookworm-slim$/.exec(image)?.[1])
    t.ok(major >= 20 && major % 2 === 0, `${image}: a pinned major of an LTS line (even)`)
  }
  for (const copy of dockerfile.filter((i) => i.keyword === 'COPY')) {
    const from = splitFlags(copy.args).flags.from
    if (from !== undefined) t.ok(stageNames.slice(0, copy.stage).includes(from), `COPY --from=${from} names an earlier stage`)
  }

  const user = inFinal('USER').at(-1)?.args
  t.ok(user !== undefined && !/^(root|0)(:|$)/.test(user), `runs as a non-root user (${user})`)
  t.ok(inFinal('ENV').some((e) => /\bNODE_ENV=production\b/.test(e.args)))
  const installs = inFinal('RUN').filter((r) => /\bnpm ci\b/.test(r.args))
  t.ok(installs.length > 0, 'the runtime stage installs with npm ci')
  for (const r of installs) t.match(r.args, /--omit=dev/, 'production dependencies only')

  const exposed = inFinal('EXPOSE').flatMap((e) => e.args.split(/\s+/)).map(Number)
  t.ok(exposed.includes(dockerConfig.listen.port) && exposed.includes(dockerConfig.admin.port), `EXPOSE ${exposed.join(' ')}`)

  t.same(imageArgv('ENTRYPOINT'), ['node', 'dist/cli.js'])
  t.ok(existsSync(join(REPO, 'src/cli.ts')), 'dist/cli.js is built from src/cli.ts')
  t.equal(imageArgv('CMD')[0], 'run')
  t.ok(imageConfigPath()?.startsWith('/'), 'an absolute config path')
})

t.test('Dockerfile: the HEALTHCHECK probes the admin /healthz, and works', async (t) => {
  const hc = inFinal('HEALTHCHECK').at(-1)
  const { flags, rest } = splitFlags(hc?.args ?? '')
  t.ok(seconds(flags.timeout ?? '30s') <= seconds(flags.interval ?? '30s'), 'timeout within interval')
  t.match(rest, /^CMD /, 'a command, not NONE')
  const argv = execForm(rest.replace(/^CMD\s+/, ''))
  t.equal(argv[0], 'node', 'no curl in a slim image: node probes')
  const script = argv.at(-1) ?? ''
  const url = `127.0.0.1:${dockerConfig.admin.port}/healthz`
  t.ok(script.includes(url), `probes ${url}`)

  // Run the probe itself, pointed at a real admin API, then at nothing.
  const { adminUrl } = await realSeries(t)
  const live = script.replace(url, `${new URL(adminUrl).host}/healthz`)
  const ok = await run(process.execPath, argv.slice(1, -1).concat(live), { timeout: 10_000 }).then(() => 0, (err: { code?: number }) => err.code)
  t.equal(ok, 0, 'exit 0 when /healthz answers')
  const dead = script.replace(url, `127.0.0.1:${await closedPort()}/healthz`)
  const failed = await run(process.execPath, argv.slice(1, -1).concat(dead), { timeout: 10_000 }).then(() => 0, (err: { code?: number }) => err.code)
  t.equal(failed, 1, 'exit 1 when nothing answers')
})

t.test('.dockerignore keeps local build output out, and nothing the Dockerfile copies', async (t) => {
  for (const required of ['node_modules', 'dist', '.git']) t.ok(dockerignore.includes(required), `ignores ${required}`)
  let count = 0
  for (const copy of dockerfile.filter((i) => i.keyword === 'COPY')) {
    const { flags, rest } = splitFlags(copy.args)
    if (flags.from !== undefined) continue
    for (const source of rest.split(/\s+/).slice(0, -1)) {
      count++
      t.ok(existsSync(join(REPO, source)), `${source} exists`)
      const top = source.replace(/^\.\//, '').split('/')[0] ?? ''
      t.notOk(dockerignore.some((p) => p === top || p === source), `${source} is not ignored`)
    }
  }
  t.ok(count >= 5, 'package files, tsconfigs, src and config are copied')
})

// ---- the Grafana dashboard ----

const target = z.object({ expr: z.string(), refId: z.string(), datasource: z.object({ uid: z.string() }).loose() }).loose()
const panel = z.object({
  id: z.number(),
  type: z.string(),
  title: z.string(),
  datasource: z.object({ uid: z.string() }).loose().optional(),
  gridPos: z.object({ x: z.number(), y: z.number(), w: z.number(), h: z.number() }),
  targets: z.array(target).optional()
}).loose()
const dashboardSchema = z.object({
  uid: z.string(),
  schemaVersion: z.number(),
  templating: z.object({
    list: z.array(z.object({
      name: z.string(),
      type: z.string(),
      // A datasource variable has neither; its query is the plugin type.
      datasource: z.object({ uid: z.string() }).loose().optional(),
      definition: z.string().optional(),
      query: z.union([z.string(), z.object({ query: z.string() }).loose()])
    }).loose())
  }),
  annotations: z.object({ list: z.array(z.object({ name: z.string(), datasource: z.object({ uid: z.string() }).loose(), expr: z.string().optional() }).loose()) }),
  panels: z.array(panel),
  __inputs: z.array(z.object({ name: z.string(), type: z.string(), pluginId: z.string() }).loose()),
  __requires: z.array(z.object({ type: z.string(), id: z.string() }).loose())
}).loose()

/** Labels Prometheus adds to every series from the scrape target (the PodMonitor, or the compose scrape job), not faultline. */
const TARGET_LABELS = new Set(['namespace', 'job', 'instance'])
/** The datasource reference every query carries: the dashboard's own variable, never a fixed uid. */
const DATASOURCE_VAR = '${datasource}'
const varQuery = (v: { query: string | { query: string } }): string => typeof v.query === 'string' ? v.query : v.query.query

t.test('the Grafana dashboard imports into any Grafana: __inputs, a datasource variable, no fixed uid', async (t) => {
  const text = await repoText('docker/grafana/dashboards/faultline.json')
  const dashboard = dashboardSchema.parse(JSON.parse(text))
  const uid = datasources.datasources[0]?.uid ?? ''
  t.notOk(text.includes(uid), `the provisioned uid "${uid}" appears nowhere`)
  t.same(dashboard.__inputs.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']], 'one input: a Prometheus data source, chosen at import')
  const placeholders = new Set([...text.matchAll(/\$\{(DS_[A-Z_]+)\}/g)].map((m) => m[1]))
  t.same([...placeholders], ['DS_PROMETHEUS'], 'every ${DS_*} placeholder is a declared input, and the input is used')
  const dsVar = dashboard.templating.list.find((v) => v.type === 'datasource')
  t.equal(dsVar?.name, 'datasource')
  t.equal(dsVar?.query, 'prometheus', 'lists Prometheus data sources')
  t.match(JSON.stringify(dsVar), /\$\{DS_PROMETHEUS\}/, 'defaults to the data source picked at import')
  const refs = [
    ...dashboard.templating.list.filter((v) => v.type !== 'datasource').map((v) => [`variable ${v.name}`, v.datasource?.uid] as const),
    ...dashboard.annotations.list.filter((a) => a.expr !== undefined).map((a) => [`annotation ${a.name}`, a.datasource.uid] as const),
    ...dashboard.panels.filter((p) => p.type !== 'row').flatMap((p) => [[p.title, p.datasource?.uid] as const, ...(p.targets ?? []).map((x) => [`${p.title} ${x.refId}`, x.datasource.uid] as const)])
  ]
  t.ok(refs.length > 40)
  for (const [what, ref] of refs) t.equal(ref, DATASOURCE_VAR, `${what}: uses \${datasource}`)
  const panelTypes = new Set(dashboard.panels.map((p) => p.type).filter((x) => x !== 'row'))
  const required = new Set(dashboard.__requires.filter((r) => r.type === 'panel').map((r) => r.id))
  for (const type of panelTypes) t.ok(required.has(type), `__requires lists the ${type} panel`)
  t.ok(dashboard.__requires.some((r) => r.type === 'datasource' && r.id === 'prometheus'))
})

t.test('dashboard and alert rules aggregate by service (namespace, job) as well as route', async (t) => {
  const dashboard = dashboardSchema.parse(JSON.parse(await repoText('docker/grafana/dashboards/faultline.json')))
  const names = dashboard.templating.list.map((v) => v.name)
  t.same(names, ['datasource', 'namespace', 'job', 'instance', 'route', 'upstream'], 'variables, each narrowing the next')
  const exprs: Array<[string, string]> = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => [p.title, x.expr] as [string, string]))
  const rules = parseYaml(await repoText('docker/prometheus/alerts.yml')) as { groups: Array<{ rules: Array<{ record?: string, alert?: string, expr: string }> }> }
  for (const r of rules.groups.flatMap((g) => g.rules)) exprs.push([`rule ${r.alert ?? r.record ?? ''}`, r.expr])
  let grouped = 0
  for (const [what, expr] of exprs) {
    for (const m of expr.matchAll(/\bby \(([^)]*)\)/g)) {
      const labels = m[1]!.split(',').map((l) => l.trim())
      if (!labels.includes('route')) continue
      grouped++
      t.ok(labels.includes('namespace') && labels.includes('job'), `${what}: by (${m[1]}) keeps namespace and job`)
    }
  }
  t.ok(grouped >= 30, `${grouped} per-route aggregations`)
  for (const p of dashboard.panels) {
    for (const x of p.targets ?? []) {
      for (const name of promqlMetricNames(x.expr)) {
        if (!name.startsWith('faultline_')) continue
        t.match(x.expr, new RegExp(`${name}\\{namespace=~"\\$namespace", job=~"\\$job", instance=~"\\$instance"`), `${p.title}: ${name} is filtered by namespace, job and instance`)
      }
    }
  }
})

t.test('the PromQL readers find names and labels (so the dashboard checks can fail)', async (t) => {
  const expr = 'histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{route=~"$route", x="y z"}[$__rate_interval]))) / on (route) b_total * 1e3 > bool 0'
  t.same(promqlMetricNames(expr).sort(), ['a_bucket', 'b_total'])
  t.same(promqlLabelNames(expr).sort(), ['le', 'route', 'x'])
})

t.test('the Grafana dashboard reads only metrics and labels faultline exports', async (t) => {
  const dashboard = dashboardSchema.parse(JSON.parse(await repoText('docker/grafana/dashboards/faultline.json')))
  const uid = DATASOURCE_VAR
  t.equal(dashboard.uid, 'faultline')
  t.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`)

  // Names from the registry itself; histograms are read through their series suffixes.
  const exported = new Map((await new Metrics().registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]))
  const metricOf = (name: string): string | undefined => {
    if (exported.has(name)) return name
    const base = name.replace(/_(bucket|sum|count)$/, '')
    return base !== name && exported.get(base) === 'histogram' ? base : undefined
  }
  const { labelsOf } = await realSeries(t)

  const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]))
  for (const name of ['namespace', 'job', 'instance', 'route', 'upstream']) {
    const v = vars.get(name)
    const query = v === undefined ? '' : varQuery(v)
    t.equal(v?.type, 'query', `variable ${name} is a query`)
    t.equal(v?.datasource?.uid, uid, `variable ${name} uses the dashboard's datasource variable`)
    t.equal(v?.definition, query, `variable ${name}: the query shown is the query run`)
    const m = /^label_values\(([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(query)
    t.ok(m && metricOf(m[1]!), `${name}: label_values over an exported metric (${query})`)
    t.ok(m && (labelsOf.get(m[1]!)?.has(m[2]!) === true || TARGET_LABELS.has(m[2]!)), `${name}: the metric has the label ${m?.[2]}`)
  }

  const used = new Set<string>()
  const ids = new Set<number>()
  let exprs = 0
  for (const p of dashboard.panels) {
    t.notOk(ids.has(p.id), `panel id ${p.id} is unique`)
    ids.add(p.id)
    t.ok(p.gridPos.x + p.gridPos.w <= 24, `${p.title} fits the 24-column grid`)
    if (p.type === 'row') continue
    t.equal(p.datasource?.uid, uid, `${p.title}: the datasource variable`)
    for (const target of p.targets ?? []) {
      exprs++
      t.equal(target.datasource.uid, uid, `${p.title} ${target.refId}: the datasource variable`)
      const names = promqlMetricNames(target.expr)
      t.ok(names.length > 0, `${p.title}: selects a metric`)
      const seen = new Set<string>()
      for (const name of names) {
        t.ok(metricOf(name), `${p.title}: ${name} is exported by src/metrics/metrics.ts`)
        used.add(name)
        for (const l of labelsOf.get(name) ?? []) seen.add(l)
      }
      for (const label of promqlLabelNames(target.expr)) t.ok(seen.has(label) || TARGET_LABELS.has(label), `${p.title}: label ${label} is on ${names.join(', ')}`)
    }
  }
  t.ok(exprs >= 6, `${exprs} queries`)
  for (const name of ['faultline_requests_total', 'faultline_request_duration_seconds_bucket', 'faultline_upstream_errors_total', 'faultline_config_reloads_total']) {
    t.ok(used.has(name), `a panel reads ${name}`)
  }
  const quantiles = dashboard.panels.flatMap((p) => p.targets ?? []).map((x) => /histogram_quantile\(([\d.]+)/.exec(x.expr)?.[1]).filter(Boolean)
  t.same(quantiles.sort(), ['0.5', '0.99'], 'p50 and p99 panels')
})
