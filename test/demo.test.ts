/** `npm run demo` is one of the README's two commands: its runner must keep working. */
import t from 'tap'
import { Writable } from 'node:stream'
import { runDemo } from '../src/demo/run.js'

t.test('the demo runs end to end, its counts agree with /metrics, and both experiments report', async (t) => {
  let text = ''
  const out = new Writable({ write (chunk: Buffer, _enc, cb) { text += chunk.toString(); cb() } })
  // Two 1 s windows per experiment mode instead of the CLI demo's six: the report's shape is the same.
  const code = await runDemo(out, { experimentMs: 2_000 })
  t.equal(code, 0, 'exit code 0')
  t.match(text, /check: every request was answered and counted once in \/metrics\./)
  t.match(text, /^catalog\s+300\s+300\s+0\s+0\s/m, 'the healthy route passes everything through')
  t.match(text, /check: deferred during the outage, delivered once after it\./, 'a write deferred during an outage, delivered after it')
  t.match(text, /-> 202, deferral [0-9a-f-]{36}/)
  t.match(text, /# faultline experiment: intent mode/)
  t.match(text, /\| catalog-protected \| critical, availability \|/)
  t.match(text, /^intent\s+\d+\s+\d+\s+\d+\s+\d+$/m)
  t.match(text, /^uniform\s+\d+\s+\d+\s+\d+\s+\d+$/m)
})
