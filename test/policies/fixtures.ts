/**
 * Scripted failing upstreams for the policy tests (on top of test/helpers.ts).
 */
import { createServer as createTcpServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startUpstream, type Teardown, type TestUpstream } from '../helpers.js'

export type Step =
  | number
  | { status: number, headers?: Record<string, string>, body?: string }
  | 'reset'
  | 'hang'

/** An upstream that answers each request with the next step of `script` (the last step repeats). */
export async function scriptedUpstream (t: Teardown, script: Step[], onRequest?: (req: IncomingMessage, body: string) => void): Promise<TestUpstream> {
  let i = 0
  return await startUpstream(t, (req: IncomingMessage, res: ServerResponse) => {
    const step = script[Math.min(i++, script.length - 1)]!
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      onRequest?.(req, Buffer.concat(chunks).toString())
      if (step === 'reset') { req.socket.destroy(); return }
      if (step === 'hang') return
      const s = typeof step === 'number' ? { status: step } : step
      const body = s.body ?? `status ${s.status}`
      res.writeHead(s.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...s.headers })
      res.end(body)
    })
  })
}

/** A TCP server that answers every request with bytes that are not HTTP. */
export async function garbageUpstream (t: Teardown): Promise<{ url: string, hits: () => number }> {
  let hits = 0
  const sockets = new Set<Socket>()
  const server = createTcpServer((socket) => {
    hits++
    sockets.add(socket)
    socket.once('data', () => { socket.end('NOT-HTTP garbage\r\n\r\n') })
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits }
}

export const ADMIN_TOKEN = 'test-admin-token-0123456789'
