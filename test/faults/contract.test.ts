/**
 * The contract every fault kind keeps, run against each registered kind at
 * both sides: the exchange ends (bounded), the fault is named and counted,
 * and the trigger header never reaches the upstream. A new kind is covered
 * here as soon as it is registered: each kind declares its shortest trigger
 * (`example`, required by the FaultKind type), so there is no list to keep.
 */
import t from 'tap'
import { scrape, sumOf } from '../helpers.js'
import { chaosProxy, jsonUpstream, see } from './fixtures.js'
import { FAULT_KINDS } from '../../src/faults/registry.js'
import { parseTrigger } from '../../src/faults/trigger.js'

t.test('every kind, at both sides, ends its exchange and is counted', async (t) => {
  const upstream = await jsonUpstream(t)
  // A short route timeout bounds the open-ended hangs (timeout at either side).
  const proxy = await chaosProxy(t, upstream.url, { allowHeaderTriggers: true }, { resilience: { timeoutMs: 400 } })
  const kinds = FAULT_KINDS.filter((k) => k.kind !== 'none')
  for (const { kind, example } of kinds) {
    t.equal(parseTrigger(example).map((f) => f.config.kind).join(), kind, `${kind}: its example trigger is a valid trigger for it`)
    for (const at of ['upstream', 'client']) {
      const res = await see(`${proxy.url}/svc/x`, { headers: { 'x-faultline-fault': `${example}; at=${at}` }, timeoutMs: 3_000 })
      t.not(res.error?.code, 'TEST_TIMEOUT', `${kind} at ${at}: the exchange ended (${Math.round(res.ms)} ms)`)
      if (res.status !== undefined) t.equal(res.headers['x-faultline-fault'], kind, `${kind} at ${at}: named`)
      t.equal(upstream.lastHeaders()?.['x-faultline-fault'], undefined)
    }
  }
  const samples = await scrape(proxy)
  for (const { kind } of kinds) t.equal(sumOf(samples, 'faultline_faults_injected_total', { route: 'svc', fault: kind }), 2, `${kind} counted once per side`)
})
