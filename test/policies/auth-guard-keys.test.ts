/**
 * The auth guard protects callers, not origins from callers: it is keyed
 * by credential (a keyed hash, never the value), requests without
 * credentials never block requests with them, and only many distinct
 * credentials that had worked, failing at once, trip the whole origin.
 */
import t from 'tap'
import { fetchText, route, startProxy, startUpstream, type StartedProxy } from '../helpers.js'

/** Tokens the upstream accepts; a test revokes some to play a rotation gone wrong. */
const valid = new Set(['Bearer good'])

async function guardedProxy (t: Parameters<typeof startUpstream>[0], originAfter = 5): Promise<StartedProxy> {
  const upstream = await startUpstream(t, (req, res) => {
    res.writeHead(valid.has(req.headers.authorization ?? '') || req.headers.cookie === 'session=good' ? 200 : 401).end()
  })
  const authGuard = { failures: 2, blockMs: 10_000, originAfter }
  return await startProxy(t, {
    routes: [
      route('a', '/a', upstream.url, { resilience: { authGuard } }),
      route('b', '/b', upstream.url, { resilience: { authGuard } })
    ]
  })
}

const status = async (url: string, headers: Record<string, string> = {}): Promise<number> => (await fetchText(url, { headers })).status

t.test('requests without credentials never block callers that have them', async (t) => {
  const proxy = await guardedProxy(t)
  t.same([await status(`${proxy.url}/a/x`), await status(`${proxy.url}/a/x`), await status(`${proxy.url}/a/x`)], [401, 401, 503], 'anonymous callers are blocked after two 401s')
  t.equal(await status(`${proxy.url}/a/x`, { authorization: 'Bearer good' }), 200, 'a caller with a valid token on the same route is served')
  t.equal(await status(`${proxy.url}/b/x`, { authorization: 'Bearer good' }), 200, 'and on another route to the same origin')
  t.equal(await status(`${proxy.url}/a/x`, { cookie: 'session=good' }), 200, 'a session cookie is a credential too')
})

t.test('a bad credential blocks only itself', async (t) => {
  const proxy = await guardedProxy(t)
  const bad = { authorization: 'Bearer expired-1' }
  t.same([await status(`${proxy.url}/a/x`, bad), await status(`${proxy.url}/a/x`, bad), await status(`${proxy.url}/a/x`, bad)], [401, 401, 503])
  const blocked = await fetchText(`${proxy.url}/b/x`, { headers: bad })
  t.equal(blocked.status, 503, 'blocked on every route to the origin')
  t.match(JSON.parse(blocked.body).message, /with these credentials/)
  t.equal(await status(`${proxy.url}/a/x`, { authorization: 'Bearer good' }), 200, 'another credential is served')
  const routes = await fetchText(`${proxy.adminUrl}/routes`)
  t.equal(routes.status, 200)
  t.notMatch(routes.body, /expired-1/, 'the credential is never kept or shown')
  t.match(routes.body, /"blockedCredentials":1/)
})

t.test('made-up credentials never trip the origin', async (t) => {
  const proxy = await guardedProxy(t, 3)
  for (let n = 0; n < 6; n++) {
    for (let i = 0; i < 3; i++) await status(`${proxy.url}/a/x`, { authorization: `Bearer made-up-${n}` })
  }
  t.equal(await status(`${proxy.url}/a/x`, { authorization: 'Bearer good' }), 200, 'six blocked made-up tokens do not block a good one')
})

t.test('many distinct credentials that worked and now fail trip the whole origin (a rotation gone wrong)', async (t) => {
  const proxy = await guardedProxy(t, 3)
  for (const n of [1, 2, 3]) valid.add(`Bearer rotated-${n}`)
  for (const n of [1, 2, 3]) t.equal(await status(`${proxy.url}/a/x`, { authorization: `Bearer rotated-${n}` }), 200)
  for (const n of [1, 2, 3]) valid.delete(`Bearer rotated-${n}`)
  for (const n of [1, 2]) {
    for (let i = 0; i < 2; i++) await status(`${proxy.url}/a/x`, { authorization: `Bearer rotated-${n}` })
  }
  t.equal(await status(`${proxy.url}/a/x`, { authorization: 'Bearer good' }), 200, 'two blocked credentials do not trip the origin')
  for (let i = 0; i < 2; i++) await status(`${proxy.url}/a/x`, { authorization: 'Bearer rotated-3' })
  const origin = await fetchText(`${proxy.url}/b/x`, { headers: { authorization: 'Bearer good' } })
  t.equal(origin.status, 503, 'the third trips the origin: even a good credential is held back')
  t.match(JSON.parse(origin.body).message, /3 different credentials that had worked before/)
})
