/**
 * The reference point: plain @fastify/http-proxy with its defaults (undici
 * Pool, 128 connections, pipelining 1), no logger, nothing added. This is
 * what "a fastify proxy" costs before any feature of ours.
 *
 *   node bench/fastify-http-proxy.mjs PORT UPSTREAM_URL   (listens on 127.0.0.1 only)
 */
import Fastify from 'fastify'
import proxy from '@fastify/http-proxy'

const port = Number(process.argv[2] ?? 0)
const upstream = process.argv[3] ?? 'http://127.0.0.1:3000'

const app = Fastify({ logger: false, keepAliveTimeout: 65_000 })
await app.register(proxy, { upstream })
await app.listen({ host: '127.0.0.1', port })
process.stdout.write(`@fastify/http-proxy on 127.0.0.1:${app.server.address().port} -> ${upstream}\n`)
process.on('SIGTERM', () => { app.close().then(() => process.exit(0)) })
