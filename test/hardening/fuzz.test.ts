/**
 * Property tests (fast-check). The loader: whatever document it is given,
 * the only possible failure is a ConfigError whose problems each name a
 * path. The listener: whatever request line and headers arrive on a raw
 * socket, the process stays up and every connection ends in a well-formed
 * HTTP response or a close, never a hang. Seeds are printed on failure
 * (fast-check's report) so a counterexample can be replayed.
 */
import t from 'tap'
import fc from 'fast-check'
import { connect } from 'node:net'
import { parseConfig, parseConfigText } from '../../src/config/load.js'
import { ConfigError } from '../../src/config/errors.js'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

/** A path as the loader writes it: `a.b[0].c`, or empty for the document itself. */
const PATH = /^$|^[^.[\]]+(\.[^.[\]]+|\[\d+\])*$/

function onlyConfigErrors (run: () => unknown): void {
  try {
    run()
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    if (err.problems.length === 0) throw new Error('a ConfigError without problems')
    for (const p of err.problems) {
      if (typeof p.path !== 'string' || !PATH.test(p.path)) throw new Error(`a problem path that names nothing: ${JSON.stringify(p.path)}`)
      if (typeof p.message !== 'string' || p.message.length === 0) throw new Error('a problem without a message')
    }
  }
}

const junk = fc.anything({ maxDepth: 3, maxKeys: 4, withNullPrototype: true, withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true })
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | unknown> => fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: junk })

/** Near-valid configs: the right shape with wrong values mixed in, which reach deeper validators than pure noise. */
const nearConfig = fc.record({
  listen: maybe(fc.record({ port: maybe(fc.integer({ min: -10, max: 70_000 })), maxUrlLength: maybe(fc.integer()), headersTimeoutMs: maybe(fc.integer()), requestTimeoutMs: maybe(fc.integer()) }, { requiredKeys: [] })),
  admin: maybe(fc.record({ host: maybe(fc.constantFrom('127.0.0.1', '0.0.0.0', '::1', '')), token: maybe(fc.string()), port: maybe(fc.integer()) }, { requiredKeys: [] })),
  routes: maybe(fc.array(fc.record({
    name: maybe(fc.constantFrom('a', 'b', 'a', 'x y', '')),
    match: maybe(fc.record({ pathPrefix: maybe(fc.constantFrom('/', '/a', 'a', '/a?b')), methods: maybe(fc.array(fc.constantFrom('GET', 'POST', 'BREW'))), host: maybe(fc.string()) }, { requiredKeys: [] })),
    upstream: maybe(fc.record({
      url: maybe(fc.oneof(fc.constantFrom('http://127.0.0.1:1', 'https://u:p@h:1', 'ftp://x', 'http://h/path'), fc.webUrl(), fc.string())),
      alternates: maybe(fc.array(fc.webUrl(), { maxLength: 2 })),
      connections: maybe(fc.integer()),
      tls: maybe(fc.record({ ca: maybe(fc.string()), cert: maybe(fc.string()), key: maybe(fc.string()), servername: maybe(fc.string()) }, { requiredKeys: [] }))
    }, { requiredKeys: [] })),
    resilience: maybe(fc.record({
      timeoutMs: maybe(fc.integer()),
      attemptTimeoutMs: maybe(fc.integer()),
      retry: maybe(fc.record({ attempts: maybe(fc.integer({ min: -1, max: 20 })), on: maybe(fc.array(fc.oneof(fc.constantFrom('connect', 'reset', 'bogus'), fc.integer({ min: 0, max: 700 })))) }, { requiredKeys: [] })),
      breaker: maybe(fc.record({ failureRate: maybe(fc.double()), minRequests: maybe(fc.integer()) }, { requiredKeys: [] })),
      fallback: maybe(fc.array(fc.oneof(fc.constantFrom('cache', 'alternate', 'nope'), fc.record({ static: maybe(fc.record({ status: maybe(fc.integer()), body: maybe(fc.string()) }, { requiredKeys: [] })) })), { maxLength: 3 }))
    }, { requiredKeys: [] })),
    chaos: maybe(fc.record({
      enabled: maybe(fc.boolean()),
      faults: maybe(fc.array(fc.record({
        kind: maybe(fc.constantFrom('abort', 'latency', 'reset', 'timeout', 'throttle', 'truncate', 'corrupt', 'schemaDrift', 'auth', 'rateLimit', 'slowHeaders', 'meteor')),
        probability: maybe(fc.double()),
        status: maybe(fc.integer()),
        ms: maybe(fc.integer())
      }, { requiredKeys: [] }), { maxLength: 3 }))
    }, { requiredKeys: [] }))
  }, { requiredKeys: [] }), { maxLength: 3 }))
}, { requiredKeys: [] })

