/**
 * No unknown field in deploy/kubernetes/. The JSON schemas (kubernetes.test.ts)
 * check types and required fields but, like the API server without strict
 * field validation, let a misspelt field through (`readOnlyRootFileSystem`
 * would silently leave the root filesystem writable). Here every object is
 * type-checked by the TypeScript compiler against the interfaces
 * kubernetes-models declares for the same Kubernetes 1.33 API: an object
 * literal with a field its type does not have is an error
 * ("Object literal may only specify known properties").
 */
import t from 'tap'
import ts from 'typescript'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { needTool } from './helpers.js'
import { MODEL_TYPES, objectsFromFiles, parseDocs, readKustomization, renderWithKubectl, type K8sObject } from './kubernetes-objects.js'

const { path: kubectl } = needTool('kubectl')

/** The objects as one TypeScript module: each a literal of its kind's interface. */
function asModule (objects: K8sObject[]): string {
  const lines: string[] = []
  const imports = new Set<string>()
  objects.forEach((o, i) => {
    const model = MODEL_TYPES[`${o.apiVersion}/${o.kind}`]
    if (model === undefined) throw new Error(`no interface for ${o.apiVersion} ${o.kind}`)
    imports.add(`import type { ${model.type} } from '${model.module}'`)
    lines.push(`// ${o.kind} ${o.metadata.name}`, `export const o${i}: ${model.type} = ${JSON.stringify(o, null, 2)}`)
  })
  return [...imports, ...lines].join('\n') + '\n'
}

/** Type-checks each module (one compiler run for all: it is the slow part); the compiler's messages per module. */
async function typeCheck (dir: string, modules: Record<string, K8sObject[]>): Promise<Record<string, string[]>> {
  const files: Record<string, string> = {}
  // Inside the repository, so the compiler resolves kubernetes-models from its node_modules.
  for (const [name, objects] of Object.entries(modules)) {
    files[name] = join(dir, `${name}.ts`)
    await writeFile(files[name], asModule(objects))
  }
  const program = ts.createProgram(Object.values(files), { strict: true, noEmit: true, skipLibCheck: true, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [] })
  const out: Record<string, string[]> = {}
  for (const [name, file] of Object.entries(files)) {
    out[name] = ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => {
      const where = d.file !== undefined && d.start !== undefined ? ` (line ${d.file.getLineAndCharacterOfPosition(d.start).line + 1})` : ''
      return ts.flattenDiagnosticMessageText(d.messageText, ' ') + where
    })
  }
  return out
}

t.test('every object has only fields its Kubernetes 1.33 type declares', async (t) => {
  const kustomization = await readKustomization()
  const rendered = await renderWithKubectl(kubectl)
  const objects = rendered?.code === 0 ? parseDocs(rendered.stdout) : await objectsFromFiles(kustomization)
  t.ok(objects.length >= 7, `${objects.length} objects`)

  // The check can fail: one misspelt field, deep in a container, is named.
  const broken = structuredClone(objects)
  const deployment = broken.find((o) => o.kind === 'Deployment' && o.metadata.name === 'shop') as unknown as { spec: { template: { spec: { initContainers: Array<{ securityContext: Record<string, unknown> }> } } } }
  const sc = deployment.spec.template.spec.initContainers[0]!.securityContext
  delete sc.readOnlyRootFilesystem
  sc.readOnlyRootFileSystem = true
  const result = await typeCheck(t.testdir({}), { manifests: objects, broken })
  const caught = result.broken ?? []
  t.ok(caught.some((m) => m.includes("'\"readOnlyRootFileSystem\"' does not exist")), `a misspelt field is caught: ${caught.join('; ')}`)
  t.same(result.manifests, [], 'no unknown field, no wrong type')
})
