/**
 * What one request log line costs to serialise, in isolation: faultline's
 * root logger (pino with the credential-redaction paths) against the
 * request-line child without redaction that src/proxy/respond.ts uses
 * (src/log.ts requestLogger). The lines go to a sink that drops them, so
 * this is pino's work alone, not the write syscalls.
 *
 *   npm run build && node bench/log-line.mjs [lines]
 */
import { Writable } from 'node:stream'
import { createLogger, requestLogger } from '../dist/log.js'

const LINES = Number(process.argv[2] ?? 500_000)

class Sink extends Writable {
  write () { return true }
}

const line = (i) => ({
  route: 'bench',
  method: 'GET',
  path: '/api/items',
  status: 200,
  outcome: 'ok',
  durationMs: (i % 9000) / 1000 + 1.001,
  requestId: 'd7b0aa3a-f1ef-4217-9b89-40f0e7774119',
  attempts: 1,
  errorClass: undefined,
  fault: undefined,
  fallback: undefined
})

function perLine (logger) {
  const t0 = performance.now()
  for (let i = 0; i < LINES; i++) logger.info(line(i), 'request')
  return (performance.now() - t0) * 1000 / LINES
}

const root = createLogger('info', new Sink())
const child = requestLogger(createLogger('info', new Sink()))
for (let round = 1; round <= 3; round++) {
  process.stdout.write(`round ${round}: with redaction ${perLine(root).toFixed(2)} µs/line, request-line child ${perLine(child).toFixed(2)} µs/line\n`)
}
