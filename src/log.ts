/**
 * pino JSON logs. Written asynchronously (sonic-boom, buffered) so a log
 * line never blocks a request; flushed on shutdown. Credentials are
 * redacted wherever they could appear.
 */
import { writeSync } from 'node:fs'
import { pino, type Logger, type DestinationStream } from 'pino'

export type { Logger }

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'token',
  'admin.token',
  // One level down too (e.g. { err: { headers } } or { upstream: { headers } }).
  '*.headers.authorization',
  '*.headers.cookie',
  '*.headers["proxy-authorization"]',
  '*.headers["set-cookie"]'
]

/**
 * pino's isoTime, formatted once per millisecond: under load most lines
 * share their millisecond, and a Date plus toISOString() per line was a
 * visible share of the per-request cost (bench/). Same output.
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

/**
 * The logger for the one line per request. Its fields are fixed and carry
 * no headers or query strings, so it skips redaction: with wildcard paths
 * pino runs a redactor over every key of every line. Measured in isolation
 * (bench/RESULTS.md): 10.2 us per line with redaction, 1.1 us without it;
 * a line serialised by hand would save 0.6 us more, not worth a second
 * JSON writer to keep in step with pino.
 */
export function requestLogger (logger: Logger): Logger {
  return logger.child({}, { redact: [] })
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

/** pino's own sonic-boom destination (sonic-boom is pino's dependency, not ours). */
type SonicBoom = ReturnType<typeof pino.destination>

/**
 * Lines are written at least 12 KB at a time, off the event loop: one
 * write per ~50 request lines under load. Per write the kernel's cost here
 * is nearly flat in size (4 KB: ~34 us of CPU, 16 KB: ~47 us, measured on
 * these machines), so fewer, larger writes are what matters. A quiet proxy
 * would hold its last lines until 12 KB built up, so sonic-boom's own
 * periodic flush bounds how long a line can wait.
 */
const FLUSH_EVERY_MS = 250
const MIN_WRITE_BYTES = 12 * 1024
const STDOUT = 1

function stdout (): DestinationStream {
  const destination = pino.destination({ dest: STDOUT, sync: false, minLength: MIN_WRITE_BYTES, periodicFlush: FLUSH_EVERY_MS })
  return new TurnBatcher(destination, STDOUT)
}

/**
 * Hands sonic-boom the lines of one event-loop turn as one string instead
 * of one by one. Per write, sonic-boom measures the byte length of the
 * line and of its whole pending buffer: under load that was ~6 us of CPU
 * per request on the bench branch, now paid once per turn (~10 requests).
 * Every line goes through here, so their order is kept; they reach
 * sonic-boom at the end of the turn (setImmediate), at once on flush, and
 * synchronously if the process exits first.
 */
export class TurnBatcher implements DestinationStream {
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
