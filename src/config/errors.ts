/**
 * Config errors speak the user's language: the file, the path inside it in
 * the notation they would write (`routes[1].upstream.url`) and what was
 * expected, one line per problem.
 */
import type { z } from 'zod'
import { isSecretKey } from './secret-keys.js'
import { didYouMean, knownKeysAt } from './suggest.js'
import { FaultlineError } from '../core/errors.js'

export interface ConfigProblem {
  path: string
  message: string
}

export class ConfigError extends FaultlineError {
  readonly file: string
  readonly problems: ConfigProblem[]

  constructor (file: string, problems: ConfigProblem[]) {
    super('invalid_config', problems.map((p) => `${file}: ${p.path ? p.path + ': ' : ''}${p.message}`).join('\n'))
    this.name = 'ConfigError'
    this.file = file
    this.problems = problems
  }
}

export function formatPath (path: ReadonlyArray<PropertyKey>): string {
  let out = ''
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`
    else out += out ? `.${String(key)}` : String(key)
  }
  return out
}

function describe (value: unknown): string {
  if (value === undefined) return 'nothing'
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'an object'
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value)
  return String(value)
}

function bound (issue: { minimum?: unknown, maximum?: unknown, inclusive?: boolean, origin?: string }, small: boolean): string {
  const limit = small ? issue.minimum : issue.maximum
  const op = small ? (issue.inclusive === false ? '>' : '>=') : (issue.inclusive === false ? '<' : '<=')
  switch (issue.origin) {
    case 'array': return `${small ? 'at least' : 'at most'} ${String(limit)} item(s)`
    case 'string': return `${small ? 'at least' : 'at most'} ${String(limit)} character(s)`
    default: return `a number ${op} ${String(limit)}`
  }
}

/** Where the issue came from, so a misspelt key can be matched against the keys the schema knows there. */
export interface IssueSource {
  schema: z.ZodType
  document: unknown
}

const suggestion = (word: unknown, candidates: readonly unknown[]): string => {
  if (typeof word !== 'string') return ''
  const best = didYouMean(word, candidates.filter((c): c is string => typeof c === 'string'))
  return best === undefined ? '' : ` (did you mean ${JSON.stringify(best)}?)`
}

function unknownKeys (issue: z.core.$ZodIssueUnrecognizedKeys, source: IssueSource | undefined): string {
  const known = source === undefined ? undefined : knownKeysAt(source.schema, issue.path, source.document)
  const keys = issue.keys.map((k) => JSON.stringify(k) + (known === undefined ? '' : suggestion(k, known))).join(', ')
  const accepted = known === undefined ? '' : `; expected one of ${known.join(', ')}`
  return `unknown key${issue.keys.length > 1 ? 's' : ''} ${keys}${accepted}`
}

/** What any branch of a plain union would have taken: "one of "a" | "b", or a number >= 400". */
function unionAlternatives (issue: z.core.$ZodIssueInvalidUnion, input: unknown): string {
  const values: unknown[] = []
  const others: string[] = []
  for (const branch of issue.errors) {
    const top = branch.filter((i) => i.path.length === 0)
    if (top.length === 0) continue
    for (const i of top) {
      if (i.code === 'invalid_value') values.push(...i.values)
      else if (i.code === 'invalid_type') others.push(i.expected === 'int' ? 'an integer' : `a ${i.expected}`)
      else if (i.code === 'too_small') others.push(bound(i as never, true))
      else if (i.code === 'too_big') others.push(bound(i as never, false))
    }
  }
  if (values.length === 0 && others.length === 0) return `${issue.message}, got ${describe(input)}`
  const parts = [...(values.length > 0 ? [`one of ${values.map((v) => JSON.stringify(v)).join(' | ')}`] : []), ...new Set(others)]
  return `expected ${parts.join(', or ')}, got ${describe(input)}${suggestion(input, values)}`
}

/** One zod issue as "expected X, got Y". */
export function describeIssue (issue: z.core.$ZodIssue, source?: IssueSource): string {
  // A refused secret (a short admin.token, an Authorization matcher) is never echoed into a log or an API answer.
  const last = issue.path[issue.path.length - 1]
  if (typeof last === 'string' && isSecretKey(last)) issue = { ...issue, input: '[redacted]' } as z.core.$ZodIssue
  const input = (issue as { input?: unknown }).input
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${issue.expected === 'int' ? 'an integer' : issue.expected}, got ${describe(input)}`
    case 'unrecognized_keys':
      return unknownKeys(issue, source)
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}, got ${describe(input)}${suggestion(input, issue.values)}`
    case 'too_small':
      return `expected ${bound(issue as never, true)}, got ${Array.isArray(input) ? `${input.length} item(s)` : describe(input)}`
    case 'too_big':
      return `expected ${bound(issue as never, false)}, got ${Array.isArray(input) ? `${input.length} item(s)` : describe(input)}`
    case 'invalid_union': {
      // A discriminated union (fault kinds) with an unknown tag: say which tags exist.
      const tagged = issue as { discriminator?: string, options?: unknown[] }
      if (tagged.discriminator !== undefined && tagged.options !== undefined) {
        const tag = (input as Record<string, unknown> | undefined)?.[tagged.discriminator]
        return `expected one of ${tagged.options.map((v) => JSON.stringify(v)).join(' | ')}, got ${describe(tag)}${suggestion(tag, tagged.options)}`
      }
      const discriminator = (issue as { note?: string }).note
      return discriminator ? `${issue.message} (${discriminator})` : unionAlternatives(issue, input)
    }
    case 'invalid_key': {
      // A record key that failed its own schema (a header name): say what that schema expected.
      const inner = (issue as { issues?: z.core.$ZodIssue[] }).issues?.[0]
      return inner !== undefined ? `${describeIssue(inner, source)}` : issue.message
    }
    default:
      return issue.message
  }
}

/**
 * A union where exactly one branch got past the top level (an object
 * branch whose inside is wrong) is reported as that branch's own problems,
 * at their own paths, instead of "expected one of ...".
 */
function deepestBranch (issue: z.core.$ZodIssue): z.core.$ZodIssue[] {
  if (issue.code !== 'invalid_union' || (issue as { discriminator?: string }).discriminator !== undefined) return [issue]
  // A branch whose only top-level problem is its own refinement (custom) got past the shape too.
  const deep = issue.errors.filter((branch) => branch.length > 0 && branch.every((i) => i.path.length > 0 || i.code === 'custom'))
  if (deep.length !== 1) return [issue]
  return deep[0]!.flatMap((i) => deepestBranch({ ...i, path: [...issue.path, ...i.path] } as z.core.$ZodIssue))
}

export function problemsFromZod (error: z.ZodError, source?: IssueSource): ConfigProblem[] {
  return error.issues.flatMap(deepestBranch).map((issue) => ({ path: formatPath(issue.path), message: describeIssue(issue, source) }))
}
