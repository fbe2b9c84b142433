import t, { type Test } from 'tap'
import { appendFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { JournalStore, encodeLine } from '../../src/deferral/journal-store.js'
import { deferralStoreTests, deferral } from './store-contract.js'

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'faultline-journal-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

const dirs = new WeakMap<object, string>()

async function openIn (t: Test, dir: string, options: Partial<{ retainMs: number, compactBytes: number, onSkipped: (n: number, torn: boolean) => void }> = {}): Promise<JournalStore> {
  const store = await JournalStore.open({ dir, retainMs: 60_000, compactBytes: 1024 * 1024, ...options })
  dirs.set(store, dir)
  t.teardown(async () => { await store.close() })
  return store
}

deferralStoreTests(t, 'journal', {
  make: async (t) => await openIn(t, await tempDir(t)),
  reopen: async (t, store) => {
    await store.close()
    return await openIn(t, dirs.get(store)!)
  }
})

t.test('a torn last line (a crash mid-write) is skipped and the rest is kept', async (t) => {
  const dir = await tempDir(t)
  const store = await openIn(t, dir)
  const a = (await store.accept(deferral({ key: 'a' }))).entry
  await store.close()
  // What a crash halfway through the next append leaves: the start of a line, no newline.
  const torn = encodeLine({ op: 'add', e: { ...a, id: 'torn', key: 'torn' } })
  await appendFile(join(dir, 'deferrals.journal'), torn.slice(0, torn.length / 2))
  const skipped: Array<[number, boolean]> = []
  const again = await openIn(t, dir, { onSkipped: (n, tornTail) => { skipped.push([n, tornTail]) } })
  t.same(skipped, [[1, true]])
  t.equal((await again.get(a.id))?.key, 'a')
  t.equal(await again.get('torn'), undefined)
  // New lines are not glued to the torn one: the journal was rewritten without it.
  const b = (await again.accept(deferral({ key: 'b' }))).entry
  await again.close()
  const third = await openIn(t, dir, { onSkipped: () => { t.fail('nothing to skip after the rewrite') } })
  t.equal((await third.get(b.id))?.key, 'b')
})

t.test('a line whose checksum does not match is skipped, wherever it is', async (t) => {
  const dir = await tempDir(t)
  const store = await openIn(t, dir)
  const a = (await store.accept(deferral({ key: 'a' }))).entry
  const b = (await store.accept(deferral({ key: 'b' }))).entry
  await store.close()
  const path = join(dir, 'deferrals.journal')
  const lines = (await readFile(path, 'utf8')).split('\n')
  // A flipped byte inside the first entry's JSON.
  lines[0] = lines[0]!.replace('"key":"a"', '"key":"x"')
  await writeFile(path, lines.join('\n'))
  let count = 0
  const again = await openIn(t, dir, { onSkipped: (n) => { count = n } })
  t.equal(count, 1)
  t.equal(await again.get(a.id), undefined)
  t.equal((await again.get(b.id))?.key, 'b')
})

t.test('compaction keeps the live entries and drops settled ones past retainMs', async (t) => {
  const dir = await tempDir(t)
  const store = await openIn(t, dir, { compactBytes: 4 * 1024, retainMs: 0 })
  const keep = (await store.accept(deferral({ key: 'keep' }))).entry
  const now = Date.now()
  // Many attempts on one entry, and entries that settle: history the journal no longer needs.
  for (let i = 0; i < 60; i++) await store.record(keep.id, i + 1, { kind: 'retry', error: `attempt ${i}`, nextAttemptAt: now })
  for (let i = 0; i < 10; i++) {
    const e = (await store.accept(deferral({ key: `done-${i}` }))).entry
    await store.record(e.id, 1, { kind: 'delivered', result: { status: 200, headers: {}, body: '', truncated: false, at: now } })
  }
  const size = (await stat(join(dir, 'deferrals.journal'))).size
  t.ok(size < 4 * 1024 + 2048, `compacted as it grew (${size} bytes)`)
  await store.close()
  const again = await openIn(t, dir)
  t.equal((await again.get(keep.id))?.attempts, 60, 'the live entry kept its last state')
  t.ok((await again.list({ state: 'delivered' })).length < 10, 'settled entries past retainMs were dropped')
})

t.test('concurrent accepts share writes, and each is acknowledged only once on disk', async (t) => {
  const dir = await tempDir(t)
  const store = await openIn(t, dir)
  const accepted = await Promise.all(Array.from({ length: 50 }, async (_, i) => await store.accept(deferral({ key: `c${i}` }))))
  t.equal(new Set(accepted.map((a) => a.entry.id)).size, 50)
  // Read the file as a crash right now would leave it: every acknowledged entry is there.
  const text = await readFile(join(dir, 'deferrals.journal'), 'utf8')
  for (const a of accepted) t.ok(text.includes(a.entry.id))
})

t.test('one process per directory: a second store is refused while the first holds it', async (t) => {
  const dir = await tempDir(t)
  await openIn(t, dir)
  // The lock names our own pid; pretend another live process (pid 1) holds it.
  await writeFile(join(dir, 'deferrals.lock'), '1')
  await t.rejects(JournalStore.open({ dir, retainMs: 0, compactBytes: 1024 }), /in use by another process \(pid 1\)/)
})
