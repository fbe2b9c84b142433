/**
 * Failure classification: every way an upstream call can go wrong maps to
 * one bounded ErrorClass, in this one place. Policies decide on the class,
 * metrics count it, the client sees it in the error body.
 */

export const ERROR_CLASSES = [
  'timeout',
  'connect',
  'reset',
  'invalid_response',
  'auth',
  'rate_limited',
  'http_5xx'
] as const
export type ErrorClass = (typeof ERROR_CLASSES)[number]

/** Which part of the exchange ran out of time; `total` is the route's deadline. */
export type TimeoutPhase = 'connect' | 'headers' | 'body' | 'total'

/** An upstream failure that carries its class; thrown by the attempt, read by policies. */
export class UpstreamError extends Error {
  readonly errorClass: ErrorClass
  readonly timeoutPhase: TimeoutPhase | undefined
  readonly code: string | undefined

  constructor (errorClass: ErrorClass, message: string, options: { cause?: unknown, code?: string, timeoutPhase?: TimeoutPhase } = {}) {
    super(message, { cause: options.cause })
    this.name = 'UpstreamError'
    this.errorClass = errorClass
    this.code = options.code
    this.timeoutPhase = options.timeoutPhase
  }
}

/** The status a client gets for a failure that no policy absorbed. */
export function statusForError (errorClass: ErrorClass): number {
  return errorClass === 'timeout' ? 504 : 502
}

function codeOf (err: unknown): string | undefined {
  const e = err as { code?: unknown, cause?: { code?: unknown } } | null
  if (e && typeof e.code === 'string') return e.code
  if (e?.cause && typeof e.cause.code === 'string') return e.cause.code
  return undefined
}

/** Maps an undici/Node error to its class. Unknown errors are treated as connection resets. */
export function classifyError (err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err
  const code = codeOf(err)
  const message = (err as Error | undefined)?.message ?? String(err)
  const opts = { cause: err, code }
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new UpstreamError('timeout', 'connecting to the upstream timed out', { ...opts, timeoutPhase: 'connect' })
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new UpstreamError('timeout', 'the upstream did not send response headers in time', { ...opts, timeoutPhase: 'headers' })
    case 'UND_ERR_BODY_TIMEOUT':
      return new UpstreamError('timeout', 'the upstream stalled while sending the response body', { ...opts, timeoutPhase: 'body' })
    case 'ECONNREFUSED':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return new UpstreamError('connect', `cannot connect to the upstream (${code})`, opts)
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
    case 'UND_ERR_INFO':
      return new UpstreamError('invalid_response', `the upstream sent an invalid response (${code})`, opts)
    default:
      if (code?.startsWith('HPE_')) {
        return new UpstreamError('invalid_response', `the upstream sent malformed HTTP (${code})`, opts)
      }
      if (/ContentLength|content-length/i.test(message)) {
        return new UpstreamError('invalid_response', 'the upstream body did not match its Content-Length', opts)
      }
      return new UpstreamError('reset', `the upstream connection failed: ${message}`, opts)
  }
}
