/**
 * The command line as a person meets it: --help and --version, one line
 * and the usage for a mistake (exit 2), the same FILE forms on every
 * command, and a port clash that names the key to change.
 */
import t from 'tap'
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { CommanderError } from 'commander'
import { buildProgram } from '../../src/cli.js'
import { closedPort, startUpstream } from '../helpers.js'
import { CLI, REPO as ROOT } from '../repo.js'

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

interface Result { code: number, stdout: string, stderr: string }

async function cli (args: string[], env: Record<string, string> = {}): Promise<Result> {
  return await new Promise((resolve) => {
    execFile(process.execPath, [...CLI, ...args], { timeout: 60_000, env: { ...process.env, FAULTLINE_CONFIG: '', ...env } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1, stdout, stderr })
    })
  })
}

const firstLine = (text: string): string => text.split('\n')[0] ?? ''

/** Drives the real program in-process: what it would print and the exit code it would use. */
async function inProcess (args: string[], env: Record<string, string> = {}): Promise<Result> {
  let stdout = ''
  let stderr = ''
  const program = buildProgram({ writeOut: (s) => { stdout += s }, writeErr: (s) => { stderr += s } })
  const saved = process.env.FAULTLINE_CONFIG
  process.env.FAULTLINE_CONFIG = env.FAULTLINE_CONFIG ?? ''
  try {
    await program.parseAsync(args, { from: 'user' })
    return { code: 0, stdout, stderr }
  } catch (err) {
    if (err instanceof CommanderError) return { code: err.exitCode, stdout, stderr }
    throw err
  } finally {
    if (saved === undefined) delete process.env.FAULTLINE_CONFIG
    else process.env.FAULTLINE_CONFIG = saved
  }
}

t.test('the real binary: --help, --version and a bad option', async (t) => {
  const [help, version, bad] = await Promise.all([cli(['check', '--help']), cli(['--version']), cli(['run', '--bogus'])])
  t.equal(help.code, 0)
  t.equal(firstLine(help.stdout), 'Usage: faultline check [options] [file]')
  t.equal(version.code, 0)
  t.equal(version.stdout.trim(), VERSION, 'the version in package.json')
  t.equal(bad.code, 2)
  t.same(bad.stderr.trimEnd().split('\n'), ["error: unknown option '--bogus'", 'usage: faultline run [options] [file]', 'Run "faultline run --help" for more.'])
})

t.test('--help on the program and on every command prints usage to stdout and exits 0', async (t) => {
  const top = await inProcess(['--help'])
  t.equal(top.code, 0)
  t.equal(firstLine(top.stdout), 'Usage: faultline [options] [command]')
  t.match(top.stdout, /Exit codes: 0 ok, 1 runtime failure/)
  for (const name of ['run', 'check', 'plan', 'experiment', 'demo']) {
    const r = await inProcess([name, '--help'])
    t.equal(r.code, 0, `${name} --help exits 0`)
    t.equal(firstLine(r.stdout), `Usage: faultline ${name} [options]${name === 'demo' ? '' : ' [file]'}`)
    if (name !== 'demo') t.match(r.stdout, /-c, --config <file>/, `${name} takes --config`)
    if (name === 'experiment') t.match(r.stdout, /Exits 3 when the experiment saw too little traffic/)
  }
  const version = await inProcess(['-V'])
  t.equal(version.code, 0)
  t.equal(version.stdout.trim(), VERSION)
})

