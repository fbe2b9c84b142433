/**
 * The contract every DeferralStore keeps (as cache-store-contract.ts does
 * for caches): run against the journal and Redis Streams stores. Not a
 * test file itself. `make` returns a fresh, empty store; `reopen` (when
 * the store is durable) opens the same data again after close().
 */
import type { Test } from 'tap'
import type { DeferralStore, NewDeferral } from '../../src/deferral/store.js'

export function deferral (overrides: Partial<NewDeferral> = {}): NewDeferral {
  const now = Date.now()
  return {
    route: 'payments',
    key: 'k-1',
    fingerprint: 'f-1',
    method: 'POST',
    path: '/payments/capture',
    headers: ['content-type', 'application/json', 'idempotency-key', overrides.key ?? 'k-1'],
    body: Buffer.from('{"amount":12}').toString('base64'),
    injected: false,
    reason: 'connect',
    createdAt: now,
    expiresAt: now + 60_000,
    ...overrides
  }
}

export interface ContractStores {
  make: (t: Test) => Promise<DeferralStore>
  /** Closes `store` and opens the same data again. */
  reopen: (t: Test, store: DeferralStore) => Promise<DeferralStore>
}

export function deferralStoreTests (t: Test, name: string, stores: ContractStores): void {
  t.test(`${name}: an accepted entry is pending, due, and found by id and by key`, async (t) => {
    const store = await stores.make(t)
    const { entry, created } = await store.accept(deferral())
    t.ok(created)
    t.equal(entry.state, 'pending')
    t.equal(entry.attempts, 0)
    t.equal((await store.get(entry.id))?.body, deferral().body, 'the body is kept whole')
    t.same((await store.get(entry.id))?.headers, deferral().headers)
    t.equal((await store.byKey('payments', 'k-1'))?.id, entry.id)
    t.equal(await store.byKey('other', 'k-1'), undefined, 'keys are per route')
    t.equal((await store.next('payments', Date.now())).entry?.id, entry.id)
    t.equal((await store.next('other', Date.now())).entry, undefined)
  })

  t.test(`${name}: the same key twice is one entry`, async (t) => {
    const store = await stores.make(t)
    const first = await store.accept(deferral())
    const second = await store.accept(deferral())
    t.notOk(second.created)
    t.equal(second.entry.id, first.entry.id)
    t.equal((await store.list({ route: 'payments' })).length, 1)
    const other = await store.accept(deferral({ route: 'orders' }))
    t.ok(other.created, 'the same key on another route is another entry')
  })

  t.test(`${name}: entries come in acceptance order; the head blocks while it backs off`, async (t) => {
    const store = await stores.make(t)
    const a = (await store.accept(deferral({ key: 'a' }))).entry
    const b = (await store.accept(deferral({ key: 'b' }))).entry
    const now = Date.now()
    t.equal((await store.next('payments', Date.now())).entry?.id, a.id)
    t.ok(await store.record(a.id, 1, { kind: 'retry', error: 'connect', nextAttemptAt: now + 60_000 }))
    t.equal((await store.next('payments', Date.now())).entry, undefined, 'b does not overtake a backing-off a')
    t.equal((await store.get(a.id))?.attempts, 1)
    t.equal((await store.get(a.id))?.lastError, 'connect')
    t.match((await store.get(a.id))?.history, [{ result: 'retry', error: 'connect' }], 'every attempt is recorded')
    t.ok(await store.retryNow(a.id, now))
    t.equal((await store.next('payments', Date.now())).entry?.id, a.id, 'retry now makes it due')
    t.ok(await store.record(a.id, 2, { kind: 'delivered', result: { status: 201, headers: { 'content-type': 'text/plain' }, body: 'b2s=', truncated: false, at: now } }))
    t.equal((await store.next('payments', Date.now())).entry?.id, b.id)
    const delivered = await store.get(a.id)
    t.equal(delivered?.state, 'delivered')
    t.equal(delivered?.result?.status, 201)
    t.match(delivered?.history, [{ result: 'retry' }, { result: 'delivered', status: 201 }])
    t.notOk(await store.record(a.id, 3, { kind: 'dead', error: 'x' }), 'a settled entry is not changed again')
    t.equal((await store.accept(deferral({ key: 'a' }))).entry.id, a.id, 'a delivered key still answers with its entry')
  })

  t.test(`${name}: expiry moves old entries to dead on the way`, async (t) => {
    const store = await stores.make(t)
    const now = Date.now()
    const old = (await store.accept(deferral({ key: 'old', expiresAt: now - 1 }))).entry
    const young = (await store.accept(deferral({ key: 'young' }))).entry
    const { entry, expired } = await store.next('payments', Date.now())
    t.equal(entry?.id, young.id)
    t.same(expired.map((e) => e.id), [old.id])
    const dead = await store.get(old.id)
    t.equal(dead?.state, 'dead')
    t.match(dead?.lastError, /expired/)
  })

  t.test(`${name}: dead letters, retry, cancel, purge, stats`, async (t) => {
    const store = await stores.make(t)
    const now = Date.now()
    const a = (await store.accept(deferral({ key: 'a', createdAt: now - 5_000 }))).entry
    const b = (await store.accept(deferral({ key: 'b' }))).entry
    const c = (await store.accept(deferral({ key: 'c' }))).entry
    t.ok(await store.record(a.id, 5, { kind: 'dead', error: 'HTTP 503 after 5 attempts' }))
    let stats = await store.stats('payments', now)
    t.equal(stats.pending, 2)
    t.equal(stats.dead, 1)
    t.equal(stats.oldestPendingAt, b.createdAt, 'the oldest pending, not the dead one')
    t.same((await store.list({ state: 'dead' })).map((e) => e.id), [a.id])
    t.equal((await store.get(a.id))?.lastError, 'HTTP 503 after 5 attempts')
    t.ok(await store.cancel(b.id, now))
    t.equal((await store.get(b.id))?.state, 'cancelled')
    t.notOk(await store.cancel(b.id, now), 'cancelled once')
    t.equal((await store.next('payments', Date.now())).entry?.id, c.id)
    t.ok(await store.record(c.id, 1, { kind: 'delivered', result: { status: 200, headers: {}, body: '', truncated: false, at: now } }))
    t.ok(await store.retryNow(a.id, now), 'a dead entry can be brought back')
    t.equal((await store.get(a.id))?.state, 'pending')
    t.equal((await store.next('payments', Date.now())).entry?.id, a.id, 'and is delivered again')
    t.ok(await store.record(a.id, 6, { kind: 'dead', error: 'again' }))
    t.equal(await store.purgeDead('orders'), 0)
    t.equal(await store.purgeDead('payments'), 1)
    t.equal(await store.get(a.id), undefined)
    stats = await store.stats('payments', now)
    t.equal(stats.dead, 0)
    t.equal(stats.pending, 0)
    t.equal(stats.delivered, 1)
    const again = await store.accept(deferral({ key: 'b' }))
    t.ok(again.created, 'a cancelled key may be deferred afresh')
    t.same(await store.routes(), ['payments'])
  })

  t.test(`${name}: list is newest first and bounded`, async (t) => {
    const store = await stores.make(t)
    for (let i = 0; i < 5; i++) await store.accept(deferral({ key: `k${i}` }))
    const listed = await store.list({ limit: 3 })
    t.same(listed.map((e) => e.key), ['k4', 'k3', 'k2'])
  })

  t.test(`${name}: what was acknowledged survives a close and reopen`, async (t) => {
    const store = await stores.make(t)
    const now = Date.now()
    const a = (await store.accept(deferral({ key: 'a' }))).entry
    const b = (await store.accept(deferral({ key: 'b' }))).entry
    await store.record(a.id, 1, { kind: 'retry', error: 'reset', nextAttemptAt: now })
    await store.record(b.id, 1, { kind: 'delivered', result: { status: 200, headers: {}, body: '', truncated: false, at: now } })
    const again = await stores.reopen(t, store)
    t.equal((await again.get(a.id))?.attempts, 1)
    t.equal((await again.get(b.id))?.state, 'delivered')
    t.equal((await again.byKey('payments', 'b'))?.id, b.id)
    t.equal((await again.next('payments', now)).entry?.id, a.id)
    t.notOk((await again.accept(deferral({ key: 'a' }))).created, 'the key index survives too')
  })
}
