/**
 * The client-side seam. `at: client` faults hit the calling service
 * directly: they wrap the whole pipeline (timeouts, retries, fallback
 * included) and act on what goes back to the client, so no policy can
 * absorb them. A fault that ends the exchange without an answer resets or
 * closes the client's connection. The listener takes this path only while
 * `route.faultStage.clientSide` is true; otherwise it never runs.
 */
import type { ServerResponse } from 'node:http'
import type { RequestContext } from '../core/context.js'
import { ClientCutError, cutSocket } from '../faults/io.js'
import { TriggerError } from '../faults/trigger.js'
import { sendFailure, sendJson, sendUpstreamResponse } from './respond.js'
import type { RouteRuntime } from './route.js'

export function serveWithClientFaults (route: RouteRuntime, ctx: RequestContext, res: ServerResponse): void {
  let chosen
  try {
    chosen = route.faultStage.choose(ctx, 'client')
  } catch (err) {
    if (!(err instanceof TriggerError)) throw err
    sendJson(res, 400, { error: 'invalid_fault_trigger', message: err.message, route: route.name, requestId: ctx.requestId }, { 'x-request-id': ctx.requestId })
    return
  }
  const answer = chosen === undefined ? route.call(ctx) : route.faultStage.inject(ctx, chosen, route.call, route.faultStage.clientIO)
  answer.then(
    (upstream) => { sendUpstreamResponse(ctx, res, upstream) },
    (err: unknown) => {
      if (err instanceof ClientCutError) {
        ctx.outcome = 'failed'
        cutSocket(ctx.req.socket, err.how)
      } else {
        // A client that left (ClientCancelledError) gets nothing: sendFailure knows.
        sendFailure(ctx, res, err)
      }
    }
  )
}
