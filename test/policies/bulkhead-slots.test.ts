/**
 * A bulkhead slot is held until the upstream body is done, whatever shape
 * the answer has: one without a body (HEAD, 204, 304), one the client
 * never reads to the end, one a fallback replaced. With one slot and no
 * queue, a slot that leaks turns every later request into a 503.
 */
import t from 'tap'
import { request } from 'undici'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

t.test('answers without a body, cut short or replaced all give their slot back', async (t) => {
  let n = 0
  const upstream = await startUpstream(t, (req, res) => {
    n++
    if (req.url === '/b/nocontent') { res.statusCode = 204; res.end(); return }
    if (req.url === '/b/notmodified') { res.statusCode = 304; res.setHeader('etag', '"x"'); res.end(); return }
    if (req.url === '/b/fail') { res.statusCode = 503; res.end('down'); return }
    res.setHeader('content-type', 'text/plain')
    res.end(req.url === '/b/big' ? 'x'.repeat(256 * 1024) : 'ok')
  })
  const proxy = await startProxy(t, {
    routes: [route('b', '/b', upstream.url, {
      resilience: {
        timeoutMs: 2_000,
        bulkhead: { maxConcurrent: 1, maxQueue: 0 },
        fallback: [{ static: { status: 200, body: 'static' } }]
      }
    })]
  })
  const shapes: Array<{ path: string, method?: string, headers?: Record<string, string> }> = [
    { path: '/b/x', method: 'HEAD' },
    { path: '/b/nocontent' },
    { path: '/b/notmodified', headers: { 'if-none-match': '"x"' } },
    { path: '/b/fail' },
    { path: '/b/x', method: 'OPTIONS' }
  ]
  for (const shape of shapes) {
    for (let i = 0; i < 3; i++) {
      const res = await fetchText(`${proxy.url}${shape.path}`, { method: shape.method, headers: shape.headers, timeoutMs: 3_000 })
      t.not(res.status, 503, `${shape.method ?? 'GET'} ${shape.path} #${i + 1}: a slot was free (got ${res.status} ${res.body.slice(0, 80)})`)
    }
  }
  // A client that leaves mid-body: the upstream body is abandoned, and its slot with it.
  for (let i = 0; i < 3; i++) {
    const res = await request(`${proxy.url}/b/big`)
    await new Promise<void>((resolve) => { res.body.once('data', () => { resolve() }) })
    res.body.destroy()
    let status = 0
    for (let tries = 0; tries < 50 && status !== 200; tries++) {
      status = (await fetchText(`${proxy.url}/b/x`, { timeoutMs: 3_000 })).status
      if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 20))
    }
    t.equal(status, 200, `after client #${i + 1} left mid-body, the slot came back`)
  }
  t.ok(n >= 18, 'every request reached the upstream')
})
