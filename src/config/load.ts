/**
 * Reading a config: file -> YAML/JSON document -> ${ENV} interpolation ->
 * zod validation. Any failure is one ConfigError naming the file and paths;
 * nothing here touches the running proxy, so a bad file can never replace a
 * good one.
 */
import { readFile } from 'node:fs/promises'
import { parseDocument, parse as parseYamlScalar } from 'yaml'
import { configSchema, type Config } from './schema.js'
import { ConfigError, formatPath, problemsFromZod, type ConfigProblem } from './errors.js'

const WHOLE_VAR = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/
const ANY_VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g
const REMOVE = Symbol('remove')

type Env = Record<string, string | undefined>

/**
 * Replaces `${VAR}` and `${VAR:-default}` in string values. A value that is
 * exactly one variable takes the variable's YAML type (so `port: ${PORT}`
 * is a number); an empty whole-value result drops the key, which lets
 * `token: ${FAULTLINE_ADMIN_TOKEN:-}` mean "no token unless set".
 * Substitution happens on parsed values, never on the text, so a value
 * can't inject YAML structure. Inside a flow mapping (`{ ... }`) quote it:
 * `{ port: "${PORT}" }` (still a number once substituted).
 */
export function interpolate (node: unknown, env: Env, problems: ConfigProblem[], path: PropertyKey[] = []): unknown {
  if (typeof node === 'string') {
    const whole = WHOLE_VAR.exec(node)
    if (whole) {
      const value = env[whole[1]!] ?? whole[2]
      if (value === undefined) {
        problems.push({ path: formatPath(path), message: `environment variable ${whole[1]} is not set (write \${${whole[1]}:-default} for a default)` })
        return node
      }
      if (value === '') return REMOVE
      try {
        const typed: unknown = parseYamlScalar(value)
        return typeof typed === 'object' && typed !== null ? value : typed
      } catch {
        return value
      }
    }
    return node.replace(ANY_VAR, (match, name: string, fallback: string | undefined) => {
      const value = env[name] ?? fallback
      if (value === undefined) {
        problems.push({ path: formatPath(path), message: `environment variable ${name} is not set` })
        return match
      }
      return value
    })
  }
  if (Array.isArray(node)) {
    return node.map((item, i) => interpolate(item, env, problems, [...path, i])).filter((v) => v !== REMOVE)
  }
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, value] of Object.entries(node)) {
      const next = interpolate(value, env, problems, [...path, key])
      if (next !== REMOVE) out[key] = next
    }
    return out
  }
  return node
}

/** Validates an already-parsed document. `file` only names the source in errors. */
export function parseConfig (document: unknown, file: string, env: Env = process.env): Config {
  const problems: ConfigProblem[] = []
  const interpolated = interpolate(document, env, problems)
  const result = configSchema.safeParse(interpolated, { reportInput: true })
  if (!result.success) {
    // Every problem at once: an unset variable does not hide the rest. A
    // schema complaint about the very value that holds the unset variable
    // would only repeat it, so it is left out.
    const unset = problems.map((p) => p.path)
    const covered = (path: string): boolean => unset.some((u) => path === u || path.startsWith(u + '.') || path.startsWith(u + '['))
    problems.push(...problemsFromZod(result.error, { schema: configSchema, document: interpolated }).filter((p) => !covered(p.path)))
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(file, problems)
  return result.data
}

/** The offending line of a YAML error with a caret under the column, and the two lines before it for context. */
export function yamlFrame (text: string, line: number, col: number): string {
  const lines = text.split(/\r?\n/)
  const width = String(line).length
  const out: string[] = []
  for (let n = Math.max(1, line - 2); n <= line; n++) out.push(`  ${String(n).padStart(width)} | ${lines[n - 1] ?? ''}`)
  out.push(`  ${' '.repeat(width)} | ${' '.repeat(Math.max(0, col - 1))}^`)
  return out.join('\n')
}

/** Parses YAML or JSON text (JSON is YAML 1.2) and validates it. */
export function parseConfigText (text: string, file: string, env: Env = process.env): Config {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true })
  if (doc.errors.length > 0) {
    // Later YAML errors are mostly echoes of the first; one clear line beats a wall.
    const first = doc.errors[0]!
    const more = doc.errors.length > 1 ? ` (and ${doc.errors.length - 1} more YAML error(s) after it)` : ''
    const at = first.linePos?.[0]
    const reason = (first.message.split('\n')[0] ?? first.message).replace(/ at line \d+, column \d+:?$/, '')
    const where = at === undefined ? '' : ` at line ${at.line}, column ${at.col}`
    const frame = at === undefined ? '' : '\n' + yamlFrame(text, at.line, at.col)
    throw new ConfigError(file, [{ path: '', message: `invalid YAML${where}: ${reason}${more}${frame}` }])
  }
  return parseConfig(doc.toJS() ?? {}, file, env)
}

export async function loadConfigFile (file: string, env: Env = process.env): Promise<Config> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file: ${(err as Error).message}` }])
  }
  return parseConfigText(text, file, env)
}
