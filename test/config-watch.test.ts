/**
 * Reload on file change (reload.watch): an edit in place, the kubelet's
 * atomic ConfigMap/Secret update (a new timestamped directory, then the
 * `..data` symlink renamed over the old one), a bad edit that keeps the
 * old config live, a burst of writes that is one reload, and the switch.
 */
import t from 'tap'
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf, type StartedProxy } from './helpers.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function until (check: () => Promise<boolean>, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await sleep(50)
  }
  return false
}

const reloads = async (proxy: StartedProxy, result: 'success' | 'failure'): Promise<number> =>
  sumOf(await scrape(proxy), 'faultline_config_reloads_total', { result })

const body = async (url: string): Promise<string> => (await fetchText(url)).body

/**
 * A directory laid out like a kubelet-managed volume: `<dir>/<name>` ->
 * `..data/<name>`, `..data` -> `..<version>`. `update` writes the next
 * version and swaps the symlink atomically (rename), as the kubelet does.
 */
async function kubeletVolume (dir: string, files: Record<string, string>): Promise<{ update: (files: Record<string, string>) => Promise<void> }> {
  let version = 0
  const writeVersion = async (contents: Record<string, string>): Promise<string> => {
    const name = `..2026_01_01_00_00_00.${++version}`
    await mkdir(join(dir, name))
    for (const [file, text] of Object.entries(contents)) await writeFile(join(dir, name, file), text)
    return name
  }
  let current = await writeVersion(files)
  await symlink(current, join(dir, '..data'))
  for (const file of Object.keys(files)) await symlink(join('..data', file), join(dir, file))
  return {
    update: async (contents) => {
      const previous = current
      current = await writeVersion(contents)
      await symlink(current, join(dir, '..data_tmp'))
      await rename(join(dir, '..data_tmp'), join(dir, '..data'))
      await rm(join(dir, previous), { recursive: true })
    }
  }
}

t.test('an edit in place reloads; a bad edit keeps the old config; fixing it reloads again', async (t) => {
  const a = await startUpstream(t, (_req, res) => { res.end('a') })
  const b = await startUpstream(t, (_req, res) => { res.end('b') })
  const file = join(t.testdir({}), 'faultline.json')
  const config = (url: string) => ({ reload: { debounceMs: 50 }, routes: [route('svc', '/svc', url)] })
  await writeFile(file, JSON.stringify(config(a.url)))
  const proxy = await startProxy(t, config(a.url), { configFile: file, watchFiles: true })
  t.equal(await body(`${proxy.url}/svc`), 'a')

  await writeFile(file, JSON.stringify(config(b.url)))
  t.ok(await until(async () => await body(`${proxy.url}/svc`) === 'b'), 'the edit is live without a signal')
  t.equal(await reloads(proxy, 'success'), 1, 'one reload')

  await writeFile(file, '{ "routes": [ { "name": "svc", "match": { "pathPrefix": "/svc" }, "upstream": { "url": "nope" } } ] }')
  t.ok(await until(async () => await reloads(proxy, 'failure') === 1), 'the bad edit was tried')
  t.equal(await body(`${proxy.url}/svc`), 'b', 'and the old config stays live')
  t.ok(proxy.logs.lines.some((l) => String(l.msg).includes('previous config stays live') && String(l.err).includes('routes[0].upstream.url')), 'the log names the path')
  await sleep(300)
  t.equal(await reloads(proxy, 'failure'), 1, 'the same bad file is not retried in a loop')

  await writeFile(file, JSON.stringify(config(a.url)))
  t.ok(await until(async () => await body(`${proxy.url}/svc`) === 'a'), 'the fix is picked up')
  t.equal(await reloads(proxy, 'success'), 2)
})

