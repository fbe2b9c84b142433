import { request as httpRequest } from 'node:http'
import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from '../helpers.js'

const SCHEMA = { type: 'object', required: ['id', 'price'], properties: { id: { type: 'integer' }, price: { type: 'number' } } }

t.test('a valid body passes; invalid JSON and schema drift become 502 invalid_response', async (t) => {
  const bodies: Record<string, string> = { '/v/ok': '{"id":1,"price":9.5}', '/v/broken': '{"id":1,"pri', '/v/drift': '{"id":"1","cost":9.5}' }
  const upstream = await startUpstream(t, (req, res) => { res.setHeader('content-type', 'application/json'); res.end(bodies[req.url ?? ''] ?? '{}') })
  const proxy = await startProxy(t, { routes: [route('v', '/v', upstream.url, { validate: { schema: SCHEMA } })] })
  const ok = await fetchText(`${proxy.url}/v/ok`)
  t.equal(ok.status, 200)
  t.equal(ok.body, bodies['/v/ok'])
  t.equal(ok.headers['content-length'], String(bodies['/v/ok']!.length))
  for (const path of ['/v/broken', '/v/drift']) {
    const res = await fetchText(`${proxy.url}${path}`)
    t.equal(res.status, 502, `${path}: 502`)
    t.equal((JSON.parse(res.body) as { class: string }).class, 'invalid_response')
    t.notOk(res.body.includes(bodies[path]!), `${path}: the upstream's body never reaches the caller`)
    t.notMatch(res.body, /"pri"?$|"cost"/, `${path}: not even part of it`)
  }
  t.equal(sumOf(await scrape(proxy), 'faultline_upstream_errors_total', { route: 'v', error_class: 'invalid_response' }), 2)
})

t.test('retry and the cache fallback handle an invalid response like any other failure', async (t) => {
  let n = 0
  const upstream = await startUpstream(t, (_req, res) => {
    n++
    res.setHeader('content-type', 'application/json')
    res.end(n === 2 ? 'not json' : `{"id":${n},"price":1}`)
  })
  const proxy = await startProxy(t, {
    routes: [
      route('retried', '/retried', upstream.url, { validate: {}, resilience: { retry: { attempts: 2, backoff: { baseMs: 1, maxMs: 2 } } } }),
      route('cached', '/cached', upstream.url, { validate: {}, resilience: { fallback: ['cache'] } })
    ]
  })
  t.equal((await fetchText(`${proxy.url}/cached/x`)).status, 200, 'first answer (n=1) is stored')
  const fallback = await fetchText(`${proxy.url}/cached/x`)
  t.equal(fallback.status, 200, 'n=2 is invalid: the last good answer is served')
  t.equal(fallback.headers['x-faultline-fallback'], 'cache')
  t.equal(fallback.body, '{"id":1,"price":1}')
  n = 1
  const retried = await fetchText(`${proxy.url}/retried/x`)
  t.equal(retried.status, 200, 'n=2 invalid, the retry (n=3) is valid')
  t.equal(retried.headers['x-faultline-attempts'], '2')
  t.equal(retried.body, '{"id":3,"price":1}')
})

t.test('injected corruption is caught by validation and absorbed by retry', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.setHeader('content-type', 'application/json'); res.end('{"id":1,"price":2}') })
  const proxy = await startProxy(t, {
    routes: [route('c', '/c', upstream.url, {
      validate: { schema: SCHEMA },
      resilience: { retry: { attempts: 6, backoff: { baseMs: 1, maxMs: 2 }, budgetRatio: 1 } },
      chaos: { enabled: true, seed: 5, faults: [{ kind: 'corrupt', mode: 'json', probability: 0.3 }] }
    })]
  })
  for (let i = 0; i < 20; i++) {
    const res = await fetchText(`${proxy.url}/c/${i}`)
    t.equal(res.status, 200)
    t.same(JSON.parse(res.body), { id: 1, price: 2 })
  }
  const s = await scrape(proxy)
  t.ok(sumOf(s, 'faultline_faults_injected_total', { route: 'c' }) > 0, 'faults were injected')
  t.equal(sumOf(s, 'faultline_upstream_errors_total', { route: 'c', error_class: 'invalid_response' }), sumOf(s, 'faultline_faults_injected_total', { route: 'c' }), 'every corrupted body was caught')
})

t.test('only a 2xx body is checked: other statuses, a 204 and a HEAD answer pass as the upstream sent them', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    const status = Number(req.url?.split('/')[2])
    res.writeHead(status, { 'content-type': 'text/plain' })
    res.end(status === 204 ? undefined : `plain ${status}`)
  })
  const proxy = await startProxy(t, { routes: [route('v', '/v', upstream.url, { validate: { schema: SCHEMA } })] })
  t.equal((await fetchText(`${proxy.url}/v/200`)).status, 502, 'a 200 with this body fails: the route does validate')
  t.equal((await fetchText(`${proxy.url}/v/299`)).status, 502, 'and so does any 2xx')
  for (const status of [300, 404, 500]) {
    const res = await fetchText(`${proxy.url}/v/${status}`)
    t.equal(res.status, status, `${status} passes`)
    t.equal(res.body, `plain ${status}`, `${status}: its body unchanged`)
  }
  t.equal((await fetchText(`${proxy.url}/v/204`)).status, 204, 'a 204 has no body to check')
  const head = await fetchText(`${proxy.url}/v/200`, { method: 'HEAD' })
  t.equal(head.status, 200, 'a HEAD answer has no body to check')
  t.equal(sumOf(await scrape(proxy), 'faultline_upstream_errors_total', { route: 'v', error_class: 'invalid_response' }), 2, 'only the 200 and the 299 GET failed validation')
})

