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
