/**
 * A chunked body sent in tiny chunks is forwarded in reasonably sized
 * writes: one byte per chunk must not become one upstream write (and one
 * re-framed chunk) per byte.
 */
import { connect } from 'node:net'
import t from 'tap'
import { route, startProxy, startUpstream } from '../helpers.js'

t.test('tiny request chunks are coalesced before they go upstream', async (t) => {
  let chunks = 0
  let bytes = 0
  const upstream = await startUpstream(t, (req, res) => {
    req.on('data', (c: Buffer) => { chunks++; bytes += c.length })
    req.on('end', () => { res.end(`got ${bytes}`) })
  })
  const proxy = await startProxy(t, { routes: [route('up', '/up', upstream.url)] })
  const socket = connect(Number(new URL(proxy.url).port), '127.0.0.1')
  let answer = ''
  socket.on('data', (c: Buffer) => { answer += c.toString('latin1') })
  await new Promise<void>((resolve) => socket.once('connect', () => { resolve() }))
  const oneByteChunks = '1\r\nx\r\n'.repeat(20_000)
  socket.write(`POST /up/x HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${oneByteChunks}0\r\n\r\n`)
  await new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  t.match(answer, /got 20000$/, 'the whole body arrived')
  t.ok(chunks < 200, `20,000 one-byte chunks reached the upstream in ${chunks} writes`)
})
