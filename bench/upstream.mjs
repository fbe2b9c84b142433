/**
 * The upstream every target loads: a plain node:http server answering every
 * request with the same ~1 KB JSON body, keep-alive. It does as little as
 * possible so that the proxy in front of it is what the benchmark measures.
 *
 *   node bench/upstream.mjs PORT        (listens on 127.0.0.1 only)
 */
import { createServer } from 'node:http'

const port = Number(process.argv[2] ?? process.env.PORT ?? 0)

// Built once: a realistic small API answer (~1 KB), never re-serialised.
const items = Array.from({ length: 12 }, (_, i) => ({ id: 1000 + i, sku: `SKU-${1000 + i}`, name: `catalog item ${i}`, price: 9.99 + i, stock: 40 - i }))
const BODY = Buffer.from(JSON.stringify({ page: 1, total: 12, items }))
const HEADERS = { 'content-type': 'application/json', 'content-length': BODY.length }

const server = createServer((req, res) => {
  // Drain any request body so the connection stays reusable.
  req.resume()
  res.writeHead(200, HEADERS)
  res.end(BODY)
})
// Longer than any client pool's idle timeout: the server never closes a
// pooled connection first, so no request is lost to a keep-alive race.
server.keepAliveTimeout = 65_000
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`upstream listening on 127.0.0.1:${server.address().port}, body ${BODY.length} bytes\n`)
})
process.on('SIGTERM', () => { server.closeAllConnections(); server.close(() => process.exit(0)) })
