/**
 * pino JSON logs. Written asynchronously (sonic-boom, buffered) so a log
 * line never blocks a request; flushed at least every second and on
 * shutdown. Credentials are redacted wherever they could appear.
 */
import { writeSync } from 'node:fs'
import { pino, type Logger, type DestinationStream } from 'pino'

/** pino's own sonic-boom destination (sonic-boom is pino's dependency, not ours). */
type SonicBoom = ReturnType<typeof pino.destination>

export type { Logger }

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'token',
  'admin.token'
]

/**
 * pino's isoTime, formatted once per millisecond: at thousands of lines a
 * second most lines share their millisecond, and a Date plus toISOString()
 * per line was a visible share of the per-request cost. Same output.
 */
let stampedAt = -1
let stamp = ''
export function isoTime (): string {
  const now = Date.now()
  if (now !== stampedAt) {
    stampedAt = now
    stamp = `,"time":"${new Date(now).toISOString()}"`
  }
  return stamp
}

export function createLogger (level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'faultline' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: isoTime
    },
    destination ?? stdout()
  )
}

/**
 * Lines are written 4 KB at a time, off the event loop: one write per ~18
 * request lines under load. A quiet proxy would otherwise hold its last
 * lines until 4 KB built up (a lone request's line never showed), so a
 * timer bounds how long a line can wait.
 */
const FLUSH_EVERY_MS = 1_000
const STDOUT = 1

function stdout (): DestinationStream {
  const destination = pino.destination({ dest: STDOUT, sync: false, minLength: 4096 })
  setInterval(() => {
    try {
      destination.flush()
    } catch { /* destroyed at exit: nothing left to write */ }
  }, FLUSH_EVERY_MS).unref()
  return new TurnBatcher(destination, STDOUT)
}

/**
 * Hands sonic-boom the lines of one event-loop turn as one string instead
 * of one by one. Per write, sonic-boom measures the byte length of the
 * line and of its whole pending buffer (up to 16 KB): under load that was
 * ~3 us of CPU per request, now paid once per turn (~10 requests). Every
 * log line goes through here, so their order is kept; they reach
 * sonic-boom at the end of the turn (setImmediate), or at once on flush,
 * and synchronously if the process exits first.
 */
class TurnBatcher implements DestinationStream {
  private lines: string[] = []
  private scheduled = false
  private readonly destination: SonicBoom
  private readonly fd: number

  constructor (destination: SonicBoom, fd: number) {
    this.destination = destination
    this.fd = fd
    // Before pino's own exit hook (which flushes sonic-boom synchronously).
    process.prependListener('exit', this.drainSync)
  }

  write (line: string): void {
    this.lines.push(line)
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.drain)
    }
  }

  flush (cb?: (err?: Error) => void): void {
    this.drain()
    this.destination.flush(cb)
  }

  flushSync (): void {
    this.drain()
    this.destination.flushSync()
  }

  end (): void {
    this.drain()
    this.destination.end()
  }

  private take (): string | undefined {
    this.scheduled = false
    if (this.lines.length === 0) return undefined
    const chunk = this.lines.length === 1 ? this.lines[0] : this.lines.join('')
    this.lines = []
    return chunk
  }

  private readonly drain = (): void => {
    const chunk = this.take()
    if (chunk !== undefined) this.destination.write(chunk)
  }

  /** At exit there is no event loop left: what sonic-boom holds first, then ours, both synchronously. */
  private readonly drainSync = (): void => {
    const chunk = this.take()
    if (chunk === undefined) return
    try {
      this.destination.flushSync()
      writeSync(this.fd, chunk)
    } catch { /* stdout is gone: nothing more can be done */ }
  }
}

/** The fields of the one line logged per request (src/proxy/respond.ts), in output order. */
export interface RequestLine {
  route: string
  method: string
  path: string
  status: number
  outcome: string
  durationMs: number
  requestId: string
  attempts: number
  errorClass: string | undefined
  fault: string | undefined
  fallback: string | undefined
}

// pino's internals, read (never written) to build the line exactly as it would.
type SymbolName = 'lsCacheSym' | 'timeSym' | 'chindingsSym' | 'streamSym' | 'endSym' | 'mixinSym' | 'formattersSym' | 'hooksSym' |
'nestedKeySym' | 'msgPrefixSym' | 'messageKeySym' | 'stringifiersSym' | 'serializersSym' | 'wildcardFirstSym' | 'needsMetadataGsym'
const S = pino.symbols as unknown as Record<SymbolName, symbol>
type Internals = Record<symbol, any> // eslint-disable-line @typescript-eslint/no-explicit-any
const LINE_KEYS = ['route', 'method', 'path', 'status', 'outcome', 'durationMs', 'requestId', 'attempts', 'errorClass', 'fault', 'fallback']
const handWritable = new WeakMap<Logger, boolean>()

