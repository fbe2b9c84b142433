/**
 * deploy/kubernetes/ as objects, for the manifest tests: rendered by the
 * real kustomize (`kubectl kustomize`) where kubectl is installed, and as
 * the plain files list them (the resources plus the generated ConfigMap).
 */
import { readFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { z } from 'zod'
import { REPO } from './docker-files.js'
import { run, type RunResult } from './observability/tools.js'

export const DEPLOY_DIR = join(REPO, 'deploy/kubernetes')

export type K8sObject = { apiVersion: string, kind: string, metadata: { name: string, namespace?: string, labels?: Record<string, string> }, [key: string]: unknown }

/** The part of kustomize this directory uses; anything else fails here, so the plain-file reading below cannot drift from kustomize's. */
export const kustomizationSchema = z.strictObject({
  apiVersion: z.literal('kustomize.config.k8s.io/v1beta1'),
  kind: z.literal('Kustomization'),
  namespace: z.string(),
  resources: z.array(z.string()),
  configMapGenerator: z.array(z.strictObject({ name: z.string(), files: z.array(z.string()), options: z.strictObject({ disableNameSuffixHash: z.literal(true) }) })),
  images: z.array(z.strictObject({ name: z.string(), newName: z.string(), newTag: z.string() }))
})
export type Kustomization = z.infer<typeof kustomizationSchema>

export function parseDocs (text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => d.toJS() as K8sObject).filter((o) => o !== null)
}

export async function readKustomization (): Promise<Kustomization> {
  return kustomizationSchema.parse(parseAllDocuments(await readFile(join(DEPLOY_DIR, 'kustomization.yaml'), 'utf8'))[0]?.toJS())
}

/** The objects as the files hold them, plus the generated ConfigMap. */
export async function objectsFromFiles (kustomization: Kustomization): Promise<K8sObject[]> {
  const objects: K8sObject[] = []
  for (const file of kustomization.resources) objects.push(...parseDocs(await readFile(join(DEPLOY_DIR, file), 'utf8')))
  for (const gen of kustomization.configMapGenerator) {
    const data: Record<string, string> = {}
    for (const file of gen.files) data[basename(file)] = await readFile(join(DEPLOY_DIR, file), 'utf8')
    objects.push({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: gen.name }, data })
  }
  return objects
}

/** What `kubectl apply -k` would send: `kubectl kustomize`'s output, or undefined without kubectl. */
export async function renderWithKubectl (kubectl: string | undefined): Promise<RunResult | undefined> {
  return kubectl === undefined ? undefined : await run(kubectl, ['kustomize', DEPLOY_DIR], { timeoutMs: 60_000 })
}

/**
 * The TypeScript interface kubernetes-models declares for each kind: the
 * field names of the same Kubernetes 1.33 API the validators check types
 * against.
 */
export const MODEL_TYPES: Record<string, { module: string, type: string }> = {
  'apps/v1/Deployment': { module: 'kubernetes-models/apps/v1/Deployment', type: 'IDeployment' },
  'v1/Service': { module: 'kubernetes-models/v1/Service', type: 'IService' },
  'v1/ConfigMap': { module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  'networking.k8s.io/v1/NetworkPolicy': { module: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', type: 'INetworkPolicy' },
  'monitoring.coreos.com/v1/PodMonitor': { module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor', type: 'IPodMonitor' }
}
