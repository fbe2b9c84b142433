import t from 'tap'
import { scrape, startUpstream, sumOf, within } from '../helpers.js'
import { chaosProxy, chunkedUpstream, jsonUpstream, see } from './fixtures.js'
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
  // It trickles in slices of about 50 ms worth (20 for this body): not one
  // burst at the end, and not a byte at a time. A loaded machine merges
  // slices (fewer reads), never splits them.
  t.ok(res.firstDataMs! < res.ms / 2, `the first bytes came after ${Math.round(res.firstDataMs!)} ms of ${Math.round(res.ms)}: it trickles`)
  t.ok(res.dataEvents <= 60, `${res.dataEvents} reads for about 20 slices`)
})

t.test('throttle at 4 bytes/s: each byte goes when its own share of time is over, never a slice early', async (t) => {
  // Chunked (no Content-Length): the client knows the body is whole only when the throttle ends it.
  const upstream = await startUpstream(t, (_req, res) => { res.write('abcd'); res.end() })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: 4, match: { path: '/svc/x' } }] })
  const res = await see(`${proxy.url}/svc/x`, { timeoutMs: 5_000 })
  t.same([res.error, res.headers['content-length'], res.body.toString()], [undefined, undefined, 'abcd'], 'the whole body, ended')
  // One byte a slice, 250 ms each: the last is due at 1 s (two slices early would be 500 ms).
  t.ok(res.ms >= 950, `took ${Math.round(res.ms)} ms for 4 bytes at 4 bytes/s`)
  t.ok(res.firstDataMs! >= 240, `the first byte came after ${Math.round(res.firstDataMs!)} ms, its 250 ms share`)
})

t.test('a client that leaves a throttled body ends the upstream\'s stream too', async (t) => {
  let closed: (finished: boolean) => void = () => {}
  const upstreamClosed = new Promise<boolean>((resolve) => { closed = resolve })
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' })
    let n = 0
    // At most 10 s of data, so a proxy that never lets go still ends the test.
    const timer = setInterval(() => { if (++n === 200) { clearInterval(timer); res.end() } else res.write('x'.repeat(1_000)) }, 50)
    res.on('close', () => { clearInterval(timer); closed(res.writableFinished) })
  })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: 2_000 }] })
  const res = await see(`${proxy.url}/svc/x`, { abortAfterMs: 400 })
  t.equal(res.error?.code, 'CLIENT_GAVE_UP')
  const finished = await within(upstreamClosed, 5_000, 'still open')
  t.equal(finished, false, 'the upstream\'s answer was cut off soon after the client left, not sent to its end')
})

t.test('throttle paces a body written in several chunks against its start, not each chunk\'s', async (t) => {
  const piece = 'y'.repeat(250)
  const upstream = await chunkedUpstream(t, Array(4).fill(piece), 50, { 'content-type': 'text/plain', 'content-length': 1_000 })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: 1_000, match: { path: '/svc/x' } }] })
  await see(`${proxy.url}/svc/warm-up`)
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.body.toString(), piece.repeat(4))
  t.ok(res.ms >= 950, `took ${Math.round(res.ms)} ms for 1 s worth: not faster than the rate`)
  // Pacing each chunk from its own arrival would take about 2.5 s.
  t.ok(res.ms < 1_800, `took ${Math.round(res.ms)} ms for 1 s worth in four chunks: not much slower either`)
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

t.test('throttle on the request: a request without a body passes, and a retry sends the whole upload again', async (t) => {
  const received: string[] = []
  const upstream = await startUpstream(t, (req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      received.push(`${req.method} ${body}`)
      // The first upload is refused, so the route's retry sends it again.
      if (received.length === 2) { res.writeHead(503); res.end(); return }
      res.end(`got ${body.length}`)
    })
  })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'throttle', bytesPerSecond: 100_000, direction: 'request' }] }, {
    resilience: { retry: { attempts: 2, backoff: { baseMs: 0, jitter: 'none' }, on: [503], budgetRatio: 10, budgetMinRetries: 100 } }
  })
  const get = await see(`${proxy.url}/svc/x`)
  t.same([get.status, get.body.toString()], [200, 'got 0'], 'a GET has no body to slow: it goes through')
  const body = 'z'.repeat(2_000)
  const post = await see(`${proxy.url}/svc/x`, { method: 'POST', body, headers: { 'content-type': 'text/plain', 'idempotency-key': 'k1' } })
  t.same([post.status, post.body.toString()], [200, 'got 2000'], 'the retry got the whole body')
  t.same(received, ['GET ', `POST ${body}`, `POST ${body}`], 'each attempt sent the whole upload')
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
  const upstream = await chunkedUpstream(t, ['chunk-0|', 'chunk-1|', 'chunk-2|', 'chunk-3|'], 20)
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

t.test('corrupt json changes only the first byte of a body written in several chunks', async (t) => {
  const upstream = await chunkedUpstream(t, ['{"a":', '1,', '2,', '3,', '0}'], 20, { 'content-type': 'application/json' })
  const proxy = await chaosProxy(t, upstream.url, { faults: [{ kind: 'corrupt' }] })
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.body.toString(), '<"a":1,2,3,0}', 'one "<" at the start, every later chunk untouched')
})

t.test('corrupt bytes keeps its rate across small chunks, flips any of the eight bits, takes its mode from a header', async (t) => {
  const piece = 'abcdefghij'
  const upstream = await chunkedUpstream(t, Array(40).fill(piece), 2)
  const faults = [{ kind: 'corrupt', mode: 'bytes', rate: 0.1 }]
  const proxy = await chaosProxy(t, upstream.url, { seed: 4, allowHeaderTriggers: true, faults })
  const original = Buffer.from(piece.repeat(40))
  const res = await see(`${proxy.url}/svc/x`)
  t.equal(res.body.length, original.length)
  let changed = 0
  let late = 0
  for (let i = 0; i < original.length; i++) {
    if (original[i] === res.body[i]) continue
    changed++
    if (i >= original.length / 2) late++
  }
  // 400 bytes at 0.1: about 40 flips, half of them in the second half.
  t.ok(changed >= 15 && changed <= 80, `${changed} of 400 bytes changed at rate 0.1`)
  t.ok(late >= 5, `${late} of them in the later chunks: the gap between flips carries over chunk ends`)

  const header = await see(`${proxy.url}/svc/x`, { headers: { 'x-faultline-fault': 'corrupt=bytes; rate=1' } })
  t.equal(header.body.length, original.length)
  const bits = new Set<number>()
  let oneBit = 0
  for (let i = 0; i < original.length; i++) {
    const x = original[i]! ^ header.body[i]!
    if (x !== 0 && (x & (x - 1)) === 0) oneBit++
    bits.add(Math.log2(x))
  }
  t.equal(oneBit, original.length, 'corrupt=bytes; rate=1: every byte has exactly one bit flipped')
  t.same([...bits].sort(), [0, 1, 2, 3, 4, 5, 6, 7], 'over 400 bytes, every bit position was flipped somewhere')
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