t.test('validate.maxBytes: a body of exactly maxBytes is checked, one byte more fails and says so', async (t) => {
  const bodies: Record<string, string> = { '/v/16': '{"id":1,"p":123}', '/v/17': '{"id":1,"p":1234}' }
  const upstream = await startUpstream(t, (req, res) => { res.setHeader('content-type', 'application/json'); res.end(bodies[req.url ?? '']) })
  const proxy = await startProxy(t, { routes: [route('v', '/v', upstream.url, { validate: { maxBytes: 16 } })] })
  const fits = await fetchText(`${proxy.url}/v/16`)
  t.equal(fits.status, 200)
  t.equal(fits.body, bodies['/v/16'])
  const over = await fetchText(`${proxy.url}/v/17`)
  t.equal(over.status, 502)
  t.equal(JSON.parse(over.body).message, 'route v: the upstream response failed validation: body larger than validate.maxBytes (16)')
})

t.test('the 502 says why: not JSON, or the schema\'s first complaint with where it is', async (t) => {
  const bodies: Record<string, string> = { '/v/broken': '{"id":1,"pri', '/v/missing': '{"id":1}', '/v/type': '{"id":"1","price":1}' }
  const upstream = await startUpstream(t, (req, res) => { res.setHeader('content-type', 'application/json'); res.end(bodies[req.url ?? '']) })
  const proxy = await startProxy(t, { routes: [route('v', '/v', upstream.url, { validate: { schema: SCHEMA } })] })
  const why = async (path: string): Promise<string> => JSON.parse((await fetchText(`${proxy.url}${path}`)).body).message
  t.equal(await why('/v/broken'), 'route v: the upstream response failed validation: body is not valid JSON')
  t.equal(await why('/v/missing'), 'route v: the upstream response failed validation: body does not match the schema (/ must have required property \'price\')', 'the top level is "/"')
  t.equal(await why('/v/type'), 'route v: the upstream response failed validation: body does not match the schema (/id must be integer)')
})

t.test('a schema with keywords ajv does not know (format without ajv-formats, example) loads and the rest is checked', async (t) => {
  const schema = { type: 'object', required: ['email'], properties: { email: { type: 'string', format: 'email', example: 'a@b.c' } } }
  const upstream = await startUpstream(t, (req, res) => { res.setHeader('content-type', 'application/json'); res.end(req.url === '/v/ok' ? '{"email":"not an address"}' : '{}') })
  const proxy = await startProxy(t, { routes: [route('v', '/v', upstream.url, { validate: { schema } })] })
  t.equal((await fetchText(`${proxy.url}/v/ok`)).status, 200, 'the unknown format is not checked')
  t.equal((await fetchText(`${proxy.url}/v/bad`)).status, 502, 'required still is')
})

t.test('a body that breaks while it is read for validation: short of its Content-Length is invalid_response, a chunked one is reset', async (t) => {
  const upstream = await startUpstream(t, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', ...(req.url === '/v/short' ? { 'content-length': '100' } : {}) })
    res.write('{"id":1')
    setTimeout(() => { res.socket?.destroy() }, 50)
  })
  const proxy = await startProxy(t, { routes: [route('v', '/v', upstream.url, { validate: {} })] })
  const short = await fetchText(`${proxy.url}/v/short`)
  t.equal(short.status, 502)
  t.equal(JSON.parse(short.body).class, 'invalid_response', 'the upstream broke its Content-Length promise')
  const chunked = await fetchText(`${proxy.url}/v/chunked`)
  t.equal(chunked.status, 502)
  t.equal(JSON.parse(chunked.body).class, 'reset', 'no length was promised: the connection broke')
  const m = await scrape(proxy)
  t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'v', error_class: 'invalid_response' }), 1)
  t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'v', error_class: 'reset' }), 1)
})

t.test('a client that leaves while its answer is read for validation: cancelled, not an upstream error', async (t) => {
  let reading = false
  const upstream = await startUpstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{"id":')
    reading = true
    // The rest never comes: only the client leaving ends this request.
  })
  const proxy = await startProxy(t, { routes: [route('v', '/v', upstream.url, { validate: {} })] })
  const req = httpRequest(`${proxy.url}/v/x`)
  req.on('error', () => {})
  req.end()
  for (let i = 0; i < 100 && !reading; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.ok(reading, 'the upstream started its body')
  await new Promise((resolve) => setTimeout(resolve, 100))
  req.destroy()
  let m = await scrape(proxy)
  for (let i = 0; i < 100 && sumOf(m, 'faultline_requests_total', { route: 'v' }) === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    m = await scrape(proxy)
  }
  t.equal(sumOf(m, 'faultline_requests_total', { route: 'v', outcome: 'cancelled' }), 1)
  t.equal(sumOf(m, 'faultline_upstream_errors_total', { route: 'v' }), 0, 'a client leaving is not the upstream\'s failure')
})
