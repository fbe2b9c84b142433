/**
 * The responder's body pump, against a real client over 127.0.0.1: a body
 * that stops without 'end' (destroyed quietly by some stage) must abort
 * the client's response, never leave it waiting.
 */
import { createServer, request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import t from 'tap'
import { sendUpstreamResponse } from '../../src/proxy/respond.js'
import type { RequestContext, RouteView } from '../../src/core/context.js'

/** Just what sendUpstreamResponse reads of a context. */
function fakeContext (): RequestContext {
  return {
    outcome: 'ok',
    requestId: 'r-1',
    attempts: 1,
    fallback: undefined,
    fault: undefined,
    route: { exposeFaultHeaders: false, bodyIdleTimeoutMs: 10_000, attemptFailed: () => {}, slowReader: () => {} } satisfies Partial<RouteView>
  } as unknown as RequestContext
}

t.test('a body destroyed without an error aborts the client response', async (t) => {
  const server = createServer((_req, res) => {
    const body = new Readable({ read () {} })
    sendUpstreamResponse(fakeContext(), res, { statusCode: 200, headers: { 'content-type': 'text/plain' }, body })
    body.push('first part ')
    setTimeout(() => { body.destroy() }, 50)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = (server.address() as AddressInfo).port
  const started = performance.now()
  const outcome = await new Promise<{ status: number, received: string, ended: 'end' | 'aborted' }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let received = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { received += c })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, received, ended: 'end' }) })
      res.on('error', () => { resolve({ status: res.statusCode ?? 0, received, ended: 'aborted' }) })
      res.on('aborted', () => { resolve({ status: res.statusCode ?? 0, received, ended: 'aborted' }) })
    })
    req.on('error', reject)
    req.setTimeout(3_000, () => { reject(new Error('the client was left waiting')) })
    req.end()
  })
  t.equal(outcome.status, 200, 'the status line went out')
  t.equal(outcome.received, 'first part ', 'what was sent arrived')
  t.equal(outcome.ended, 'aborted', 'the response was aborted, not ended as if complete')
  t.ok(performance.now() - started < 2_000, 'at once, not after a timeout')
})
