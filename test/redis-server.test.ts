// The test helper itself: a real redis-server starts, answers, stops and comes back on the same port.
import t from 'tap'
import { Redis } from 'ioredis'
import { needTool } from './helpers.js'
import { startRedis } from './redis-server.js'

const { path: redisServer, skip } = needTool('redis-server')

t.test('startRedis: answers, stops and starts again on the same port', { skip }, async (t) => {
  const redis = await startRedis(t, redisServer as string)
  const client = new Redis(redis.url, { maxRetriesPerRequest: 1, retryStrategy: () => 50 })
  t.teardown(() => { client.disconnect() })
  await client.set('k', 'v')
  t.equal(await client.get('k'), 'v')
  await redis.stop()
  await t.rejects(client.get('k'), 'a stopped server answers nothing')
  await redis.start()
  // No persistence: the restarted server is empty, as a lost Redis would be.
  let value: string | null | undefined
  for (let i = 0; i < 40 && value === undefined; i++) {
    try { value = await client.get('k') } catch { await new Promise((resolve) => setTimeout(resolve, 50)) }
  }
  t.equal(value, null, 'the client reconnects to the restarted, empty server')
})
