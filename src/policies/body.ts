/**
 * Request and response bodies for policies that send a request again
 * (retry, the alternate fallback) or throw an answer away.
 */
import { Readable } from 'node:stream'
import type { RequestContext } from '../core/context.js'
import { ClientCancelledError, ClientFaultError, UpstreamError } from '../core/errors.js'

/** True when ctx.body can be sent again: no body, or one already buffered. */
export function replayable (ctx: RequestContext): boolean {
  return ctx.body === null || Buffer.isBuffer(ctx.body)
}

async function * prefixThenRest (chunks: Buffer[], rest: Readable): AsyncGenerator<Buffer> {
  yield * chunks
  for await (const chunk of rest) yield chunk as Buffer
}

/**
 * Makes ctx.body replayable when it fits in `limit` bytes, by reading it
 * whole before the first attempt. A body known to be larger is left
 * streaming; a chunked body found to be larger is re-assembled (what was
 * read, then the rest of the stream) and sent once, not retried. Reading
 * is bounded by the request's deadline.
 */
export async function makeReplayable (ctx: RequestContext, limit: number): Promise<void> {
  const body = ctx.body
  if (body === null || Buffer.isBuffer(body)) return
  const declared = Number(ctx.req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) return
  const { chunks, size, complete } = await readUpTo(ctx, body, limit)
  if (complete) {
    ctx.body = Buffer.concat(chunks, size)
    return
  }
  const rest = Readable.from(prefixThenRest(chunks, body), { objectMode: false })
  // Ours, so its errors are ours: the client's failure reaches the request through ctx.clientFault.
  rest.on('error', noop)
  ctx.body = rest
}

function noop (): void {}

/** A client body that failed while being read is the client's fault, never the upstream's. */
function clientFaultOf (ctx: RequestContext, err?: unknown): ClientFaultError {
  return ctx.clientFault ?? (err instanceof ClientFaultError ? err : new ClientCancelledError())
}

function readUpTo (ctx: RequestContext, stream: Readable, limit: number): Promise<{ chunks: Buffer[], size: number, complete: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const finish = (complete: boolean): void => {
      cleanup()
      resolve({ chunks, size, complete })
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      size += chunk.length
      if (size > limit) {
        stream.pause()
        finish(false)
      }
    }
    const onEnd = (): void => { finish(true) }
    const onError = (err: Error): void => {
      cleanup()
      reject(clientFaultOf(ctx, err))
    }
    const onClose = (): void => {
      cleanup()
      reject(clientFaultOf(ctx))
    }
    const onTimeout = (): void => {
      cleanup()
      stream.pause()
      reject(new UpstreamError('timeout', 'the client did not finish sending the request body within the route\'s timeoutMs', { timeoutPhase: 'total' }))
    }
    const timer = setTimeout(onTimeout, Math.max(1, ctx.deadline - performance.now()))
    function cleanup (): void {
      clearTimeout(timer)
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('error', onError)
      stream.off('close', onClose)
    }
    stream.on('data', onData)
    stream.once('end', onEnd)
    stream.once('error', onError)
    stream.once('close', onClose)
  })
}

/**
 * Throws away an answer we will not send (a retried 503, a failure a
 * fallback replaced). undici's dump() reads a little to keep the
 * connection reusable and destroys it past the limit, so a discarded body
 * never leaks a pooled connection.
 */
export function discardBody (body: Readable): void {
  const dumpable = body as Readable & { dump?: (opts?: { limit?: number }) => Promise<void> }
  if (typeof dumpable.dump === 'function') {
    dumpable.dump({ limit: 64 * 1024 }).catch(() => {})
  } else {
    body.destroy()
  }
}
