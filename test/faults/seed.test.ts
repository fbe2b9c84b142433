import t from 'tap'
import { request } from 'undici'
import { chaosProxy, jsonUpstream, see, auth } from './fixtures.js'

const FAULTS = [
  { kind: 'abort', status: 503, probability: 0.3 },
  { kind: 'latency', distribution: { type: 'uniform', minMs: 1, maxMs: 5 }, probability: 0.3, name: 'jitter' },
  { kind: 'rateLimit', probability: 0.2 }
]

async function sequence (url: string, n: number): Promise<string[]> {
  const out: string[] = []
  for (let i = 0; i < n; i++) {
    const res = await see(`${url}/svc/item/${i}`)
    out.push(`${res.status}:${String(res.headers['x-faultline-fault'] ?? '-')}`)
  }
  return out
}

t.test('the same seed and the same request sequence give the same decisions', async (t) => {
  const upstream = await jsonUpstream(t)
  const a = await chaosProxy(t, upstream.url, { seed: 42, faults: FAULTS })
  const b = await chaosProxy(t, upstream.url, { seed: 42, faults: FAULTS })
  const c = await chaosProxy(t, upstream.url, { seed: 43, faults: FAULTS })
  const first = await sequence(a.url, 30)
  t.ok(first.some((s) => s !== '200:-'), 'some requests were faulted')
  t.ok(first.some((s) => s === '200:-'), 'some were not')
  t.same(await sequence(b.url, 30), first, 'replayed exactly on another proxy')
  t.not(JSON.stringify(await sequence(c.url, 30)), JSON.stringify(first), 'another seed, another sequence')

  // Reseeding on the admin API restarts the sequence.
  const reseed = await request(`${a.adminUrl}/chaos/routes/svc`, { method: 'PATCH', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ seed: 42 }) })
  t.equal(reseed.statusCode, 200)
  await reseed.body.dump()
  t.same(await sequence(a.url, 30), first, 'reseeded: the same sequence again')
})

t.test('without a seed one is drawn, and shown so a run can be replayed', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { faults: FAULTS })
  const res = await request(`${proxy.adminUrl}/routes`)
  const body = await res.body.json() as { routes: Array<{ state: { faults: { seed: unknown } } }> }
  t.type(body.routes[0]?.state.faults.seed, 'number')
})
