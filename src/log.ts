/**
 * pino JSON logs. Written asynchronously (sonic-boom, buffered) so a log
 * line never blocks a request; flushed on shutdown. Credentials are
 * redacted wherever they could appear.
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
 * pino runs a redactor over every key of every line, a few percent of the
 * proxy's CPU per request (bench/).
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
    // Async, not buffered to a size: lines batch up by themselves while a write
    // is in flight under load, and a quiet proxy's lines still appear at once.
    destination ?? pino.destination({ dest: 1, sync: false })
  )
}
