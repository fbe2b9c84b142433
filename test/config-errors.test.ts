/**
 * Config errors a person can act on: a YAML error shows the line and a
 * caret, a misspelt key or value gets the closest known one, a union says
 * every form it takes, and unset ${VAR}s come with every other problem.
 */
import t from 'tap'
import { ConfigError } from '../src/config/errors.js'
import { parseConfigText } from '../src/config/load.js'

function problems (text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfigText(text, 'fl.yaml', env)
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n')
    throw err
  }
  return []
}

const ROUTE = 'routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: "http://x:1" }\n'

t.test('a YAML error shows the offending line with a caret under the column', async (t) => {
  const lines = problems('routes:\n  - name: a\n    match: { pathPrefix: /a\n    upstream: { url: "http://x:1" }\n')
  t.same(lines, [
    'fl.yaml: invalid YAML at line 4, column 5: Flow map in block collection must be sufficiently indented and end with a }',
    '  2 |   - name: a',
    '  3 |     match: { pathPrefix: /a',
    '  4 |     upstream: { url: "http://x:1" }',
    '    |     ^'
  ])
  const tail = problems(ROUTE + 'admin: { token: "abc\n')
  t.match(tail[0], /^fl\.yaml: invalid YAML at line \d+, column \d+: .+/, 'an error at the end of the file still says what is wrong')
  t.match(tail.at(-1), /^\s+\| *\^$/, 'and points at it')
})

t.test('a misspelt key gets the closest known key and the keys accepted there', async (t) => {
  t.same(problems(ROUTE + '    resilence: {}\n'), ['fl.yaml: routes[0]: unknown key "resilence" (did you mean "resilience"?); expected one of name, match, upstream, resilience, chaos, validate, intent, limits, upgrades'])
  t.match(problems(ROUTE + '    resilience: { timeout: 500 }\n'), [/^fl\.yaml: routes\[0\]\.resilience: unknown key "timeout" \(did you mean "timeoutMs"\?\); expected one of timeoutMs, attemptTimeoutMs, /])
  t.match(problems(ROUTE + '    chaos: { faults: [{ kind: latency, ms: 5, probabilty: 0.5 }] }\n'), [/faults\[0\]: unknown key "probabilty" \(did you mean "probability"\?\); expected one of kind, name, probability, at, match, .*\bms, jitterMs/],
    'a fault is matched against the keys of its own kind')
  t.same(problems(ROUTE + '    resilience: { zzz: 1 }\n').map((l) => l.includes('did you mean')), [false], 'no suggestion when nothing is close')
})

t.test('a value outside a union lists every accepted form, with the closest', async (t) => {
  t.same(problems(ROUTE + '    resilience: { retry: { on: ["5xx"] } }\n'), [
    'fl.yaml: routes[0].resilience.retry.on[0]: expected one of "timeout" | "connect" | "reset" | "invalid_response" | "auth" | "rate_limited" | "http_5xx", or a number, got "5xx" (did you mean "http_5xx"?)'
  ])
  t.match(problems(ROUTE + '    chaos: { faults: [{ kind: latncy }] }\n'), [/kind: expected one of .*, got "latncy" \(did you mean "latency"\?\)$/])
})

t.test('unset ${VAR}s are reported together with every other problem', async (t) => {
  const lines = problems('listen: { port: "${NOPE_PORT}" }\nadmin: { port: 99999 }\n' + ROUTE + '    resilience: { timeoutMs: "${NOPE_TIMEOUT}" }\n')
  t.same(lines.sort(), [
    'fl.yaml: admin.port: expected a number <= 65535, got 99999',
    'fl.yaml: listen.port: environment variable NOPE_PORT is not set (write ${NOPE_PORT:-default} for a default)',
    'fl.yaml: routes[0].resilience.timeoutMs: environment variable NOPE_TIMEOUT is not set (write ${NOPE_TIMEOUT:-default} for a default)'
  ], 'the schema does not repeat the unset variables as wrong types')
})
