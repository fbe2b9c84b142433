/**
 * Configs that are valid but do nothing or contradict themselves: each is
 * a warning with its path, printed by `check` (refused by `check --strict`),
 * logged by run and reload, and listed in GET /routes.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CommanderError } from 'commander'
import { parseConfigText } from '../src/config/load.js'
import { configWarnings } from '../src/config/warnings.js'
import { buildProgram } from '../src/cli.js'
import { fetchText, startProxy, startUpstream } from './helpers.js'

const ROUTE = (name: string, extra = ''): string => `  - name: ${name}\n    match: { pathPrefix: /${name} }\n    upstream: { url: "http://127.0.0.1:1" }\n${extra}`
const warnings = (text: string): string[] => configWarnings(parseConfigText(text, 'fl.yaml', {})).map((w) => `${w.path}: ${w.message}`)

t.test('each config that does nothing or contradicts itself has a warning naming its path', async (t) => {
  t.same(warnings('routes:\n' + ROUTE('a')), [], 'a plain route warns about nothing')
  t.match(warnings('routes:\n' + ROUTE('a', '    chaos: { faults: [{ kind: abort }] }\n')), [/^routes\[0\]\.chaos\.faults: 1 fault\(s\) configured but chaos\.enabled is false/])
  t.match(warnings('routes:\n' + ROUTE('a', '    intent: { criticality: optional }\n')), [/^routes\[0\]\.intent: an intent is declared but chaos\.enabled is false/])
  t.match(warnings('routes:\n' + ROUTE('a') + '  - name: b\n    match: { pathPrefix: /a }\n    upstream: { url: "http://127.0.0.1:2" }\n'),
    [/^routes\[1\]\.match: the same pathPrefix "\/a" as routes\[0\] \("a"\): this route is never matched$/])
  t.same(warnings('routes:\n' + ROUTE('a') + '  - name: b\n    match: { pathPrefix: /a, host: b.example }\n    upstream: { url: "http://127.0.0.1:2" }\n'), [], 'another host is another route')
  t.match(warnings('routes:\n' + ROUTE('a', '    resilience: { timeoutMs: 500 }\n    chaos: { enabled: true }\n    intent: { slo: { p99Ms: 800 } }\n')),
    [/^routes\[0\]\.intent\.slo\.p99Ms: the SLO's p99 \(800 ms\) is not below resilience\.timeoutMs \(500 ms\)/])
  t.match(warnings('routes:\n' + ROUTE('a', '    resilience: { timeoutMs: 500, attemptTimeoutMs: 900 }\n')),
    [/^routes\[0\]\.resilience\.attemptTimeoutMs: attemptTimeoutMs \(900 ms\) is not below timeoutMs \(500 ms\)/])
  t.match(warnings('routes:\n' + ROUTE('a', '    resilience: { retry: { attempts: 1 } }\n')), [/retry\.attempts: retry\.attempts is 1/])
  t.match(warnings('routes:\n' + ROUTE('a', '    resilience: { timeoutMs: 500 }\n    chaos: { enabled: true, faults: [{ kind: latency, ms: 2000 }, { kind: abort, probability: 0 }] }\n')), [
    /^routes\[0\]\.chaos\.faults\[0\]: a latency of 2000 ms is above resilience\.timeoutMs \(500 ms\)/,
    /^routes\[0\]\.chaos\.faults\[1\]\.probability: probability is 0: this fault never fires$/
  ])
})

async function check (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const program = buildProgram({ writeOut: (s) => { stdout += s }, writeErr: (s) => { stderr += s } })
  try {
    await program.parseAsync(['check', ...args], { from: 'user' })
    return { code: 0, stdout, stderr }
  } catch (err) {
    if (err instanceof CommanderError) return { code: err.exitCode, stdout, stderr }
    throw err
  }
}

t.test('check prints warnings and passes; check --strict refuses them with exit 2', async (t) => {
  const dir = t.testdir({ 'fl.yaml': 'routes:\n' + ROUTE('a', '    chaos: { faults: [{ kind: abort }] }\n'), 'clean.yaml': 'routes:\n' + ROUTE('a') })
  const file = join(dir, 'fl.yaml')
  const plain = await check([file])
  t.equal(plain.code, 0)
  t.match(plain.stderr, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: warning: routes\\[0\\]\\.chaos\\.faults: 1 fault\\(s\\) configured but chaos\\.enabled is false`))
  t.match(plain.stdout, /fl\.yaml: ok/)
  const strict = await check(['--strict', file])
  t.equal(strict.code, 2)
  t.match(strict.stderr, /warning: routes\[0\]\.chaos\.faults/)
  t.match(strict.stderr, /fl\.yaml: 1 warning\(s\), refused by --strict/)
  t.equal(strict.stdout, '', 'not "ok"')
  const clean = await check(['--strict', join(dir, 'clean.yaml')])
  t.equal(clean.code, 0, '--strict passes a config without warnings')
  t.notMatch(clean.stderr, /: warning:/, 'and prints no warning')
})

t.test('check names what it could not check here: ports, upstreams, Redis, Prometheus, the deferral journal', async (t) => {
  const plain = 'routes:\n' + ROUTE('a')
  const fleet = [
    'listen: { host: 127.0.0.1, port: 18080 }',
    'admin: { port: 19901 }',
    'probes: { port: 19902 }',
    'fleet: { redis: { url: "redis://someone@redis.internal:6379/2" } }',
    'controller: { source: prometheus, prometheus: { url: "http://prometheus.internal:9090" } }',
    'deferral: { dir: /var/lib/faultline/deferrals }',
    'routes:',
    '  - name: orders',
    '    match: { pathPrefix: /orders }',
    '    upstream: { url: "http://orders.internal:8080", alternates: ["http://orders-b.internal:8080"] }',
    '    resilience: { fallback: [defer] }',
    ''
  ].join('\n')
  const dir = t.testdir({ 'plain.yaml': plain, 'fleet.yaml': fleet })
  const one = await check([join(dir, 'plain.yaml')])
  t.equal(one.code, 0)
  const lines = (text: string): string[] => text.split('\n').filter((l) => l.includes('not checked here'))
  t.match(lines(one.stderr), [/: not checked here \(only where it runs\): free to bind: listen\.port 0\.0\.0\.0:8080, admin\.port 127\.0\.0\.1:9901$/, /upstreams reachable: http:\/\/127\.0\.0\.1:1$/])
  t.equal(lines(one.stderr).length, 2, 'nothing about Redis, Prometheus or a journal it does not use')
  const all = await check([join(dir, 'fleet.yaml')])
  t.equal(all.code, 0, all.stderr)
  const said = lines(all.stderr).join('\n')
  t.match(said, /free to bind: listen\.port 127\.0\.0\.1:18080, admin\.port 127\.0\.0\.1:19901, probes\.port 0\.0\.0\.0:19902/)
  t.match(said, /upstreams reachable: http:\/\/orders\.internal:8080, http:\/\/orders-b\.internal:8080/)
  t.match(said, /Redis reachable: fleet\.redis\.url redis:\/\/redis\.internal:6379\/2/)
  t.notMatch(said, /someone/, 'the URL\'s user name is not printed')
  t.match(said, /Prometheus reachable and answering: controller\.prometheus\.url http:\/\/prometheus\.internal:9090/)
  t.match(said, /writable and not locked by another process: deferral\.dir \/var\/lib\/faultline\/deferrals/)
})

t.test('run logs the warnings, GET /routes lists them, a reload replaces them', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const dir = t.testdir({})
  const file = join(dir, 'fl.yaml')
  const text = (extra: string): string => `routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: "${upstream.url}" }\n${extra}`
  await writeFile(file, text('    intent: { criticality: optional }\n'))
  const proxy = await startProxy(t, parseConfigText(await import('node:fs').then((fs) => fs.readFileSync(file, 'utf8')), file, {}) as never, { configFile: file })
  const logged = proxy.logs.lines.filter((l) => l.level === 40 && String(l.msg).startsWith('config warning'))
  t.match(logged.map((l) => l.msg), [/^config warning: routes\[0\]\.intent: an intent is declared but chaos\.enabled is false/])
  const routes = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as { warnings: Array<{ path: string, message: string }> }
  t.match(routes.warnings, [{ path: 'routes[0].intent', message: /chaos\.enabled is false/ }])
  await writeFile(file, text('    resilience: { retry: { attempts: 1 } }\n'))
  await proxy.faultline.reload()
  const after = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as { warnings: Array<{ path: string }> }
  t.same(after.warnings.map((w) => w.path), ['routes[0].resilience.retry.attempts'], 'the reloaded config\'s warnings, not the old ones')
  t.ok(proxy.logs.lines.some((l) => l.level === 40 && String(l.msg).startsWith('config warning: routes[0].resilience.retry.attempts')), 'reload logs them')
})
