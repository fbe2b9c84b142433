/**
 * A fleet for tests: several real faultline processes (the CLI, as `run`
 * starts it), each with its own ports and the same config apart from its
 * instanceId, sharing one real redis-server. Started in parallel, killed in
 * teardown. A small round-robin client spreads requests over them.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { closedPort, fetchText, type StartedProxy, type Teardown } from '../helpers.js'
import { CLI } from '../repo.js'

export const FLEET_TOKEN = 'fleet-test-token-0123456789'

export const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

export interface Replica {
  id: string
  url: string
  adminUrl: string
  child: ChildProcess
  output: () => string
  /** POST (or GET) on the admin API with the token; parsed JSON. */
  admin: (method: 'GET' | 'POST' | 'PATCH', path: string, body?: unknown) => Promise<{ status: number, json: any }>
  /** One sample value from /metrics (0 when absent). */
  metric: (name: string, labels?: Record<string, string>) => Promise<number>
}

export interface FleetOptions {
  redisUrl: string
  /** YAML for `routes:` (already indented as list items) */
  routes: string
  /** Extra YAML under `fleet:` (indented two spaces), e.g. '  pollMs: 100\n'. */
  fleet?: string
  /** Extra top-level YAML (controller, log, ...). */
  extra?: string
  size?: number
}

async function startReplica (t: Teardown, dir: string, index: number, options: FleetOptions): Promise<Replica> {
  const port = await closedPort()
  const adminPort = await closedPort()
  const id = `replica-${index}`
  const file = join(dir, `${id}.yaml`)
  await writeFile(file, [
    `listen: { host: 127.0.0.1, port: ${port} }`,
    `admin: { host: 127.0.0.1, port: ${adminPort}, token: ${FLEET_TOKEN} }`,
    'log: { level: info }',
    'reload: { watch: false }',
    options.extra ?? '',
    'fleet:',
    `  redis: { url: "${options.redisUrl}", maxReconnectDelayMs: 200 }`,
    `  instanceId: ${id}`,
    options.fleet ?? '',
    'routes:',
    options.routes
  ].join('\n'))
  const child = spawn(process.execPath, [...CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  const collect = (c: Buffer): void => { if (output.length < 512 * 1024) output += c.toString() }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  for (let i = 0; i < 600 && !output.includes('faultline ready'); i++) {
    if (child.exitCode !== null) break
    await sleep(50)
  }
  if (!output.includes('faultline ready')) throw new Error(`${id} did not start:\n${output}`)
  const adminUrl = `http://127.0.0.1:${adminPort}`
  return {
    id,
    url: `http://127.0.0.1:${port}`,
    adminUrl,
    child,
    output: () => output,
    admin: async (method, path, body) => {
      const res = await fetchText(adminUrl + path, {
        method,
        headers: { authorization: `Bearer ${FLEET_TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        timeoutMs: 5000
      })
      return { status: res.status, json: res.body.length > 0 && res.body.startsWith('{') ? JSON.parse(res.body) : res.body }
    },
    metric: async (name, labels = {}) => {
      const text = (await fetchText(adminUrl + '/metrics', { timeoutMs: 5000 })).body
      let sum = 0
      for (const line of text.split('\n')) {
        if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
      }
      return sum
    }
  }
}

export async function startFleet (t: Teardown & { testdir: () => string }, options: FleetOptions): Promise<Replica[]> {
  // One testdir call: each call empties the directory.
  const dir = t.testdir()
  return await Promise.all(Array.from({ length: options.size ?? 3 }, async (_, i) => await startReplica(t, dir, i, options)))
}

/** Waits until `what` is true, polling every 20 ms; returns whether it became true within `ms`. */
export async function until (what: () => boolean | Promise<boolean>, ms: number, everyMs = 20): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await what()) return true
    await sleep(everyMs)
  }
  return await what()
}

/** A round-robin client: request i goes to replica i mod n. */
export function roundRobin (replicas: Replica[]): (path: string) => Promise<{ replica: Replica, status: number, body: string }> {
  let next = 0
  return async (path) => {
    const replica = replicas[next++ % replicas.length] as Replica
    const res = await fetchText(replica.url + path, { timeoutMs: 5000 })
    return { replica, status: res.status, body: res.body }
  }
}

/** A route's intent engine as GET /routes shows it (the fields the fleet tests read). */
export interface IntentView { level: number, scope: string, fleet?: { role: string, evaluatedBy?: string }, controller: { halted: boolean, breaches: number, disablingLevel?: number } }

export async function intentOf (proxy: StartedProxy, name: string): Promise<IntentView> {
  const body = JSON.parse((await fetchText(proxy.adminUrl + '/routes')).body) as { routes: Array<{ name: string, state: { intent: IntentView } }> }
  const found = body.routes.find((r) => r.name === name)
  if (found === undefined) throw new Error(`no route ${name}`)
  return found.state.intent
}

/** Sends requests to one replica for `ms` (at most 400 requests, 4 at a time). */
export async function traffic (proxy: StartedProxy, path: string, ms: number): Promise<void> {
  const end = Date.now() + ms
  let sent = 0
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (Date.now() < end && sent < 400) {
      sent++
      await fetchText(proxy.url + path, { timeoutMs: 3000 }).catch(() => {})
    }
  }))
}
