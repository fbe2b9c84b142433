/**
 * pino JSON logs. Written asynchronously (sonic-boom, buffered) so a log
 * line never blocks a request; flushed at least every second and on
 * shutdown. Credentials are redacted wherever they could appear.
 */
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

function stdout (): DestinationStream {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 })
  setInterval(() => {
    try {
      destination.flush()
    } catch { /* destroyed at exit: nothing left to write */ }
  }, FLUSH_EVERY_MS).unref()
  return destination
}
