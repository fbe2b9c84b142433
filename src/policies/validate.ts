/**
 * Response validation (opt-in per route, DESIGN.md "Response validation"):
 * a 2xx body is buffered up to `maxBytes`, parsed as JSON and checked
 * against an optional JSON Schema. A body that fails is an
 * `invalid_response` failure, thrown like any other, so retry and the
 * cache fallback handle it and a corrupted or drifted body never reaches
 * the caller. Routes without `validate` stay fully streamed.
 *
 * It sits just outside the fault stage (inside the attempt timeout): it
 * sees what an injected corrupt/truncate/schemaDrift fault did, and its
 * reading of the body counts against the attempt's deadline.
 */
import { Readable } from 'node:stream'
import { Ajv, type ValidateFunction } from 'ajv'
import type { Policy, UpstreamResponse } from '../core/pipeline.js'
import { ClientCancelledError, UpstreamError, classifyBodyError } from '../core/errors.js'
import type { ValidateConfig } from './schema.js'
import { discardBody } from './body.js'

async function readUpTo (body: Readable, maxBytes: number): Promise<Buffer | 'too_large'> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    const buf = chunk as Buffer
    size += buf.length
    if (size > maxBytes) {
      discardBody(body)
      return 'too_large'
    }
    chunks.push(buf)
  }
  return Buffer.concat(chunks, size)
}

/** Strict off so common real-world schemas ("format" without ajv-formats) still compile; throws on a schema that does not. */
export function compileSchema (schema: NonNullable<ValidateConfig['schema']>): ValidateFunction {
  return new Ajv({ strict: false, allErrors: false }).compile(schema)
}

export function validatePolicy (config: ValidateConfig, routeName: string): Policy {
  // Compiled once per route and config generation (prepareConfig has compiled it once already, so this does not throw).
  const check = config.schema !== undefined ? compileSchema(config.schema) : undefined
  return {
    name: 'validate',
    async execute (ctx, next): Promise<UpstreamResponse> {
      const res = await next(ctx)
      if (res.statusCode < 200 || res.statusCode >= 300 || ctx.method === 'HEAD' || res.statusCode === 204) return res
      let raw: Buffer | 'too_large'
      try {
        raw = await readUpTo(res.body, config.maxBytes)
      } catch (err) {
        if (ctx.clientGone) throw new ClientCancelledError()
        // A failed attempt like any other: counted, and a body shorter than its Content-Length is invalid, not a reset.
        const failure = classifyBodyError(err, res.headers['content-length'] !== undefined)
        ctx.route.attemptFailed(ctx, failure.errorClass)
        throw failure
      }
      const fail = (why: string): never => {
        ctx.route.attemptFailed(ctx, 'invalid_response', ctx.attemptInjected)
        throw new UpstreamError('invalid_response', `route ${routeName}: the upstream response failed validation: ${why}`)
      }
      if (raw === 'too_large') return fail(`body larger than validate.maxBytes (${config.maxBytes})`)
      let parsed: unknown
      try {
        parsed = JSON.parse(raw.toString('utf8'))
      } catch {
        return fail('body is not valid JSON')
      }
      if (check !== undefined && !check(parsed)) {
        const first = check.errors?.[0]
        return fail(`body does not match the schema${first ? ` (${first.instancePath || '/'} ${first.message ?? ''})` : ''}`)
      }
      const headers: Record<string, string | string[] | undefined> = { ...res.headers, 'content-length': String(raw.length) }
      delete headers['transfer-encoding']
      return { statusCode: res.statusCode, headers, body: Readable.from([raw]) }
    }
  }
}
