/**
 * A fault is called by one string everywhere (admin id = metric label),
 * and GET /routes shows the chance a request gets each fault now.
 */
import t from 'tap'
import { request } from 'undici'
import { fetchText, route, scrape, startProxy, startUpstream } from '../helpers.js'

const TOKEN = 'a-test-token-of-enough-length'

t.test('an unnamed fault\'s admin id is its metric label; /routes shows effective probabilities', async (t) => {
  const upstream = await startUpstream(t, (_req, res) => { res.end('ok') })
  const proxy = await startProxy(t, {
    admin: { token: TOKEN },
    log: { level: 'silent' },
    routes: [
      route('svc', '/svc', upstream.url, {
        chaos: { enabled: true, seed: 1, faults: [{ kind: 'abort', status: 503, probability: '50%' }, { kind: 'abort', status: 500, probability: 0.25 }, { kind: 'latency', name: 'abort-2', ms: 1, probability: 0 }] }
      }),
      route('planned', '/planned', upstream.url, { intent: { criticality: 'optional' }, chaos: { enabled: true, budget: 0.2 } })
    ]
  })
  const routes = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as { routes: Array<{ name: string, state: Record<string, { faults: Array<{ id: string, effectiveProbability: number }>, planned: Array<{ id: string, probability?: number, weight: number, effectiveProbability: number }>, plannedProbability: number }> }> }
  const svc = routes.routes.find((r) => r.name === 'svc')!.state.faults!
  t.same(svc.faults.map((f) => f.id), ['abort', 'abort-3', 'abort-2'], 'unnamed faults are called by their kind, never by a name the config gives another fault')
  t.same(svc.faults.map((f) => f.effectiveProbability), [0.5, 0.25, 0])
  for (let i = 0; i < 20; i++) await fetchText(`${proxy.url}/svc/${i}`)
  const labels = new Set((await scrape(proxy)).filter((s) => s.name === 'faultline_faults_injected_total' && s.labels.route === 'svc').map((s) => s.labels.fault))
  t.same([...labels].sort(), ['abort', 'abort-2', 'abort-3'], 'the metric labels are the admin ids')

  const planned = routes.routes.find((r) => r.name === 'planned')!.state.faults!
  t.ok(planned.planned.length > 0)
  t.ok(planned.planned.every((f) => f.probability === undefined), 'no placeholder probability of 1')
  const sum = planned.planned.reduce((n, f) => n + f.effectiveProbability, 0)
  t.equal(Math.round(sum * 1e9) / 1e9, Math.round(planned.plannedProbability * 1e9) / 1e9, 'the planned faults\' effective probabilities add up to the plan\'s')

  await request(`${proxy.adminUrl}/chaos/off`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.body.dump())
  const off = JSON.parse((await fetchText(`${proxy.adminUrl}/routes`)).body) as typeof routes
  t.same(off.routes.find((r) => r.name === 'svc')!.state.faults!.faults.map((f) => f.effectiveProbability), [0, 0, 0], 'the kill switch makes every effective probability 0')
})