t.test('the kubelet\'s atomic symlink swap reloads, every time; the token file rotates the same way', async (t) => {
  const a = await startUpstream(t, (_req, res) => { res.end('a') })
  const b = await startUpstream(t, (_req, res) => { res.end('b') })
  const root = t.testdir({ config: {}, secret: {} })
  const configDir = join(root, 'config')
  const secretDir = join(root, 'secret')
  const tokenFile = join(secretDir, 'admin-token')
  const yaml = (url: string, extra = ''): string =>
    `reload: { debounceMs: 50 }\nadmin: { tokenFile: ${JSON.stringify(tokenFile)} }\nroutes:\n  - name: svc\n    match: { pathPrefix: /svc }\n    upstream: { url: "${url}" }\n${extra}`
  const oldToken = 'first-token-0123456789abcdef'
  const newToken = 'second-token-0123456789abcdef'
  const secret = await kubeletVolume(secretDir, { 'admin-token': oldToken + '\n' })
  const volume = await kubeletVolume(configDir, { 'faultline.yaml': yaml(a.url) })
  const file = join(configDir, 'faultline.yaml')
  const proxy = await startProxy(t, { admin: { tokenFile }, reload: { debounceMs: 50 }, routes: [route('svc', '/svc', a.url)] }, { configFile: file, watchFiles: true })
  t.equal(await body(`${proxy.url}/svc`), 'a')

  await volume.update({ 'faultline.yaml': yaml(b.url) })
  t.ok(await until(async () => await body(`${proxy.url}/svc`) === 'b'), 'first swap: live')
  // A watch on the file's inode would go quiet here: the inode it held was just deleted.
  await volume.update({ 'faultline.yaml': yaml(a.url) })
  t.ok(await until(async () => await body(`${proxy.url}/svc`) === 'a'), 'second swap: live too')

  // A bad swap keeps the old config.
  await volume.update({ 'faultline.yaml': 'routes: []\n' })
  t.ok(await until(async () => await reloads(proxy, 'failure') === 1), 'the bad swap was tried')
  t.equal(await body(`${proxy.url}/svc`), 'a', 'the old config stays live')
  await volume.update({ 'faultline.yaml': yaml(b.url) })
  t.ok(await until(async () => await body(`${proxy.url}/svc`) === 'b'), 'a good swap after it is live')

  // Rotating the Secret: the new token works, the old one no longer does.
  const post = async (token: string): Promise<number> => (await fetchText(`${proxy.adminUrl}/chaos/on`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status
  t.equal(await post(oldToken), 200)
  await secret.update({ 'admin-token': newToken + '\n' })
  t.ok(await until(async () => await post(newToken) === 200), 'the rotated token is accepted')
  t.equal(await post(oldToken), 401, 'the old token is refused')
})

t.test('a burst of writes is one reload; reload.watch: false leaves the file alone', async (t) => {
  const a = await startUpstream(t, (_req, res) => { res.end('a') })
  const b = await startUpstream(t, (_req, res) => { res.end('b') })
  const dir = t.testdir({})
  const file = join(dir, 'faultline.json')
  const config = (url: string, watch = true) => ({ reload: { watch, debounceMs: 200 }, routes: [route('svc', '/svc', url)] })
  await writeFile(file, JSON.stringify(config(a.url)))
  const proxy = await startProxy(t, config(a.url), { configFile: file, watchFiles: true })
  for (let i = 0; i < 5; i++) { await writeFile(file, JSON.stringify(config(i % 2 === 0 ? b.url : a.url))); await sleep(10) }
  t.ok(await until(async () => await reloads(proxy, 'success') >= 1), 'reloaded')
  await sleep(500)
  t.equal(await reloads(proxy, 'success'), 1, 'five writes within the debounce: one reload')
  t.equal(await body(`${proxy.url}/svc`), 'b', 'of the last content')

  // Unrelated files in the directory change nothing.
  await writeFile(join(dir, 'other.txt'), 'x')
  await sleep(400)
  t.equal(await reloads(proxy, 'success'), 1, 'a neighbour file is no reload')

  // Switching the watch off (by reload) stops it.
  await writeFile(file, JSON.stringify(config(b.url, false)))
  t.ok(await until(async () => await reloads(proxy, 'success') === 2), 'the switch itself arrives by the watch')
  await writeFile(file, JSON.stringify(config(a.url, false)))
  await sleep(600)
  t.equal(await body(`${proxy.url}/svc`), 'b', 'watch off: the edit is not picked up')
  t.equal(await reloads(proxy, 'success'), 2)
})
