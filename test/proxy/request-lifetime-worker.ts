/**
 * The proxy of test/proxy/request-lifetime.test.ts, alone in a worker
 * thread: its own V8 heap, so the old generation measured here holds the
 * proxy's objects only, not the test's client or upstream.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { setImmediate as tick } from 'node:timers/promises'
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { route, startProxy } from '../helpers.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as (options?: { type: 'minor' | 'major' }) => void
const oldSpace = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space')!.space_used_size

const teardowns: Array<() => unknown> = []
const { upstreamUrl, extra } = workerData as { upstreamUrl: string, extra: Record<string, unknown> }
const proxy = await startProxy({ teardown: (fn) => teardowns.push(fn) }, { log: { level: 'silent' }, routes: [route('r', '/r', upstreamUrl, extra)] })
let mark = 0

/** Two scavenges: whatever is still young and alive is promoted. */
function scavenge (): void {
  gc({ type: 'minor' })
  gc({ type: 'minor' })
}

parentPort!.on('message', (message: string) => {
  void (async () => {
    await tick()
    if (message === 'mark') {
      gc({ type: 'major' })
      scavenge()
      mark = oldSpace()
      parentPort!.postMessage({ marked: true })
    } else if (message === 'measure') {
      scavenge()
      parentPort!.postMessage({ promoted: oldSpace() - mark })
    } else {
      for (const fn of teardowns.reverse()) await fn()
      parentPort!.close()
    }
  })()
})
parentPort!.postMessage({ url: proxy.url })
