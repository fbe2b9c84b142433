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

export function createLogger (level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'faultline' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime
    },
    // Async, not buffered to a size: lines batch up by themselves while a write
    // is in flight under load, and a quiet proxy's lines still appear at once.
    destination ?? pino.destination({ dest: 1, sync: false })
  )
}
