/**
 * Schema drift: the JSON answer has the shape of another API version.
 * Named fields are dropped, renamed or given another type. A field is a
 * dot path (`items.price`); arrays on the way are walked, so it applies to
 * every element. The body must be buffered to be rewritten: only JSON
 * bodies up to `maxBytes` are touched, anything else (not JSON by its
 * content type, too large, not parseable) passes through unchanged.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { z } from 'zod'
import { defineFault, faultObject } from './fault.js'
import { isJson, throughBody, withoutLength } from './body.js'

const TYPES = ['string', 'number', 'boolean', 'null', 'array', 'object'] as const
type JsonType = (typeof TYPES)[number]
const fieldPath = z.string().regex(/^[^.\s]+(\.[^.\s]+)*$/, { error: 'expected a field path such as "price" or "items.price"' })

interface Drift {
  drop: string[]
  rename: Record<string, string>
  retype: Record<string, JsonType>
}

function retyped (value: unknown, type: JsonType): unknown {
  switch (type) {
    case 'string': return typeof value === 'string' ? value : JSON.stringify(value)
    case 'number': {
      const n = Number(value)
      return Number.isFinite(n) ? n : 0
    }
    case 'boolean': return Boolean(value)
    case 'null': return null
    case 'array': return Array.isArray(value) ? value : [value]
    case 'object': return value !== null && typeof value === 'object' && !Array.isArray(value) ? value : { value }
  }
}

/** Applies `change` to the field at `path` in every object reached through it (arrays are walked). */
function atPath (node: unknown, path: readonly string[], change: (parent: Record<string, unknown>, key: string) => void): void {
  if (Array.isArray(node)) {
    for (const item of node) atPath(item, path, change)
    return
  }
  if (node === null || typeof node !== 'object') return
  const parent = node as Record<string, unknown>
  const [key, ...rest] = path
  if (key === undefined || !Object.hasOwn(parent, key)) return
  if (rest.length === 0) change(parent, key)
  else atPath(parent[key], rest, change)
}

export function drift (document: unknown, spec: Drift): unknown {
  for (const field of spec.drop) atPath(document, field.split('.'), (parent, key) => { delete parent[key] })
  for (const [field, type] of Object.entries(spec.retype)) atPath(document, field.split('.'), (parent, key) => { parent[key] = retyped(parent[key], type) })
  for (const [field, to] of Object.entries(spec.rename)) {
    atPath(document, field.split('.'), (parent, key) => {
      parent[to] = parent[key]
      delete parent[key]
    })
  }
  return document
}

class DriftJson extends Transform {
  private chunks: Buffer[] | undefined = []
  private size = 0
  private readonly spec: Drift
  private readonly maxBytes: number

  constructor (spec: Drift, maxBytes: number) {
    super()
    this.spec = spec
    this.maxBytes = maxBytes
  }

  override _transform (chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.chunks === undefined) { callback(null, chunk); return }
    this.size += chunk.length
    this.chunks.push(chunk)
    if (this.size <= this.maxBytes) { callback(); return }
    // Too large to rewrite: let it through as it is.
    for (const c of this.chunks) this.push(c)
    this.chunks = undefined
    callback()
  }

  override _flush (callback: TransformCallback): void {
    if (this.chunks === undefined) { callback(); return }
    const text = Buffer.concat(this.chunks).toString('utf8')
    let out = text
    try {
      out = JSON.stringify(drift(JSON.parse(text), this.spec))
    } catch {
      // Not JSON after all: unchanged.
    }
    callback(null, Buffer.from(out))
  }
}

export const schemaDrift = defineFault({
  summary: 'drops, renames or retypes JSON fields, like another API version',
  example: 'schemaDrift; drop=name',
  schema: faultObject('schemaDrift', {
    drop: z.array(fieldPath).default([]),
    /** Field path → its new name (same level). */
    rename: z.record(fieldPath, z.string().min(1)).default({}),
    retype: z.record(fieldPath, z.enum(TYPES)).default({}),
    /** Bodies larger than this are passed on untouched; buffered up to this, so bounded (a trigger header: by chaos.maxTriggerBytes). */
    maxBytes: z.number().int().positive().max(64 * 1024 * 1024).default(1024 * 1024)
  }).superRefine((config, ctx) => {
    if (config.drop.length === 0 && Object.keys(config.rename).length === 0 && Object.keys(config.retype).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['drop'], message: 'expected at least one field to drop, rename or retype' })
    }
  }),
  header: { lists: ['drop'], maps: ['rename', 'retype'] },
  create: (config) => ({
    async apply (ctx, next) {
      const response = await next(ctx)
      if (!isJson(response.headers)) return response
      return throughBody(response, new DriftJson(config, config.maxBytes), withoutLength(response.headers, ctx.method))
    }
  })
})