t.test('the config loader fails only with path-naming validation errors', async (t) => {
  fc.assert(fc.property(junk, (doc) => { onlyConfigErrors(() => parseConfig(doc, 'fuzz.yaml', {})) }), { numRuns: 500 })
  fc.assert(fc.property(nearConfig, (doc) => { onlyConfigErrors(() => parseConfig(doc, 'fuzz.yaml', {})) }), { numRuns: 1_000 })
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (text) => { onlyConfigErrors(() => parseConfigText(text, 'fuzz.yaml', {})) }), { numRuns: 500 })
  // ${VAR} interpolation with hostile names, defaults and values.
  const env = fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 12 }), { maxKeys: 3 })
  fc.assert(fc.property(fc.string({ maxLength: 30 }), env, (value, vars) => {
    onlyConfigErrors(() => parseConfig({ listen: { host: value, port: '${PORT}' }, routes: [route('a', '/', 'http://127.0.0.1:1')] }, 'fuzz.yaml', vars))
  }), { numRuns: 300 })
  t.pass('no other exception escaped the loader')
})

/** Writes, half-closes and collects until the server closes; 'hang' if it does not within the bound. */
async function exchange (port: number, payload: Buffer, timeoutMs = 5_000): Promise<string | 'hang'> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => { socket.destroy(); resolve('hang') }, timeoutMs)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('error', () => {})
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')) })
    socket.end(payload)
  })
}

const token = fc.stringMatching(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}$/)
const anyText = fc.string({ unit: 'binary-ascii', maxLength: 40 })
const method = fc.oneof(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE', 'PRI', 'get'), token, anyText)
const target = fc.oneof(
  fc.constantFrom('/', '/a', '/t', '/t?x=1', '*', 'http://127.0.0.1/a', '//a', '/%00', '/a/../../etc/passwd', '/t/%zz'),
  fc.webPath().map((p) => `/a${p}`),
  anyText
)
const version = fc.oneof({ weight: 5, arbitrary: fc.constantFrom('HTTP/1.1', 'HTTP/1.0') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1 ', 'http/1.1', '') }, { weight: 1, arbitrary: anyText })
const triggerValue = fc.oneof(
  fc.constantFrom('abort=503', 'reset', 'reset=body; afterBytes=1', 'latency=20ms', 'truncate=1', 'corrupt=bytes', 'schemaDrift; drop=a', 'auth=expired', 'rateLimit=1', 'slowHeaders=50ms', 'timeout', 'none', 'abort=502; at=client', 'throttle=100000'),
  anyText
)
const header = fc.oneof(
  fc.tuple(fc.oneof(token, fc.constantFrom('Host', 'Content-Length', 'Transfer-Encoding', 'Connection', 'Expect', 'Upgrade', 'X-Request-Id', 'Authorization')), fc.oneof(fc.constantFrom('0', '5', '-1', 'chunked', 'close', 'keep-alive', '100-continue', 'websocket', '18446744073709551616'), anyText)),
  fc.tuple(fc.constant('x-faultline-fault'), triggerValue),
  fc.tuple(anyText, anyText)
)
const requestBytes = fc.record({
  method,
  target,
  version,
  headers: fc.array(header, { maxLength: 6 }),
  host: fc.boolean(),
  body: fc.string({ unit: 'binary-ascii', maxLength: 30 }),
  lineEnd: fc.constantFrom('\r\n', '\r\n', '\r\n', '\n', '\r')
}).map((r) => {
  const lines = [`${r.method} ${r.target} ${r.version}`, ...(r.host ? ['Host: x'] : []), ...r.headers.map(([n, v]) => `${n}: ${v}`)]
  return Buffer.from(lines.join(r.lineEnd) + r.lineEnd + r.lineEnd + r.body, 'latin1')
})

t.test('random request lines and headers: never a crash, always a response or a close', async (t) => {
  const upstream = await startUpstream(t, (req, res) => { req.resume(); req.on('end', () => { res.setHeader('content-type', 'application/json'); res.end('{"a":1,"b":"two"}') }) })
  const proxy = await startProxy(t, {
    log: { level: 'silent' },
    listen: { headersTimeoutMs: 2_000, requestTimeoutMs: 3_000 },
    routes: [
      route('a', '/a', upstream.url, { resilience: { timeoutMs: 1_000, bodyIdleTimeoutMs: 1_000 } }),
      route('t', '/t', upstream.url, { resilience: { timeoutMs: 1_000, bodyIdleTimeoutMs: 1_000 }, chaos: { enabled: true, allowHeaderTriggers: true } })
    ]
  })
  const port = proxy.faultline.proxyPort
  const STATUS_LINE = /^HTTP\/1\.[01] [1-5]\d\d [^\r\n]*\r\n/
  await fc.assert(fc.asyncProperty(requestBytes, async (payload) => {
    const raw = await exchange(port, payload)
    if (raw === 'hang') throw new Error('the connection neither answered nor closed')
    if (raw !== '' && !STATUS_LINE.test(raw)) throw new Error(`not an HTTP response: ${JSON.stringify(raw.slice(0, 80))}`)
  }), { numRuns: 300 })
  const after = await fetchText(`${proxy.url}/a`)
  t.equal(after.status, 200, 'the proxy still serves afterwards')
})
