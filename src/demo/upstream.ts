/**
 * The bundled demo dependency: a small "shop backend" that is mostly fine
 * and sometimes not, the way real dependencies are. Its misbehaviour is
 * drawn from a seeded generator, so a demo run is reproducible.
 *
 *   GET  /catalog/items    fast JSON
 *   GET  /pricing/quote    usually ~5 ms, one call in eight takes 300-900 ms
 *   GET  /inventory/stock  one call in five answers 503
 *   POST /orders           echoes the JSON body back with an order id (503 during an outage: setOrdersDown)
 *   GET  /healthz          200
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import { seededRandom } from '../util/random.js'

function json (res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) })
  res.end(payload)
}

export interface DemoUpstream {
  server: Server
  url: string
  /** The orders service goes down (503) or comes back: the demo's deferral scene. */
  setOrdersDown: (down: boolean) => void
  /** Orders created so far (each delivery that reached the service). */
  orders: () => number
  close: () => Promise<void>
}

export async function startDemoUpstream (options: { port?: number, host?: string, seed?: number } = {}): Promise<DemoUpstream> {
  const random = seededRandom(options.seed ?? 42)
  let orders = 0
  let ordersDown = false
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]
    if (path === '/healthz') return json(res, 200, { status: 'ok' })
    if (path === '/catalog/items' && req.method === 'GET') {
      return json(res, 200, { items: [{ id: 1, name: 'lamp', price: 25 }, { id: 2, name: 'desk', price: 180 }] })
    }
    if (path === '/pricing/quote' && req.method === 'GET') {
      const slow = random() < 1 / 8
      const delay = slow ? 300 + Math.floor(random() * 600) : 2 + Math.floor(random() * 6)
      setTimeout(() => { json(res, 200, { quote: 99.5, currency: 'EUR' }) }, delay)
      return
    }
    if (path === '/inventory/stock' && req.method === 'GET') {
      if (random() < 1 / 5) return json(res, 503, { error: 'inventory database overloaded' })
      return json(res, 200, { sku: 'lamp', inStock: 12 })
    }
    if (path === '/orders' && req.method === 'POST') {
      if (ordersDown) {
        req.resume()
        return json(res, 503, { error: 'orders service unavailable' })
      }
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        orders++
        let body: unknown = null
        try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')) } catch { return json(res, 400, { error: 'invalid JSON' }) }
        json(res, 201, { orderId: orders, order: body })
      })
      return
    }
    json(res, 404, { error: 'not found', path })
  })
  server.keepAliveTimeout = 10_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => { resolve() })
  })
  const address = server.address() as AddressInfo
  return {
    server,
    url: `http://${options.host ?? '127.0.0.1'}:${address.port}`,
    setOrdersDown: (down) => { ordersDown = down },
    orders: () => orders,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => { resolve() }))
    }
  }
}

// `node dist/demo/upstream.js` runs it standalone (the docker-compose demo upstream).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env.PORT ?? 9000)
  startDemoUpstream({ port, host: process.env.HOST ?? '0.0.0.0', seed: Number(process.env.SEED ?? 42) })
    .then((u) => { process.stdout.write(`demo upstream listening on ${u.url}\n`) })
    .catch((err: unknown) => { process.stderr.write(`${String(err)}\n`); process.exit(1) })
  process.on('SIGTERM', () => process.exit(0))
}
