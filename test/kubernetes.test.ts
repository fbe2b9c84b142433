/**
 * deploy/kubernetes/, checked without a cluster: rendered with the real
 * kustomize (`kubectl kustomize`, where kubectl is installed) and with the
 * plain files; every object validated against the Kubernetes 1.33 OpenAPI
 * schemas (kubernetes-models 4.5.1) and the PodMonitor against the
 * Prometheus Operator CRD schema (@kubernetes-models/prometheus-operator
 * 4.4.2); the wiring between the objects and faultline's own config; and
 * the effective config the pod would read, from the ConfigMap and a Secret
 * laid out at their mount paths, through the real `faultline check` and a
 * real start.
 */
import t from 'tap'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, basename, join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { Service } from 'kubernetes-models/v1/Service'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor'
import type { IContainer } from 'kubernetes-models/v1/Container'
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec'
import { Faultline } from '../src/faultline.js'
import { loadConfigFile, parseConfig } from '../src/config/load.js'
import type { Config } from '../src/config/schema.js'
import { createLogger } from '../src/log.js'
import { LogCapture, fetchText, needTool } from './helpers.js'
import { REPO } from './docker-files.js'
import { run } from './observability/tools.js'
import { objectsFromFiles, parseDocs, readKustomization, renderWithKubectl, type K8sObject } from './kubernetes-objects.js'
import { CLI } from './repo.js'

const { path: kubectl, skip: noKubectl } = needTool('kubectl')

/** The models whose validate() checks an object against its schema, by apiVersion/kind. */
const MODELS: Record<string, new (data: never) => { validate: () => void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor
}

const kustomization = await readKustomization()
const files = await objectsFromFiles(kustomization)
/** What `kubectl apply -k` would send, when kubectl is here. */
const rendered = await renderWithKubectl(kubectl)
const objects = rendered?.code === 0 ? parseDocs(rendered.stdout) : files

const find = (kind: string, name?: string): K8sObject => {
  const o = objects.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name))
  if (o === undefined) throw new Error(`deploy/kubernetes has no ${kind} ${name ?? ''}`)
  return o
}
const deployment = find('Deployment', 'shop') as unknown as { spec: { selector: { matchLabels: Record<string, string> }, template: { metadata: { labels: Record<string, string> }, spec: IPodSpec } } }
const pod = deployment.spec.template.spec
const podLabels = deployment.spec.template.metadata.labels
const sidecar = (pod.initContainers ?? []).find((c) => c.name === 'faultline') as IContainer
const app = pod.containers.find((c) => c.name === 'app') as IContainer
const configMap = find('ConfigMap', 'faultline-config') as unknown as { data: Record<string, string> }
const configPath = (() => { const a = sidecar.args ?? []; return a[a.indexOf('--config') + 1] ?? '' })()
const mountOf = (volumeName: string) => (sidecar.volumeMounts ?? []).find((m) => (pod.volumes ?? []).some((v) => v.name === volumeName && v.name === m.name))
const configVolume = (pod.volumes ?? []).find((v) => v.configMap?.name === 'faultline-config')
const secretVolume = (pod.volumes ?? []).find((v) => v.secret !== undefined)
const configMount = mountOf(configVolume?.name ?? '')
const secretMount = mountOf(secretVolume?.name ?? '')
const TOKEN = 'k8s-test-token-0123456789abcdef'

/** The config the pod reads, parsed (tokenFile is only a path here). */
const podConfig: Config = parseConfig(parseAllDocuments(configMap.data[basename(configPath)] ?? '')[0]?.toJS(), 'faultline-config')
const portNamed = (c: IContainer, name: string): number | undefined => c.ports?.find((p) => p.name === name)?.containerPort
const matches = (selector: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => podLabels[k] === v)

t.test('kustomize renders the directory, and agrees with the plain files', { skip: noKubectl }, async (t) => {
  t.equal(rendered?.code, 0, rendered?.stderr ?? '')
  const key = (o: K8sObject) => `${o.kind}/${o.metadata.name}`
  t.same(objects.map(key).sort(), files.map(key).sort(), 'the same objects')
  for (const o of objects) t.equal(o.metadata.namespace, kustomization.namespace, `${key(o)} is in namespace ${kustomization.namespace}`)
  const image = kustomization.images[0]!
  for (const c of [...(pod.initContainers ?? []), ...pod.containers]) t.equal(c.image, `${image.newName}:${image.newTag}`, `${c.name} runs the pinned image`)
  const fileConfigMap = files.find((o) => o.kind === 'ConfigMap') as unknown as { data: Record<string, string> }
  t.same(configMap.data, fileConfigMap.data, 'the ConfigMap holds faultline.yaml byte for byte')
})

