/**
 * Fault path globs: picomatch's syntax for what configs use, matched
 * without a backtracking regex, so an adversarial 8 KB path costs about a
 * millisecond and never blocks other routes or /healthz.
 */
import t from 'tap'
import { compileGlob, globProblem } from '../../src/faults/glob.js'
import { parseConfig } from '../../src/config/load.js'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

t.test('glob semantics', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['/users/*', '/users/1', true],
    ['/users/*', '/users/1/2', false],
    ['/users/*', '/users/', false],
    ['/svc/**', '/svc/a/b', true],
    ['/svc/**', '/svc', true],
    ['/svc/**/export', '/svc/x/y/export', true],
    ['/svc/**/export', '/svc/export', true],
    ['/svc/**/export', '/svc/x/import', false],
    ['/payments/*/capture', '/payments/12/capture', true],
    ['/reports/*-*-*.csv', '/reports/2024-01-02.csv', true],
    ['/reports/*-*-*.csv', '/reports/a-b.csv', false],
    ['/a/{b,c}/d', '/a/c/d', true],
    ['/a/{b,c}/d', '/a/e/d', false],
    ['/a/[a-c]x', '/a/bx', true],
    ['/a/[!a]x', '/a/ax', false],
    ['/a/?b', '/a/xb', true],
    ['/svc/*', '/svc/.env', true],
    ['/x\\*y', '/x*y', true],
    ['/x\\*y', '/xay', false]
  ]
  for (const [glob, path, expected] of cases) t.equal(compileGlob(glob)(path), expected, `${glob} ${expected ? 'matches' : 'does not match'} ${path}`)
})

t.test('an adversarial 8 KB path costs milliseconds, not seconds', async (t) => {
  const worst = [
    ['/reports/*-*-*.csv', '/reports/' + '-'.repeat(8_180)],
    ['/**/a/**/b/**/c*d*e', '/a'.repeat(4_090)],
    ['/x/*a*a*a*a*a*a*a*b', '/x/' + 'a'.repeat(8_180)]
  ] as const
  for (const [glob, path] of worst) {
    const matches = compileGlob(glob)
    matches(path)
    const t0 = performance.now()
    for (let i = 0; i < 10; i++) matches(path)
    const each = (performance.now() - t0) / 10
    t.ok(each < 20, `${glob}: ${each.toFixed(2)} ms per 8 KB path`)
  }
})

t.test('unsupported globs are config errors naming the fault', async (t) => {
  t.match(globProblem('/a/+(b|c)'), /extglobs/)
  t.match(globProblem('/a/[bc'), /"\]"/)
  t.match(globProblem('/' + 'a'.repeat(300)), /at most 256/)
  t.throws(() => parseConfig({
    routes: [route('svc', '/svc', 'http://127.0.0.1:1', { chaos: { faults: [{ kind: 'abort', status: 503, match: { path: '/svc/@(a|b)' } }] } })]
  }, 'f.yaml'), /routes\[0\]\.chaos\.faults\[0\]\.match\.path: extglobs/)
})

t.test('a crafted path through a fault glob never stalls /healthz or another route', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    routes: [
      route('reports', '/reports', upstream.url, { chaos: { enabled: true, faults: [{ kind: 'abort', status: 503, match: { path: '/reports/*-*-*.csv' } }] } }),
      route('other', '/other', upstream.url)
    ]
  })
  const crafted = '/reports/' + '-'.repeat(8_000)
  const floods = Array.from({ length: 4 }, async () => await fetchText(proxy.url + crafted, { timeoutMs: 15_000 }))
  const healthMs: number[] = []
  for (let i = 0; i < 5; i++) healthMs.push((await fetchText(`${proxy.adminUrl}/healthz`)).ms)
  const other = await fetchText(`${proxy.url}/other/x`)
  const answered = await Promise.all(floods)
  healthMs.sort((a, b) => a - b)
  // The fastest of five: a loaded test machine adds noise; a blocked loop would hold all five for seconds.
  t.ok(healthMs[0]! < 100, `/healthz answered in ${healthMs.map((ms) => Math.round(ms)).join(', ')} ms while crafted paths were matched`)
  t.ok(other.ms < 1_000, `another route answered in ${Math.round(other.ms)} ms`)
  t.same(answered.map((r) => r.status), [200, 200, 200, 200], 'the crafted paths did not match and were served')
})
