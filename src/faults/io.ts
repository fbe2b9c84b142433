/**
 * What a fault's actions mean at each side. A fault says "wait 200 ms",
 * "fail as a reset", "answer 503" or "cut the body here"; the FaultIO it
 * is handed turns that into the right thing:
 *
 *   upstream  the dependency misbehaves. A wait is cut by the attempt
 *             timeout; a failure is a thrown UpstreamError and an answer
 *             with a failure status sets ctx.errorClass, both counted in
 *             faultline_upstream_errors_total{injected="true"}, so retry,
 *             breaker and fallback see exactly what a real failure shows.
 *   client    the calling service is hit directly, after the pipeline: a
 *             failure resets or closes the client's connection, nothing
 *             is counted as an upstream error, no policy is involved.
 *
 * Every wait also ends when the kill switch goes off or chaos is switched
 * off on the route (the request then goes on normally), and when the
 * client goes away. Listeners and timers are removed on every path.
 */
import type { Socket } from 'node:net'
import { Readable, type Transform } from 'node:stream'
import type { RequestContext } from '../core/context.js'
import type { UpstreamResponse } from '../core/pipeline.js'
import { ClientCancelledError, ClientFaultError, FaultlineError, UpstreamError, classifyError, type ErrorClass } from '../core/errors.js'
import { responseErrorClass } from '../core/attempt.js'
import { MAX_TIMER_MS } from '../util/timer.js'
import type { ChaosSwitch } from './switch.js'

/** How a connection is ended: `reset` sends a TCP RST, `close` a FIN. */
/** Where a fault acts: between faultline and the upstream, or on the client's own connection. */
export const FAULT_SIDES = ['upstream', 'client'] as const
export type FaultSide = (typeof FAULT_SIDES)[number]

export type CutHow = 'reset' | 'close'

/** Marks errors that are ours, in logs and in the error's `code`. */
export const INJECTED_CODE = 'FAULTLINE_INJECTED'

/** Thrown by a client-side fault that ends the exchange without an answer; the client seam cuts the connection. */
export class ClientCutError extends FaultlineError {
  readonly how: CutHow
  constructor (how: CutHow, message: string) {
    super('client_cut', message)
    this.name = 'ClientCutError'
    this.how = how
  }
}

/** What a FaultIO needs from its route's chaos state. */
export interface ChaosLink {
  /** The route's seeded source: every random choice a fault makes comes from here, so a seed replays. */
  readonly random: () => number
  /** Aborted when chaos is switched off on the route. */
  readonly routeChaosOff: () => AbortSignal
  readonly chaosSwitch: ChaosSwitch
}

export type WaitResult = 'elapsed' | 'released'

const EMPTY = Buffer.alloc(0)

/** Ends the client's connection after what was already written has been flushed to it. */
export function cutSocket (socket: Socket, how: CutHow): void {
  if (socket.destroyed) return
  socket.write(EMPTY, () => {
    if (how === 'reset') socket.resetAndDestroy()
    else socket.destroy()
  })
}

export abstract class FaultIO {
  abstract readonly at: FaultSide
  protected readonly link: ChaosLink

  constructor (link: ChaosLink) {
    this.link = link
  }

  /** The route's seeded source, bound so it can be passed around. */
  readonly random = (): number => this.link.random()

  /** The longest an open-ended hang lasts at this side. */
  abstract hangLimitMs (ctx: RequestContext): number
  /** The error to throw to fail the exchange before any response. */
  abstract fail (ctx: RequestContext, errorClass: ErrorClass, message: string, how: CutHow): Error
  /** Ends a response body early, once what `stream` already pushed has gone out. */
  abstract cut (ctx: RequestContext, stream: Transform, errorClass: ErrorClass, message: string, how: CutHow): void
  /** The error a wait rejects with when the exchange is abandoned. */
  protected abstract abandoned (ctx: RequestContext, reason: unknown): Error
  /** Notes an injected answer (an upstream-side failure status is counted). */
  protected abstract answered (ctx: RequestContext, status: number): void