t.test('every object is valid against its schema (Kubernetes 1.33, Prometheus Operator CRDs)', async (t) => {
  t.ok(objects.length >= 7, `${objects.length} objects`)
  for (const o of objects) {
    const Model = MODELS[`${o.apiVersion}/${o.kind}`]
    t.ok(Model, `${o.apiVersion} ${o.kind} has a schema here`)
    if (Model === undefined) continue
    t.doesNotThrow(() => { new Model(o as never).validate() }, `${o.kind} ${o.metadata.name} is valid`)
  }
  // The validators can fail: a wrong type, a missing required field.
  const broken = structuredClone(find('Deployment', 'shop')) as unknown as { spec: { replicas: unknown } }
  broken.spec.replicas = 'two'
  t.throws(() => { new Deployment(broken as never).validate() }, /replicas must be integer/, 'a Deployment with replicas: "two" is refused')
  const noPort = structuredClone(find('PodMonitor')) as unknown as { spec: { podMetricsEndpoints: Array<{ interval: unknown }> } }
  noPort.spec.podMetricsEndpoints[0]!.interval = 15
  t.throws(() => { new PodMonitor(noPort as never).validate() }, /interval/, 'a PodMonitor with a numeric interval is refused')
  const version = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }
  t.equal(version.devDependencies['kubernetes-models'], '4.5.1', 'the schema version is pinned (4.5.1 = Kubernetes 1.33.0)')
})

t.test('faultline is a native sidecar with its config and token mounted as directories', async (t) => {
  t.ok(sidecar, 'faultline is an init container')
  t.equal(sidecar.restartPolicy, 'Always', 'with restartPolicy: Always (a native sidecar, Kubernetes 1.29+)')
  t.notOk(pod.containers.some((c) => c.name === 'faultline'), 'not a regular container')
  t.same(sidecar.args?.slice(0, 2), ['run', '--config'])

  t.ok(configVolume, 'a volume from the ConfigMap')
  t.equal(configMount?.mountPath, dirname(configPath), 'mounted at the directory of --config')
  t.equal(configMount?.subPath, undefined, 'as a directory, not subPath (a subPath mount is never updated)')
  t.ok(configMap.data[basename(configPath)], `the ConfigMap has ${basename(configPath)}`)

  t.ok(secretVolume, 'a volume from the token Secret')
  t.equal(secretMount?.subPath, undefined, 'the Secret too, as a directory')
  t.ok(podConfig.admin.tokenFile?.startsWith(`${secretMount?.mountPath ?? '?'}/`), `admin.tokenFile (${podConfig.admin.tokenFile}) is inside the Secret's mount`)
  t.equal(podConfig.admin.token, undefined, 'no inline token')
  t.equal(podConfig.reload.watch, true, 'ConfigMap and Secret changes are reloaded')
  t.notOk(objects.some((o) => o.kind === 'Secret'), 'no Secret (no token) in the repository')
  t.equal((secretVolume?.secret?.defaultMode ?? 0) & 0o007, 0, 'the token file is not world-readable')
  t.equal(pod.securityContext?.fsGroup, pod.securityContext?.runAsGroup, 'and readable by the pod\'s group')

  t.equal(app.env?.find((e) => e.name === 'TARGET')?.value, `http://localhost:${podConfig.listen.port}`, 'the app calls the sidecar on localhost')
  t.equal(podConfig.listen.host, '127.0.0.1', 'the proxy listens on loopback only: the pod\'s own application is its only client')
})

