import t from 'tap'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ConfigError } from '../src/config/errors.js'
import { parseConfigText } from '../src/config/load.js'
import { CLI } from './repo.js'

const run = promisify(execFile)

function problems (text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfigText(text, 'config/x.yaml', env)
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n')
    throw err
  }
  return []
}

const ROUTE = (url: string): string => `routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: ${url} }\n`

t.test('defaults fill in a minimal config', async (t) => {
  const config = parseConfigText(ROUTE('http://127.0.0.1:9000'), 'x.yaml', {})
  t.equal(config.listen.port, 8080)
  t.equal(config.admin.host, '127.0.0.1')
  t.equal(config.admin.port, 9901)
  t.equal(config.routes[0]!.resilience.timeoutMs, 15_000)
  t.equal(config.routes[0]!.upstream.connections, 128)
})

t.test('errors name the file, the path and what was expected', async (t) => {
  t.same(problems('routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: http://x:1 }\n  - name: b\n    match: { pathPrefix: /b }\n    upstream: { url: payments }\n'),
    ['config/x.yaml: routes[1].upstream.url: expected a URL, got "payments"'])
  t.same(problems(ROUTE('http://x:1/with/path')), [
    'config/x.yaml: routes[0].upstream.url: expected an origin such as http://host:port without a path, got "http://x:1/with/path" (use match.rewritePrefix to change paths)'
  ])
  t.same(problems(ROUTE('http://x:1') + 'listen: { port: 70000 }\n'), ['config/x.yaml: listen.port: expected a number <= 65535, got 70000'])
  t.match(problems(ROUTE('http://x:1') + 'lsten: {}\n'), [/^config\/x\.yaml: unknown key "lsten" \(did you mean "listen"\?\); expected one of listen, admin, /])
  t.same(problems(ROUTE('http://x:1') + 'log: { level: loud }\n'), [
    'config/x.yaml: log.level: expected one of "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent", got "loud"'
  ])
  t.same(problems('routes: []\n'), ['config/x.yaml: routes: expected at least 1 item(s), got 0 item(s)'])
  t.same(problems(`${ROUTE('http://x:1')}  - name: a\n    match: { pathPrefix: /b }\n    upstream: { url: http://y:1 }\n`),
    ['config/x.yaml: routes[1].name: expected a unique route name, "a" is also routes[0]'])
  t.same(problems(ROUTE('http://x:1') + 'routes_extra: 1\nadmin: { port: "abc" }\n').length, 2, 'every problem is reported, not only the first')
  t.match(problems('routes: [\n')[0], /^config\/x\.yaml: /, 'YAML syntax errors name the file too')
})

t.test('${ENV} interpolation: typed whole values, defaults, empty means unset, missing is an error', async (t) => {
  const text = 'listen:\n  port: ${PORT}\nadmin: { token: "${TOKEN:-}" }\nroutes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: "http://${HOST:-localhost}:9000" }\n'
  const config = parseConfigText(text, 'x.yaml', { PORT: '8181' })
  t.equal(config.listen.port, 8181, 'a whole-value variable takes its YAML type')
  t.equal(config.admin.token, undefined, 'an empty value removes the key')
  t.equal(config.routes[0]!.upstream.url, 'http://localhost:9000')
  t.same(problems(text, {}), ['config/x.yaml: listen.port: environment variable PORT is not set (write ${PORT:-default} for a default)'])
  t.equal(parseConfigText('listen: { port: "${PORT}" }\n' + ROUTE('http://x:1'), 'x.yaml', { PORT: '8282' }).listen.port, 8282, 'quoted in a flow mapping, still typed')
  t.same(problems('listen: { port: "${PORT}" }\n' + ROUTE('http://x:1'), { PORT: 'x: 1' }), ['config/x.yaml: listen.port: expected number, got "x: 1"'], 'a value cannot inject YAML structure')
})

t.test('faultline check: exit 0 on a good file, 2 with the errors on a bad one', async (t) => {
  const dir = t.testdir({
    'good.yaml': ROUTE('http://127.0.0.1:9000'),
    'bad.json': JSON.stringify({ routes: [{ name: 'a', match: { pathPrefix: '/a' }, upstream: { url: 'http://x:1' } }, { name: 'b', match: { pathPrefix: '/b' }, upstream: { url: 'payments' } }] })
  })
  const good = await run(process.execPath, [...CLI, 'check', join(dir, 'good.yaml')])
  t.match(good.stdout, /good\.yaml: ok \(1 route: a\)/)
  const bad = await run(process.execPath, [...CLI, 'check', join(dir, 'bad.json')]).then(() => null, (err: { code: number, stderr: string }) => err)
  t.equal(bad?.code, 2)
  t.match(bad?.stderr, /bad\.json: routes\[1\]\.upstream\.url: expected a URL, got "payments"/)
  await writeFile(join(dir, 'empty.yaml'), '')
  const empty = await run(process.execPath, [...CLI, 'check', join(dir, 'empty.yaml')]).then(() => null, (err: { code: number, stderr: string }) => err)
  t.equal(empty?.code, 2)
  t.match(empty?.stderr, /empty\.yaml: routes: expected array, got nothing/)
})

t.test('the shipped configs are valid', async (t) => {
  const { loadConfigFile } = await import('../src/config/load.js')
  const demo = await loadConfigFile(join(import.meta.dirname, '..', 'config', 'demo.yaml'), {})
  t.same(demo.routes.map((r) => r.name), ['catalog', 'pricing', 'inventory', 'orders', 'catalog-protected', 'catalog-fragile'])
})
