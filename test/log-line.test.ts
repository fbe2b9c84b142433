/**
 * The per-request log line is written by hand for speed (src/log.ts). It
 * must be byte for byte what pino would have written.
 */
import { Writable } from 'node:stream'
import t from 'tap'
import { pino } from 'pino'
import { createLogger, logRequest, REDACT_PATHS, type RequestLine } from '../src/log.js'

class Lines extends Writable {
  readonly lines: string[] = []
  override _write (chunk: Buffer, _enc: string, cb: () => void): void { this.lines.push(chunk.toString('utf8')); cb() }
}

const base: RequestLine = {
  route: 'payments',
  method: 'GET',
  path: '/payments/42',
  status: 200,
  outcome: 'ok',
  durationMs: 1.234,
  requestId: '7f1c2a9e-3b4d-4e5f-8a6b-1c2d3e4f5a6b',
  attempts: 1,
  errorClass: undefined,
  fault: undefined,
  fallback: undefined
}

const cases: Array<[string, RequestLine]> = [
  ['plain', base],
  ['every optional field', { ...base, status: 504, outcome: 'failed', errorClass: 'timeout', fault: 'latency', fallback: 'cache', attempts: 3 }],
  ['strings that need escaping', { ...base, path: '/a"b\\c\u0001d/\u00e9/\u{1F600}/' + 'x'.repeat(300), method: 'PURGE' }],
  ['odd numbers', { ...base, status: 0, durationMs: 0.000001, attempts: 0 }],
  ['long and whole durations', { ...base, durationMs: 123456.789 }],
  ['a whole duration', { ...base, durationMs: 250 }],
  ['a duration that is not whole microseconds', { ...base, durationMs: 1 / 3 }]
]

// Same options as createLogger, with a fixed clock so the two lines compare.
function logger (stream: Lines, extra: pino.LoggerOptions = {}): pino.Logger {
  return pino({ level: 'info', base: { service: 'faultline' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: () => ',"time":"T"', ...extra }, stream)
}

for (const [name, line] of cases) {
  t.test(`the hand-written line equals pino's: ${name}`, async (t) => {
    const byPino = new Lines()
    logger(byPino).info(line, 'request')
    const byHand = new Lines()
    logRequest(logger(byHand), line)
    t.equal(byHand.lines.length, 1)
    t.equal(byHand.lines[0], byPino.lines[0])
    t.same(JSON.parse(byHand.lines[0]!), JSON.parse(byPino.lines[0]!))
  })
}

t.test('child bindings are kept', async (t) => {
  const byPino = new Lines()
  logger(byPino).child({ generation: 2 }).info(base, 'request')
  const byHand = new Lines()
  logRequest(logger(byHand).child({ generation: 2 }), base)
  t.equal(byHand.lines[0], byPino.lines[0])
})

t.test('the level is honoured, including a change at runtime (reload)', async (t) => {
  const out = new Lines()
  const log = createLogger('warn', out)
  logRequest(log, base)
  t.equal(out.lines.length, 0)
  log.level = 'info'
  logRequest(log, base)
  t.equal(out.lines.length, 1)
  t.match(JSON.parse(out.lines[0]!), { level: 30, service: 'faultline', msg: 'request', route: 'payments', time: /^\d{4}-\d\d-\d\dT/ })
})

t.test('a logger configured in a way the hand-written line does not follow goes through pino', async (t) => {
  const out = new Lines()
  logRequest(logger(out, { mixin: () => ({ zone: 'a' }) }), base)
  t.match(JSON.parse(out.lines[0]!), { zone: 'a', route: 'payments' })
  const redacted = new Lines()
  logRequest(logger(redacted, { redact: ['path'] }), base)
  t.equal(JSON.parse(redacted.lines[0]!).path, '[Redacted]')
})

t.test("faultline's own logger takes the hand-written path", async (t) => {
  const out = new Lines()
  const log = createLogger('info', out)
  let viaPino = 0
  const info = log.info.bind(log)
  log.info = ((...args: Parameters<typeof info>) => { viaPino++; info(...args) }) as typeof log.info
  logRequest(log, base)
  t.equal(out.lines.length, 1)
  t.equal(viaPino, 0)
})

t.test('durations are written exactly as JSON would, over many values', async (t) => {
  const byPino = new Lines()
  const byHand = new Lines()
  const viaPino = logger(byPino)
  const viaHand = logger(byHand)
  let seed = 42
  const random = (): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  for (let i = 0; i < 20_000; i++) {
    const scale = 10 ** Math.floor(random() * 7)
    const line = { ...base, durationMs: Math.round(random() * scale * 1000) / 1000 }
    viaPino.info(line, 'request')
    logRequest(viaHand, line)
  }
  t.same(byHand.lines, byPino.lines)
})
