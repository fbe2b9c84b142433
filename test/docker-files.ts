/**
 * Readers for the Docker files test/docker.test.ts checks: just enough of
 * the Dockerfile, compose and PromQL syntax to compare what those files say
 * with what the code does. No Docker engine runs here, so parsing is the
 * check.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { REPO } from './repo.js'

export { REPO }

export async function repoText (path: string): Promise<string> {
  return await readFile(join(REPO, path), 'utf8')
}

// ---- Dockerfile ----

export interface Instruction {
  keyword: string
  args: string
  /** Index of the FROM stage this instruction belongs to (0-based; -1 before the first FROM). */
  stage: number
}

/** Instructions in order, with `\` continuations joined and comment lines dropped (as Docker does). */
export function parseDockerfile (text: string): Instruction[] {
  const out: Instruction[] = []
  let stage = -1
  let pending = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' '
      continue
    }
    const full = (pending + line).trim()
    pending = ''
    const m = /^(\S+)\s*(.*)$/s.exec(full)!
    const keyword = m[1]!.toUpperCase()
    if (keyword === 'FROM') stage++
    out.push({ keyword, args: m[2]!.trim(), stage })
  }
  return out
}

/** `--flag=value` options at the start of an instruction, and the rest. */
export function splitFlags (args: string): { flags: Record<string, string>, rest: string } {
  const flags: Record<string, string> = {}
  let rest = args
  for (let m = /^--([a-z-]+)=(\S+)\s*/.exec(rest); m; m = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
    flags[m[1]!] = m[2]!
    rest = rest.slice(m[0].length)
  }
  return { flags, rest }
}

/**
 * An exec-form argument list. Docker silently treats invalid JSON as shell
 * form, so this throws instead: the test must see the difference.
 */
export function execForm (args: string): string[] {
  const parsed: unknown = JSON.parse(args)
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`not an exec-form string array: ${args}`)
  return parsed
}

// ---- compose ----

export interface PortMapping { hostIp: string | undefined, hostPort: number | undefined, containerPort: number }

/** Compose short syntax: [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTOCOL]. */
export function parsePort (spec: string): PortMapping {
  const m = /^(?:(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(\d+):)?(\d+)(?:\/(?:tcp|udp))?$/.exec(spec)
  if (!m) throw new Error(`unexpected port syntax: ${spec}`)
  return { hostIp: m[1], hostPort: m[2] === undefined ? undefined : Number(m[2]), containerPort: Number(m[3]) }
}

export interface Mount { source: string, target: string, readOnly: boolean }

/** Compose short syntax: SOURCE:TARGET[:MODE]. */
export function parseVolume (spec: string): Mount {
  const [source, target, mode] = spec.split(':')
  if (source === undefined || target === undefined) throw new Error(`unexpected volume syntax: ${spec}`)
  return { source, target, readOnly: mode === 'ro' }
}

/** The default of a compose `${VAR:-default}` value, and the variable's name. */
export function composeDefault (value: string): { variable: string, fallback: string } | undefined {
  const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}$/.exec(value)
  return m ? { variable: m[1]!, fallback: m[2]! } : undefined
}

// ---- PromQL ----

const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'inf', 'nan'])
const LABEL_LIST = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g

/** Removes what is not a selector name: strings, matchers, ranges, label lists, Grafana variables. */
function stripped (expr: string): string {
  return expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(LABEL_LIST, '')
    .replace(/\boffset\s+\S+/g, '')
    .replace(/\$\{?\w+\}?/g, '')
}

/** Metric names an expression selects: identifiers that are not functions, keywords or numbers. */
export function promqlMetricNames (expr: string): string[] {
  const s = stripped(expr)
  const names = new Set<string>()
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const before = s[m.index - 1]
    if (before !== undefined && /[0-9.]/.test(before)) continue // exponent of a number such as 1e3
    if (s.slice(m.index + m[0].length).trimStart().startsWith('(')) continue
    if (KEYWORDS.has(m[0].toLowerCase())) continue
    names.add(m[0])
  }
  return [...names]
}

/** Label names an expression uses, in matchers and in by/without/on/ignoring lists. */
export function promqlLabelNames (expr: string): string[] {
  const labels = new Set<string>()
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')
  for (const block of noStrings.matchAll(/\{([^}]*)\}/g)) {
    for (const m of block[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.add(m[1]!)
  }
  for (const list of noStrings.matchAll(LABEL_LIST)) {
    for (const name of list[1]!.split(',')) if (name.trim() !== '') labels.add(name.trim())
  }
  return [...labels]
}