/**
 * Whether `logger.info(line, 'request')` is plain enough to write by hand:
 * nothing configured that would change a line of these fields (a mixin, a
 * log formatter, a hook, a serializer or redaction on one of its keys, a
 * nested key, a message prefix or key, a stream that wants metadata).
 * Decided once per logger: a logger's options cannot change after creation.
 */
function canHandWrite (logger: Logger): boolean {
  let ok = handWritable.get(logger)
  if (ok === undefined) {
    const l = logger as unknown as Internals
    const stringifiers = l[S.stringifiersSym] ?? {}
    const serializers = l[S.serializersSym] ?? {}
    ok = l[S.mixinSym] == null && l[S.formattersSym]?.log == null && l[S.hooksSym]?.streamWrite == null &&
      l[S.nestedKeySym] == null && l[S.msgPrefixSym] == null && l[S.messageKeySym] === 'msg' &&
      stringifiers[l[S.wildcardFirstSym]] == null && l[S.streamSym]?.[S.needsMetadataGsym] !== true &&
      LINE_KEYS.every((key) => stringifiers[key] == null && serializers[key] == null)
    handWritable.set(logger, ok)
  }
  return ok
}

const str = JSON.stringify

/**
 * JSON for a value from a small bounded set (route names, methods, outcomes,
 * error classes, fault names): escaped once, then looked up. Capped, so an
 * unexpected stream of distinct values cannot grow it without bound.
 */
const quotedCache = new Map<string, string>()
function quoted (value: string): string {
  let json = quotedCache.get(value)
  if (json === undefined) {
    json = str(value)
    if (quotedCache.size < 1_000) quotedCache.set(value, json)
  }
  return json
}

/** Numbers as JSON writes them (String(n), null when not finite). */
function num (n: number): string {
  return Number.isFinite(n) ? String(n) : 'null'
}

/**
 * num() for a duration rounded to the microsecond (k / 1000): the same
 * digits, built from the integer, about 3x cheaper than the general
 * double-to-string. Anything not of that form takes the general path.
 */
function millis (n: number): string {
  const us = Math.round(n * 1000)
  if (us / 1000 !== n || us < 0 || us > 9e15) return num(n)
  const whole = Math.floor(us / 1000)
  const frac = us - whole * 1000
  if (frac === 0) return String(whole)
  const digits = frac < 10 ? '00' + String(frac) : frac < 100 ? '0' + String(frac) : String(frac)
  return String(whole) + '.' + (digits.endsWith('00') ? digits.slice(0, 1) : digits.endsWith('0') ? digits.slice(0, 2) : digits)
}

/**
 * Logs the per-request line: exactly what `logger.info(line, 'request')`
 * writes (a test holds us to it), serialised by hand. pino's generic path
 * walks the object, looks up serializers and redaction per key and escapes
 * every key on every line: ~3 us of CPU per request in the proxy under
 * load, about 4% of it. The line has a fixed shape and carries no headers
 * or credentials; anything that does goes through pino.
 */
export function logRequest (logger: Logger, line: RequestLine): void {
  if (!logger.isLevelEnabled('info')) return
  if (!canHandWrite(logger)) {
    logger.info(line, 'request')
    return
  }
  const l = logger as unknown as Internals
  let s = l[S.lsCacheSym][30] + l[S.timeSym]() + l[S.chindingsSym] +
    ',"route":' + quoted(line.route) + ',"method":' + quoted(line.method) + ',"path":' + str(line.path) +
    ',"status":' + num(line.status) + ',"outcome":' + quoted(line.outcome) + ',"durationMs":' + millis(line.durationMs) +
    ',"requestId":' + str(line.requestId) + ',"attempts":' + num(line.attempts)
  if (line.errorClass !== undefined) s += ',"errorClass":' + quoted(line.errorClass)
  if (line.fault !== undefined) s += ',"fault":' + quoted(line.fault)
  if (line.fallback !== undefined) s += ',"fallback":' + quoted(line.fallback)
  l[S.streamSym].write(s + ',"msg":"request"' + l[S.endSym])
}
