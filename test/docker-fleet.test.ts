/**
 * docker/fleet/compose.yml (three replicas with their sidecars, Redis,
 * Prometheus), checked by parsing the files as test/docker.test.ts does (no
 * Docker engine here): every mount exists, the replicas' config is valid and
 * points at the compose services, Prometheus scrapes each replica by the
 * name its admin API allows, every port is loopback-only.
 */
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { loadConfigFile } from '../src/config/load.js'
import { REPO, repoText, parsePort, parseVolume } from './docker-files.js'

const DIR = join(REPO, 'docker', 'fleet')
const service = z.looseObject({
  image: z.string().optional(),
  network_mode: z.string().optional(),
  environment: z.record(z.string(), z.string()).optional(),
  ports: z.array(z.string()).optional(),
  volumes: z.array(z.string()).optional(),
  depends_on: z.record(z.string(), z.object({ condition: z.string() })).optional()
})
const compose = z.looseObject({ services: z.record(z.string(), service) }).parse(parseYaml(await repoText('docker/fleet/compose.yml')))
const services = compose.services
const sidecars = Object.keys(services).filter((name) => /^faultline-\d$/.test(name))

t.test('three replicas, each a sidecar in its app\'s namespace, with a distinct instance id', async (t) => {
  t.same(sidecars.sort(), ['faultline-1', 'faultline-2', 'faultline-3'])
  const ids = new Set<string>()
  for (const name of sidecars) {
    const s = services[name]!
    const n = name.slice(-1)
    t.equal(s.network_mode, `service:app-${n}`, `${name} shares app-${n}'s network`)
    t.ok(services[`app-${n}`], `app-${n} exists`)
    t.equal(s.depends_on?.redis?.condition, 'service_healthy', `${name} waits for Redis`)
    ids.add(s.environment?.FAULTLINE_INSTANCE_ID ?? '')
  }
  t.equal(ids.size, 3, 'three instance ids')
})

t.test('every mounted file exists and every published port is loopback-only', async (t) => {
  for (const [name, s] of Object.entries(services)) {
    for (const v of s.volumes ?? []) t.ok(existsSync(join(DIR, parseVolume(v).source)), `${name}: ${v}`)
    for (const p of s.ports ?? []) t.equal(parsePort(p).hostIp, '127.0.0.1', `${name}: ${p}`)
  }
})

t.test('the replicas\' config is valid and names the compose services', async (t) => {
  const config = await loadConfigFile(join(DIR, 'faultline.yaml'), { FAULTLINE_ADMIN_TOKEN: 'test-admin-token-0123456789', FAULTLINE_INSTANCE_ID: 'replica-1' })
  t.ok(config.fleet, 'fleet control is on')
  const redis = new URL(config.fleet!.redis.url)
  t.ok(services[redis.hostname], `fleet.redis.url names the ${redis.hostname} service`)
  t.equal(config.fleet!.instanceId, 'replica-1')
  t.equal(config.controller.source, 'prometheus')
  const prom = new URL(config.controller.prometheus!.url)
  t.ok(services[prom.hostname], 'controller.prometheus.url names the prometheus service')
  const prometheus = z.looseObject({ scrape_configs: z.array(z.looseObject({ static_configs: z.array(z.looseObject({ targets: z.array(z.string()) })) })) })
    .parse(parseYaml(await repoText('docker/fleet/prometheus.yml')))
  const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets))
  t.same(targets.sort(), ['app-1:9901', 'app-2:9901', 'app-3:9901'], 'Prometheus scrapes each replica')
  for (const target of targets) t.ok(config.admin.allowedHosts.includes(target.split(':')[0]!), `${target} is an allowed admin host`)
  t.ok(targets.every((target) => target.endsWith(`:${config.admin.port}`)), 'on admin.port')
})