t.test('mistakes get one line, the usage and exit 2', async (t) => {
  const cases: Array<[string[], RegExp, string]> = [
    [['run', '--bogus'], /^error: unknown option '--bogus'$/, 'faultline run [options] [file]'],
    [['plan', '--jsno', 'x.yaml'], /^error: unknown option '--jsno'$/, 'faultline plan [options] [file]'],
    [['check', 'a.yaml', 'b.yaml'], /^error: too many arguments for 'check'/, 'faultline check [options] [file]'],
    [['experiment', 'x.yaml', '--mode', 'chaotic'], /^error: option '--mode <mode>' argument 'chaotic' is invalid\. Allowed choices are intent, uniform\.$/, 'faultline experiment [options] [file]'],
    [['experiment', 'x.yaml', '--duration', 'soon'], /^error: option '--duration <duration>' argument 'soon' is invalid/, 'faultline experiment [options] [file]'],
    [['frobnicate'], /^error: unknown command 'frobnicate'$/, 'faultline [options] [command]'],
    [['check'], /^error: no config file: pass FILE, --config FILE or set FAULTLINE_CONFIG$/, 'faultline check [options] [file]'],
    [['run', 'a.yaml', '--config', 'b.yaml'], /^error: two config files given/, 'faultline run [options] [file]'],
    [['demo', 'extra'], /^error: too many arguments for 'demo'/, 'faultline demo [options]']
  ]
  for (const [args, line, usage] of cases) {
    const r = await inProcess(args)
    t.equal(r.code, 2, `${args.join(' ')} exits 2`)
    const lines = r.stderr.trimEnd().split('\n')
    t.match(lines[0], line, `${args.join(' ')}: the error line`)
    // commander may add its own "(Did you mean --json?)" under the error line
    const at = lines.findIndex((l) => l.startsWith('usage: '))
    t.ok(at === 1 || (at === 2 && /^\(Did you mean/.test(lines[1]!)), `${args.join(' ')}: then the usage`)
    t.equal(lines[at], `usage: ${usage}`)
    t.equal(lines.length, at + 2, 'and one line pointing at --help, nothing more')
  }
})

t.test('every command takes FILE positionally, with --config, or from FAULTLINE_CONFIG', async (t) => {
  const dir = t.testdir({ 'fl.yaml': 'routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: "http://127.0.0.1:1" }\n    intent: { criticality: optional }\n' })
  const file = join(dir, 'fl.yaml')
  const written: string[] = []
  for (const [args, env] of [[['check', file], {}], [['check', '--config', file], {}], [['check'], { FAULTLINE_CONFIG: file }], [['plan', '-c', file, '--json'], {}]] as Array<[string[], Record<string, string>]>) {
    const r = await inProcess(args, env)
    t.equal(r.code, 0, args.join(' '))
    written.push(r.stdout)
  }
  t.equal(written.filter((w) => w === `${file}: ok (1 route: a)\n`).length, 3, 'check read the file each of three ways')
  const json = written.find((w) => w.startsWith('['))
  t.equal((JSON.parse(json ?? '[]') as Array<{ route: string }>)[0]?.route, 'a', 'plan -c FILE --json')
})

t.test('a port in use names the key to change and the address, without a stack trace', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const blocker = createServer()
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { blocker.close() })
  const taken = (blocker.address() as { port: number }).port
  const free = await closedPort()
  const dir = t.testdir({})
  const route = `routes:\n  - name: a\n    match: { pathPrefix: /a }\n    upstream: { url: "${upstream.url}" }\n`
  await writeFile(join(dir, 'proxy.yaml'), `listen: { host: 127.0.0.1, port: ${taken} }\nadmin: { port: ${free} }\nlog: { level: silent }\n${route}`)
  await writeFile(join(dir, 'admin.yaml'), `listen: { host: 127.0.0.1, port: ${free} }\nadmin: { port: ${taken} }\nlog: { level: silent }\n${route}`)
  const [proxy, admin] = await Promise.all([cli(['run', join(dir, 'proxy.yaml')]), cli(['run', '--config', join(dir, 'admin.yaml')])])
  t.equal(proxy.code, 1)
  t.equal(proxy.stderr.trim(), `${join(dir, 'proxy.yaml')}: listen.port: 127.0.0.1:${taken} is already in use (another process, or another faultline, listens there): change listen.port or stop that process`)
  t.equal(admin.code, 1)
  t.match(admin.stderr, new RegExp(`admin\\.yaml: admin\\.port: 127\\.0\\.0\\.1:${taken} is already in use .*change admin\\.port`))
})
