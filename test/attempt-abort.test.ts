/**
 * AttemptAbort, the cheap attempt-deadline seam: the AbortSignal behind
 * ctx.attemptSignal is made lazily but must behave exactly like one made up
 * front, before or after the abort.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { AttemptAbort } from '../src/proxy/context.js'

t.test('a signal read before the abort is aborted with the reason', async (t) => {
  const abort = new AttemptAbort()
  const signal = abort.signal
  t.equal(signal.aborted, false)
  t.equal(abort.signal, signal, 'one signal per attempt')
  const reason = new Error('deadline')
  abort.abort(reason)
  t.equal(signal.aborted, true)
  t.equal(signal.reason, reason)
  t.equal(abort.aborted, true)
  t.equal(abort.reason, reason)
})

t.test('a signal read after the abort is already aborted', async (t) => {
  const abort = new AttemptAbort()
  const reason = new Error('deadline')
  abort.abort(reason)
  abort.abort(new Error('second'))
  t.equal(abort.signal.aborted, true)
  t.equal(abort.signal.reason, reason, 'the first reason wins')
})

t.test('an injected delay that takes the signal is cut short', async (t) => {
  const abort = new AttemptAbort()
  setTimeout(() => { abort.abort(new Error('deadline')) }, 20)
  const t0 = performance.now()
  await t.rejects(sleep(5_000, undefined, { signal: abort.signal }), { name: 'AbortError', cause: { message: 'deadline' } })
  t.ok(performance.now() - t0 < 1_000)
})

t.test('emitter listeners (what undici uses) hear the abort once', async (t) => {
  const abort = new AttemptAbort()
  let heard = 0
  abort.once('abort', () => { heard++ })
  abort.abort('x')
  abort.abort('y')
  t.equal(heard, 1)
})

t.test('following a signal someone else owns keeps that very signal', async (t) => {
  const controller = new AbortController()
  const abort = AttemptAbort.following(controller.signal)
  t.equal(abort.signal, controller.signal)
  t.equal(abort.aborted, false)
  controller.abort('gone')
  t.equal(abort.aborted, true)
  t.equal(abort.reason, 'gone')
  const already = AttemptAbort.following(AbortSignal.abort('early'))
  t.equal(already.aborted, true)
  t.equal(already.reason, 'early')
})
