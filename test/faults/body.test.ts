import t from 'tap'
import { scrape, startUpstream, sumOf } from '../helpers.js'
import { chaosProxy, jsonUpstream, see } from './fixtures.js'
import { drift } from '../../src/faults/schema-drift.js'

const BIG = { items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item-${i}`, price: i * 1.5 })) }
const BIG_TEXT = JSON.stringify(BIG)

t.test('throttle on the response: the body arrives whole, at about bytesPerSecond', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const size = Buffer.byteLength(BIG_TEXT)
  const rate = size // 1 s for the whole body
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: rate, match: { path: '/svc/x' } }] })
  // The first request through a new proxy pays for warm-up (hundreds of ms on a loaded machine).
  await see(`${proxy.url}/svc/warm-up`)
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.equal(res.body.toString(), BIG_TEXT, 'every byte, in order')
  t.equal(res.headers['content-length'], String(size), 'length unchanged')
  // Paced against the start, so never early; the upper bound leaves room
  // for a loaded machine yet fails at half the rate (2 s).
  t.ok(res.ms >= 950, `took ${Math.round(res.ms)} ms for 1 s worth: not faster than the rate`)
  t.ok(res.ms < 1_800, `took ${Math.round(res.ms)} ms for 1 s worth: not much slower either`)
})

t.test('throttle on the request: the upstream gets the whole upload, slowly', async (t) => {
  let received = ''
  const upstream = await startUpstream(t, (req, res) => {
    req.setEncoding('utf8')
    req.on('data', (c: string) => { received += c })
    req.on('end', () => { res.end('ok') })
  })
  const body = 'x'.repeat(1_000)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: 1_000, direction: 'request', match: { path: '/svc/upload' } }] })
  await see(`${proxy.url}/svc/warm-up`, { method: 'POST', body: 'x' })
  received = ''
  const res = await see(`${proxy.url}/svc/upload`, { method: 'POST', body, headers: { 'content-type': 'text/plain' } })
  t.equal(res.status, 200)
  t.equal(received, body)
  t.ok(res.ms >= 950, `took ${Math.round(res.ms)} ms for 1 s worth: not faster than the rate`)
  t.ok(res.ms < 1_800, `took ${Math.round(res.ms)} ms for 1 s worth: not much slower either (half the rate would be 2 s)`)
})

t.test('truncate: the first bytes, then a closed connection that betrays the short body', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'truncate', bytes: 64 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.equal(res.headers['content-length'], String(Buffer.byteLength(BIG_TEXT)), 'the length still promises the whole body')
  t.equal(res.body.toString(), BIG_TEXT.slice(0, 64))
  t.ok(res.error, 'the client saw the body end early')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'invalid_response' }), 1)
})

t.test('truncate clean: a well-formed response with half a document', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'truncate', bytes: 64, clean: true }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.equal(res.error, undefined, 'no transport error at all')
  t.equal(res.headers['content-length'], undefined)
  t.equal(res.body.toString(), BIG_TEXT.slice(0, 64))
  t.throws(() => JSON.parse(res.body.toString()), 'only parsing catches it')
})

t.test('truncate clean: a body written in several chunks still stops at the limit', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    let n = 0
    const more = (): void => {
      if (n === 4) { res.end(); return }
      res.write(`chunk-${n++}|`)
      setTimeout(more, 20)
    }
    more()
  })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'truncate', bytes: 12, clean: true }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.equal(res.body.toString(), 'chunk-0|chun', '8 bytes of the first chunk, 4 of the second, none after')
})

t.test('truncate client side: the client connection closes after the bytes', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'truncate', bytes: 30, at: 'client' }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.ok(res.error)
  t.equal(res.body.toString(), BIG_TEXT.slice(0, 30))
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc' }), 0)
})

t.test('corrupt json: same length, invalid JSON that starts like an HTML page', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'corrupt' }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.equal(res.body.length, Buffer.byteLength(BIG_TEXT))
  t.equal(res.body.toString(), '<' + BIG_TEXT.slice(1))
  t.throws(() => JSON.parse(res.body.toString()))
})

t.test('corrupt bytes: single-bit flips at the given rate, replayable from the seed', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const original = Buffer.from(BIG_TEXT)
  const proxy = await chaosProxy(t, upstream.url, { seed: 9, faults: [{ kind: 'corrupt', mode: 'bytes', rate: 1 }] })
  const all = await see(`${proxy.url}/svc/x`)
  t.equal(all.body.length, original.length)
  let oneBit = 0
  for (let i = 0; i < original.length; i++) {
    const x = original[i]! ^ all.body[i]!
    if (x !== 0 && (x & (x - 1)) === 0) oneBit++
  }
  t.equal(oneBit, original.length, 'rate 1: every byte has exactly one bit flipped')

  const sparse = async (): Promise<Buffer> => {
    const p = await chaosProxy(t, upstream.url, { seed: 3, faults: [{ kind: 'corrupt', mode: 'bytes', rate: 0.05 }] })
    return (await see(`${p.url}/svc/x`)).body
  }
  const first = await sparse()
  let changed = 0
  for (let i = 0; i < original.length; i++) if (original[i] !== first[i]) changed++
  t.ok(changed > 0 && changed < original.length / 4, `${changed} of ${original.length} bytes changed at rate 0.05`)
  t.same(await sparse(), first, 'the same seed flips the same bits')
})

t.test('schemaDrift rewrites named JSON fields, walking arrays', async (t) => {
  const upstream = await jsonUpstream(t, BIG)
  const proxy = await chaosProxy(t, upstream.url, {
    faults: [{ kind: 'schemaDrift', drop: ['items.name'], rename: { 'items.id': 'itemId' }, retype: { 'items.price': 'string' } }]
  })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  const body = JSON.parse(res.body.toString()) as { items: Array<Record<string, unknown>> }
  t.equal(body.items.length, 20)
  t.same(body.items[3], { itemId: 3, price: '4.5' })
  t.equal(res.headers['content-length'], undefined, 'the length changed, so it is not claimed')
})

t.test('schemaDrift leaves a non-JSON answer alone', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.setHeader('content-type', 'text/plain'); res.end('id,name\n1,lamp\n') })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'schemaDrift', drop: ['id'] }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.body.toString(), 'id,name\n1,lamp\n')
})

t.test('drift() on documents: top-level arrays, nested paths, types', async (t) => {
  t.same(drift([{ a: 1, b: { c: 2 } }, { a: 3 }], { drop: ['b.c'], rename: { a: 'A' }, retype: {} }), [{ A: 1, b: {} }, { A: 3 }])
  t.same(drift({ n: '12', s: 5, o: 1, l: 2, z: 'x', b: 0 }, { drop: [], rename: {}, retype: { n: 'number', s: 'string', o: 'object', l: 'array', z: 'null', b: 'boolean' } }),
    { n: 12, s: '5', o: { value: 1 }, l: [2], z: null, b: false })
  t.same(drift({ a: 1 }, { drop: ['missing.deep'], rename: { nope: 'x' }, retype: {} }), { a: 1 }, 'absent fields are left alone')
})

t.test('slowHeaders: the upstream does the work, the answer comes late', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'slowHeaders', ms: 300 }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 200)
  t.ok(res.ms >= 280, `took ${Math.round(res.ms)} ms`)
  t.equal(upstream.hits(), 1)
})

t.test('slowHeaders past the attempt timeout: a timeout, though the upstream did answer', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'slowHeaders', ms: 5_000 }] }, { resilience: { timeoutMs: 200 } })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.status, 504)
  t.ok(res.ms < 2_000)
  t.equal(upstream.hits(), 1, 'unlike latency, the upstream saw the request')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_upstream_errors_total', { route: 'svc', error_class: 'timeout' }), 1)
})