  /**
   * Waits `ms` (Infinity: until something else ends it). Resolves `elapsed`,
   * or `released` when chaos is switched off; rejects when the attempt
   * times out (upstream side) or the client leaves.
   */
  async wait (ctx: RequestContext, ms: number): Promise<WaitResult> {
    const routeChaosOff = this.link.routeChaosOff()
    const globalRelease = this.link.chaosSwitch.chaosOffSignal
    if (routeChaosOff.aborted || globalRelease.aborted) return 'released'
    const attempt = this.at === 'upstream' ? ctx.attemptSignal : undefined
    if (attempt?.aborted === true) throw this.abandoned(ctx, attempt.reason)
    const socket = ctx.req.socket
    if (socket.destroyed) throw this.abandoned(ctx, undefined)
    return await new Promise<WaitResult>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined
      const settle = (): void => {
        clearTimeout(timer)
        attempt?.removeEventListener('abort', onAbort)
        socket.off('close', onGone)
        routeChaosOff.removeEventListener('abort', onRelease)
        globalRelease.removeEventListener('abort', onRelease)
      }
      const onAbort = (): void => { settle(); reject(this.abandoned(ctx, attempt?.reason)) }
      const onGone = (): void => { settle(); reject(this.abandoned(ctx, undefined)) }
      const onRelease = (): void => { settle(); resolve('released') }
      // Chunked: a wait longer than a Node timer holds (ms + jitter can pass it) must not fire at once.
      const arm = (left: number): void => {
        timer = setTimeout(() => {
          if (left > MAX_TIMER_MS) { arm(left - MAX_TIMER_MS); return }
          settle()
          resolve('elapsed')
        }, Math.min(Math.max(0, left), MAX_TIMER_MS))
      }
      if (Number.isFinite(ms)) arm(ms)
      attempt?.addEventListener('abort', onAbort)
      socket.once('close', onGone)
      routeChaosOff.addEventListener('abort', onRelease)
      globalRelease.addEventListener('abort', onRelease)
    })
  }

  /** Calls `fn` once when chaos is switched off (route or global); returns the unsubscribe. */
  onRelease (fn: () => void): () => void {
    const routeChaosOff = this.link.routeChaosOff()
    const globalRelease = this.link.chaosSwitch.chaosOffSignal
    if (routeChaosOff.aborted || globalRelease.aborted) {
      fn()
      return noop
    }
    const once = (): void => { off(); fn() }
    const off = (): void => {
      routeChaosOff.removeEventListener('abort', once)
      globalRelease.removeEventListener('abort', once)
    }
    routeChaosOff.addEventListener('abort', once)
    globalRelease.addEventListener('abort', once)
    return off
  }

  /** An answer made here instead of by the upstream. */
  respond (ctx: RequestContext, status: number, headers: Record<string, string>, body: string): UpstreamResponse {
    const payload = Buffer.from(body)
    this.answered(ctx, status)
    return {
      statusCode: status,
      headers: { ...headers, 'content-length': String(payload.length) },
      body: Readable.from(payload.length > 0 ? [payload] : [])
    }
  }
}

function noop (): void {}

export class UpstreamSideIO extends FaultIO {
  readonly at = 'upstream' as const

  // The attempt timeout bounds every upstream-side hang.
  hangLimitMs (): number { return Infinity }

  fail (ctx: RequestContext, errorClass: ErrorClass, message: string): Error {
    ctx.route.attemptFailed(ctx, errorClass, true)
    return new UpstreamError(errorClass, message, { code: INJECTED_CODE })
  }

  cut (_ctx: RequestContext, stream: Transform, errorClass: ErrorClass, message: string): void {
    // The responder counts a body error as a failed attempt and closes the
    // client's response, as it does when a real upstream dies mid-body.
    setImmediate(() => { stream.destroy(new UpstreamError(errorClass, message, { code: INJECTED_CODE })) })
  }

  protected abandoned (ctx: RequestContext, reason: unknown): Error {
    // The client left or broke a limit during the wait: its fault, not the upstream's.
    if (reason === undefined) return ctx.clientFault ?? new ClientCancelledError()
    if (reason instanceof ClientFaultError) return reason
    // The attempt timed out while the fault held it: a failed attempt, as if the upstream were that slow.
    const failure = classifyError(reason)
    ctx.route.attemptFailed(ctx, failure.errorClass, true)
    return failure
  }

  protected answered (ctx: RequestContext, status: number): void {
    const failed = responseErrorClass(status)
    if (failed !== undefined) ctx.route.attemptFailed(ctx, failed, true)
  }
}

export class ClientSideIO extends FaultIO {
  readonly at = 'client' as const

  // Nothing downstream of the pipeline bounds a client-side hang: the route's timeout does, so a socket is never held forever.
  hangLimitMs (ctx: RequestContext): number { return ctx.route.timeoutMs }

  fail (_ctx: RequestContext, _errorClass: ErrorClass, message: string, how: CutHow): Error {
    return new ClientCutError(how, message)
  }

  cut (ctx: RequestContext, _stream: Transform, _errorClass: ErrorClass, _message: string, how: CutHow): void {
    ctx.outcome = 'failed'
    setImmediate(cutSocket, ctx.req.socket, how)
  }

  protected abandoned (): Error {
    return new ClientCancelledError('the client closed the connection during an injected fault')
  }

  protected answered (): void {}
}
