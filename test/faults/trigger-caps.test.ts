/**
 * Every size a trigger header can set is capped by the route's
 * configuration: a client cannot make the proxy buffer whole large bodies
 * (schemaDrift maxBytes) or remember unbounded keys.
 */
import t from 'tap'
import { parseConfig } from '../../src/config/load.js'
import { route } from '../helpers.js'
import { chaosProxy, jsonUpstream, see } from './fixtures.js'

t.test('a trigger asking for more than chaos.maxTriggerBytes is refused with 400', async (t) => {
  const upstream = await jsonUpstream(t)
  const proxy = await chaosProxy(t, upstream.url, { allowHeaderTriggers: true, maxTriggerBytes: 1_000 })
  const huge = await see(`${proxy.url}/svc/x`, { headers: { 'x-faultline-fault': 'schemaDrift; drop=name; maxBytes=5000000' } })
  t.equal(huge.status, 400)
  t.match(huge.body.toString(), /maxBytes: expected at most 1000 \(the route's chaos.maxTriggerBytes\)/)
  t.equal(upstream.hits(), 0, 'nothing was sent upstream')
  const keys = await see(`${proxy.url}/svc/x`, { headers: { 'x-faultline-fault': 'abort=503; first=1; key=path; maxKeys=1000000' } })
  t.equal(keys.status, 400, 'a schedule from a header remembers a bounded number of keys')
  t.match(keys.body.toString(), /maxKeys: expected at most 10000 from a header/)
  const fine = await see(`${proxy.url}/svc/x`, { headers: { 'x-faultline-fault': 'schemaDrift; drop=name; maxBytes=1000' } })
  t.equal(fine.status, 200)
  t.same(JSON.parse(fine.body.toString()), { id: 1, price: 25 }, 'within the cap the fault acts')
})

t.test('configured sizes are bounded too', async (t) => {
  t.throws(() => parseConfig({ routes: [route('svc', '/svc', 'http://127.0.0.1:1', { chaos: { faults: [{ kind: 'schemaDrift', drop: ['a'], maxBytes: 1_000_000_000_000 }] } })] }, 'f.yaml'),
    /faults\[0\]\.maxBytes: expected a number <= 67108864/)
  t.throws(() => parseConfig({ routes: [route('svc', '/svc', 'http://127.0.0.1:1', { chaos: { maxTriggerBytes: 1_000_000_000 } })] }, 'f.yaml'), /maxTriggerBytes/)
})
