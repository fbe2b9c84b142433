/**
 * The contract every CacheStore must keep (undici's cacheStoreTests
 * style): run it against each implementation. Not a test file itself.
 */
import type { Test } from 'tap'
import type { CacheKey, CacheStore, CacheValue } from '../../src/policies/cache-store.js'

/** A cacheable value, fresh for a minute (the contract's and other store tests' fixture). */
export function value (overrides: Partial<CacheValue> = {}): CacheValue {
  const now = Date.now()
  return {
    statusCode: 200,
    headers: { 'content-type': 'text/plain' },
    cachedAt: now,
    deleteAt: now + 60_000,
    policy: { v: 1, t: now, sh: true, ch: 0.1, imm: 0, st: 200, resh: {}, rescc: {}, m: 'GET', a: true, reqh: null, reqcc: {} },
    ...overrides
  }
}

async function write (store: CacheStore, key: CacheKey, v: CacheValue, body: string[]): Promise<boolean> {
  const stream = store.createWriteStream(key, v)
  if (stream === undefined) return false
  return await new Promise((resolve) => {
    stream.on('error', () => { resolve(false) })
    stream.on('finish', () => { resolve(true) })
    for (const chunk of body) stream.write(Buffer.from(chunk))
    stream.end()
  })
}

export interface ContractLimits { maxEntryBytes: number }

export function cacheStoreTests (t: Test, name: string, make: (limits: ContractLimits & { maxEntries: number, maxBytes: number }) => CacheStore): void {
  const key = (path: string, headers: CacheKey['headers'] = {}): CacheKey => ({ method: 'GET', path, headers })
  const fresh = (): CacheStore => make({ maxEntries: 100, maxBytes: 1024 * 1024, maxEntryBytes: 64 * 1024 })

  t.test(`${name}: a written entry is returned whole, with its metadata`, async (t) => {
    const store = fresh()
    t.equal(await store.get(key('/a')), undefined, 'empty at first')
    t.ok(await write(store, key('/a'), value(), ['hel', 'lo']))
    const got = await store.get(key('/a'))
    t.equal(got?.body.toString(), 'hello')
    t.equal(got?.statusCode, 200)
    t.same(got?.headers, { 'content-type': 'text/plain' })
    t.equal(await store.get(key('/b')), undefined, 'another path misses')
    t.equal(await store.get({ ...key('/a'), method: 'HEAD' }), undefined, 'another method misses')
  })

  t.test(`${name}: nothing is visible before end(), and a destroyed write is discarded`, async (t) => {
    const store = fresh()
    const stream = store.createWriteStream(key('/a'), value())!
    stream.write(Buffer.from('part'))
    t.equal(await store.get(key('/a')), undefined)
    stream.destroy()
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(await store.get(key('/a')), undefined)
  })

  t.test(`${name}: a newer write replaces the older one`, async (t) => {
    const store = fresh()
    await write(store, key('/a'), value(), ['one'])
    await write(store, key('/a'), value(), ['two'])
    t.equal((await store.get(key('/a')))?.body.toString(), 'two')
  })

  t.test(`${name}: Vary: variants are kept apart and matched on the request headers`, async (t) => {
    const store = fresh()
    await write(store, key('/v', { 'accept-language': 'en' }), value({ vary: { 'accept-language': 'en' } }), ['hello'])
    await write(store, key('/v', { 'accept-language': 'fr' }), value({ vary: { 'accept-language': 'fr' } }), ['bonjour'])
    t.equal((await store.get(key('/v', { 'accept-language': 'en' })))?.body.toString(), 'hello')
    t.equal((await store.get(key('/v', { 'accept-language': 'fr' })))?.body.toString(), 'bonjour')
    t.equal(await store.get(key('/v', { 'accept-language': 'de' })), undefined)
    t.equal(await store.get(key('/v')), undefined, 'a request without the header misses')
  })

  t.test(`${name}: entries past deleteAt are not returned`, async (t) => {
    const store = fresh()
    // 250 ms of life: a loaded machine (or a store behind a network round trip) still reads it in time.
    await write(store, key('/old'), value({ deleteAt: Date.now() + 250 }), ['x'])
    t.ok(await store.get(key('/old')), 'servable before deleteAt')
    await new Promise((resolve) => setTimeout(resolve, 300))
    t.equal(await store.get(key('/old')), undefined)
  })

  t.test(`${name}: an entry over maxEntryBytes is not stored`, async (t) => {
    const store = make({ maxEntries: 10, maxBytes: 1024 * 1024, maxEntryBytes: 10 })
    t.notOk(await write(store, key('/big'), value(), ['0123456789', 'more']))
    t.equal(await store.get(key('/big')), undefined)
  })

  t.test(`${name}: bounded by entries and by bytes, least recently used out first`, async (t) => {
    const byCount = make({ maxEntries: 2, maxBytes: 1024 * 1024, maxEntryBytes: 1024 })
    await write(byCount, key('/1'), value(), ['1'])
    await write(byCount, key('/2'), value(), ['2'])
    await byCount.get(key('/1'))
    await write(byCount, key('/3'), value(), ['3'])
    t.ok(await byCount.get(key('/1')), 'recently used survives')
    t.equal(await byCount.get(key('/2')), undefined, 'least recently used is gone')
    t.equal(byCount.stats().entries, 2)
    const byBytes = make({ maxEntries: 100, maxBytes: 4 * 1024, maxEntryBytes: 1024 })
    for (let i = 0; i < 20; i++) await write(byBytes, key(`/${i}`), value(), ['x'.repeat(1000)])
    t.ok(byBytes.stats().bytes <= 4 * 1024, `bytes stay bounded (${byBytes.stats().bytes})`)
    t.ok(await byBytes.get(key('/19')), 'the newest is kept')
  })

  t.test(`${name}: delete forgets every variant of a path`, async (t) => {
    const store = fresh()
    await write(store, key('/d', { accept: 'a' }), value({ vary: { accept: 'a' } }), ['a'])
    await write(store, key('/d', { accept: 'b' }), value({ vary: { accept: 'b' } }), ['b'])
    await store.delete(key('/d'))
    t.equal(await store.get(key('/d', { accept: 'a' })), undefined)
    t.equal(await store.get(key('/d', { accept: 'b' })), undefined)
  })
}