t.test('probes, resources, security context and the grace period', async (t) => {
  t.equal(podConfig.admin.host, '0.0.0.0', 'the admin API leaves loopback (Prometheus scrapes it)...')
  t.ok(podConfig.admin.tokenFile, '...behind a token')
  t.equal(portNamed(sidecar, 'probes'), podConfig.probes?.port, 'the probes port is the config\'s probes.port')
  t.equal(portNamed(sidecar, 'admin'), podConfig.admin.port, 'the admin port is the config\'s admin.port')
  for (const [probe, path] of [['startupProbe', '/readyz'], ['livenessProbe', '/healthz'], ['readinessProbe', '/readyz']] as const) {
    t.equal(sidecar[probe]?.httpGet?.path, path, `${probe}: ${path}`)
    t.equal(sidecar[probe]?.httpGet?.port, 'probes', `${probe} on the probe-only port`)
  }
  for (const c of [sidecar, app]) {
    t.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${c.name}: cpu and memory requests`)
    t.ok(c.resources?.limits?.memory, `${c.name}: a memory limit`)
    const sc = c.securityContext
    t.equal(sc?.runAsNonRoot, true, `${c.name}: non-root`)
    t.equal(sc?.readOnlyRootFilesystem, true, `${c.name}: read-only root filesystem`)
    t.equal(sc?.allowPrivilegeEscalation, false, `${c.name}: no privilege escalation`)
    t.same(sc?.capabilities?.drop, ['ALL'], `${c.name}: every capability dropped`)
  }
  t.equal(pod.securityContext?.runAsNonRoot, true)
  t.not(pod.securityContext?.runAsUser, 0)
  t.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault')
  t.ok((pod.terminationGracePeriodSeconds ?? 30) > podConfig.shutdown.drainMs / 1000, `terminationGracePeriodSeconds (${pod.terminationGracePeriodSeconds}) > shutdown.drainMs (${podConfig.shutdown.drainMs} ms)`)
  // The kubelet stops a native sidecar after the application has exited: nothing is left to serve.
  t.equal(podConfig.shutdown.mode, sidecar.restartPolicy === 'Always' ? 'stop-accepting' : 'keep-accepting', 'the drain mode fits the kind of sidecar')
})

t.test('metrics Service, PodMonitor and NetworkPolicy reach exactly the admin port', async (t) => {
  const service = find('Service', 'shop-faultline-metrics') as unknown as { spec: { clusterIP?: string, selector: Record<string, string>, ports: Array<{ name: string, port: number, targetPort: string }> } }
  t.ok(matches(service.spec.selector), 'the Service selects the shop pods')
  t.equal(service.spec.clusterIP, 'None', 'headless: every pod is a target')
  t.same(service.spec.ports.map((p) => [p.targetPort, p.port]), [['admin', podConfig.admin.port]])

  const monitor = find('PodMonitor') as unknown as { spec: { jobLabel: string, selector: { matchLabels: Record<string, string> }, podMetricsEndpoints: Array<{ port: string, path: string }> } }
  t.ok(matches(monitor.spec.selector.matchLabels), 'the PodMonitor selects the shop pods')
  t.equal(monitor.spec.podMetricsEndpoints[0]?.port, 'admin')
  t.equal(monitor.spec.podMetricsEndpoints[0]?.path, '/metrics')
  t.ok(podLabels[monitor.spec.jobLabel], `job comes from the pod label ${monitor.spec.jobLabel}, the service's name`)

  const policy = find('NetworkPolicy') as unknown as { spec: { podSelector: { matchLabels: Record<string, string> }, policyTypes: string[], ingress: Array<{ from?: Array<Record<string, unknown>>, ports?: Array<{ port: string | number }> }> } }
  t.ok(matches(policy.spec.podSelector.matchLabels), 'the policy selects the shop pods')
  t.ok(policy.spec.policyTypes.includes('Ingress'))
  const adminPorts = new Set<unknown>(['admin', podConfig.admin.port])
  for (const rule of policy.spec.ingress) {
    t.ok(rule.ports !== undefined && rule.ports.length > 0, 'every rule names its ports (a rule without ports opens them all)')
    for (const p of rule.ports ?? []) t.ok(p.port === 'probes' || p.port === 'admin' || p.port === podConfig.admin.port || p.port === podConfig.probes?.port, `port ${p.port} is faultline's`)
    if (!(rule.ports ?? []).some((p) => adminPorts.has(p.port))) continue
    t.same(rule.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], 'the admin port: from the monitoring namespace only')
  }
  t.ok(policy.spec.ingress.some((r) => (r.ports ?? []).some((p) => adminPorts.has(p.port))), 'a rule for the admin port exists')
})

t.test('the effective config the pod would run passes `faultline check` and starts', async (t) => {
  // Lay out the pod's view: the ConfigMap's files and the Secret at their mount paths, under a temporary root.
  const root = t.testdir({})
  const inPod = (path: string): string => join(root, path)
  for (const [name, text] of Object.entries(configMap.data)) {
    await mkdir(inPod(configMount!.mountPath), { recursive: true })
    await writeFile(join(inPod(configMount!.mountPath), name), text.replaceAll(secretMount!.mountPath, inPod(secretMount!.mountPath)))
  }
  await mkdir(inPod(secretMount!.mountPath), { recursive: true })
  await writeFile(inPod(podConfig.admin.tokenFile!), TOKEN + '\n')
  const file = inPod(configPath)

  // `check --strict` where the CLI has it (warnings fail too); plain `check` where it does not yet.
  const cli = [...CLI, 'check']
  let checked = await run(process.execPath, [...cli, '--strict', file], { timeoutMs: 60_000 })
  const strict = !/unknown option/i.test(checked.stderr)
  if (!strict) {
    t.comment('this CLI has no `check --strict` yet: plain `check`')
    checked = await run(process.execPath, [...cli, file], { timeoutMs: 60_000 })
  }
  t.equal(checked.code, 0, `faultline check${strict ? ' --strict' : ''}: ${checked.stdout}${checked.stderr}`)
  t.match(checked.stdout, /ok/)

  // And it starts: token read from the mounted Secret, probes served (ports moved to free loopback ones).
  const config = await loadConfigFile(file)
  const raw = parseAllDocuments(await readFile(file, 'utf8'))[0]?.toJS() as Record<string, Record<string, unknown>>
  const local = parseConfig({ ...raw, listen: { ...raw.listen, port: 0 }, admin: { ...raw.admin, host: '127.0.0.1', port: 0 }, probes: { host: '127.0.0.1', port: 0 } }, file)
  t.equal(config.admin.tokenFile, inPod(podConfig.admin.tokenFile!), 'the token file is the Secret\'s')
  const faultline = await Faultline.start(local, { configFile: file, logger: createLogger('warn', new LogCapture()) })
  t.teardown(async () => { await faultline.close('stop-accepting') })
  t.equal((await fetchText(`http://127.0.0.1:${faultline.probesPort}/readyz`)).status, 200, 'ready on the probe port')
  t.equal((await fetchText(`http://127.0.0.1:${faultline.adminPort}/chaos/off`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } })).status, 200, 'the token from the Secret file is the one in force')
})
