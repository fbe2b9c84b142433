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

/**
 * The base of faultline's own errors, as undici's `UndiciError`: a stable
 * `code` (snake_case, the same word the client or the admin API sees where
 * it sees one) that tests, logs and callers can rely on instead of the
 * class or the message. docs/ARCHITECTURE.md, "Errors", lists them.
 */
export class FaultlineError extends Error {
  readonly code: string
  constructor (code: string, message: string, options?: ErrorOptions) {
    super(message, options)
    this.code = code
  }
}

/** Which part of the exchange ran out of time; `total` is the route's deadline. */
export type TimeoutPhase = 'connect' | 'headers' | 'body' | 'total'

/**
 * An upstream failure that carries its class; thrown by the attempt, read by
 * policies. Its `code` is `upstream_<class>`; the low-level code it came
 * from (`ECONNREFUSED`, `UND_ERR_*`, or FAULTLINE_INJECTED for an injected
 * one) is `causeCode`.
 */
export class UpstreamError extends FaultlineError {
  readonly errorClass: ErrorClass
  readonly timeoutPhase: TimeoutPhase | undefined
  readonly causeCode: string | undefined

  constructor (errorClass: ErrorClass, message: string, options: { cause?: unknown, code?: string, timeoutPhase?: TimeoutPhase } = {}) {
    super(`upstream_${errorClass}`, message, { cause: options.cause })
    this.name = 'UpstreamError'
    this.errorClass = errorClass
    this.causeCode = options.code
    this.timeoutPhase = options.timeoutPhase
  }
}

/**
 * A request-side problem: the client left, or its body broke a limit. Never
 * an upstream failure: it is not retried, not answered from a fallback, not
 * counted by the breaker or the upstream error metrics, and it ends only
 * its own request.
 */
export class ClientFaultError extends FaultlineError {}

/**
 * The client closed its connection before its answer was sent. The request
 * is abandoned: the attempt in flight is aborted, nothing is retried or
 * served from a fallback, and nothing counts against the upstream (its
 * breaker, its error metrics). Envoy resets the upstream stream the same way.
 */
export class ClientCancelledError extends ClientFaultError {
  constructor (message = 'the client closed the connection before its answer was sent') {
    super('client_cancelled', message)
    this.name = 'ClientCancelledError'
  }
}

/** The client's body passed the route's limit as it streamed: answered 413 wherever the request was. */
export class RequestBodyTooLargeError extends ClientFaultError {
  readonly limit: number
  constructor (limit: number) {
    super('request_body_too_large', `the request body is larger than ${limit} bytes`)
    this.name = 'RequestBodyTooLargeError'
    this.limit = limit
  }
}

/**
 * The client's body came in a flood of tiny pieces (each a body event to
 * parse and handle), far more than any real client's writes: refused 400
 * so one connection cannot spend the proxy's CPU a byte at a time.
 */
export class RequestBodyFragmentedError extends ClientFaultError {
  constructor (pieces: number, perMs: number, averageBytes: number) {
    super('request_body_fragmented', `the request body arrived in ${pieces} pieces within ${perMs} ms averaging under ${averageBytes} bytes; send it in larger writes`)
    this.name = 'RequestBodyFragmentedError'
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
      // undici 7's HTTPParserError carries no code; its name is the signal.
      if (code?.startsWith('HPE_') || (err as Error | undefined)?.name === 'HTTPParserError') {
        return new UpstreamError('invalid_response', `the upstream sent malformed HTTP (${code})`, opts)
      }
      if (/ContentLength|content-length/i.test(message)) {
        return new UpstreamError('invalid_response', 'the upstream body did not match its Content-Length', opts)
      }
      return new UpstreamError('reset', `the upstream connection failed: ${message}`, opts)
  }
}

/**
 * A failure while the response body streams. An upstream that closes the
 * connection before the Content-Length it announced sent a truncated
 * (invalid) response, not merely a reset.
 */
export function classifyBodyError (err: unknown, declaredLength: boolean): UpstreamError {
  const failure = classifyError(err)
  if (declaredLength && failure.errorClass === 'reset') {
    return new UpstreamError('invalid_response', 'the upstream closed the connection before sending the whole body its Content-Length announced', { cause: err, code: failure.causeCode })
  }
  return failure
}

/**
 * A request a policy refused to send upstream (open breaker, full bulkhead,
 * auth guard): answered at once with a 503, never retried. Not an
 * UpstreamError: nothing went wrong upstream on this request.
 */
export type RejectionReason = 'short_circuited' | 'rejected_bulkhead' | 'auth_blocked'

export class PolicyRejectionError extends FaultlineError {
  readonly reason: RejectionReason
  /** Seconds a client should wait before trying again (the Retry-After header). */
  readonly retryAfterS: number

  constructor (reason: RejectionReason, message: string, retryAfterS: number) {
    super(reason, message)
    this.name = 'PolicyRejectionError'
    this.reason = reason
    this.retryAfterS = retryAfterS
  }
}

/** RFC 9110 §9.2.2: methods whose repetition has the same effect as one request. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])

/**
 * Whether a request may be sent upstream more than once: idempotent
 * methods always; POST and PATCH only with an Idempotency-Key header (the
 * upstream can de-duplicate) or when the route opts in.
 */
export function safeToResend (method: string, idempotencyKey: unknown, allowNonIdempotent: boolean): boolean {
  if (IDEMPOTENT_METHODS.has(method)) return true
  return allowNonIdempotent || (typeof idempotencyKey === 'string' && idempotencyKey !== '')
}

/** The upstream never saw the request (refused or unreachable, or connecting timed out): resending is safe for any method. */
export function neverSent (err: UpstreamError): boolean {
  return err.errorClass === 'connect' || err.timeoutPhase === 'connect'
}

/** Which failures a policy reacts to: error classes, plus exact statuses for failed responses. */
export class FailureRule {
  private readonly classes: ReadonlySet<ErrorClass>
  private readonly statuses: ReadonlySet<number>

  constructor (on: ReadonlyArray<ErrorClass | number>) {
    this.classes = new Set(on.filter((x): x is ErrorClass => typeof x === 'string'))
    this.statuses = new Set(on.filter((x): x is number => typeof x === 'number'))
  }

  /** A thrown failure. A `total` timeout never matches: the request's own deadline has passed. */
  matchesError (err: UpstreamError): boolean {
    return err.timeoutPhase !== 'total' && this.classes.has(err.errorClass)
  }

  matchesClass (errorClass: ErrorClass): boolean {
    return this.classes.has(errorClass)
  }

  /** A failed response (5xx, 429, 401, 403), by its class or its exact status. */
  matchesResponse (status: number, errorClass: ErrorClass): boolean {
    return this.statuses.has(status) || this.classes.has(errorClass)
  }
}
