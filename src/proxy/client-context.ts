/**
 * The listener's RequestContext: it knows its client's response, so a 1xx
 * answer from the upstream (102, 103) reaches the client before the final
 * one. Policies and faults see a RequestContext and never this response:
 * the responder owns the client's answer.
 *
 * A subclass with a field rather than a hook closure per request: V8
 * allocates a function literal assigned to a property straight into the old
 * generation, and from there it kept every request's objects alive through
 * scavenges (docs/DECISIONS.md, bench/RESULTS.md).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import { RequestContext, type RouteView } from '../core/context.js'
import { sendInformational } from './respond.js'

export class ClientContext extends RequestContext {
  readonly #res: ServerResponse

  constructor (
    route: RouteView, req: IncomingMessage, res: ServerResponse, requestId: string,
    upstreamPath: string, upstreamHeaders: string[], body: Readable | null, startedAt: number
  ) {
    super(route, req, requestId, upstreamPath, upstreamHeaders, body, startedAt)
    this.#res = res
  }

  override informational (status: number, headers: Record<string, string | string[] | undefined>): void {
    sendInformational(this.#res, status, headers)
  }
}
