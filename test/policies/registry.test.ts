// PolicyRegistry: an entry's dispose runs once, when its last lease is released (a fleet breaker's
// subscription and poll timer, a fleet cache's subscription), never while a generation still holds it.
import t from 'tap'
import { PolicyRegistry } from '../../src/policies/registry.js'

t.test('dispose runs once, after the last release', async (t) => {
  const registry = new PolicyRegistry()
  const disposed: string[] = []
  const first = registry.acquire('k', () => ({ name: 'v1' }), (v) => { disposed.push(v.name) })
  const second = registry.acquire('k', () => ({ name: 'v2' }), (v) => { disposed.push(`other ${v.name}`) })
  t.equal(second.value, first.value, 'the second lease shares the first value')
  first.release()
  first.release()
  t.same(disposed, [], 'still held: not disposed (a repeated release counts once)')
  second.release()
  t.same(disposed, ['v1'], 'disposed with the dispose it was created with, once')
  t.equal(registry.has('k'), false)
  const again = registry.acquire('k', () => ({ name: 'v3' }))
  t.equal(again.value.name, 'v3', 'a new value after disposal')
  again.release()
  t.same(disposed, ['v1'], 'an entry without dispose disposes nothing')
})
