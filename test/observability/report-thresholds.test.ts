/**
 * docs/OBSERVABILITY.md: suggestions "need a minimum of evidence (20
 * retries, 50 requests) before they speak". Checked on both sides of
 * each threshold, through the proxy and GET /report.
 */
import t from 'tap'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'

async function suggestions (adminUrl: string, name: string): Promise<string[]> {
  const body = JSON.parse((await fetchText(`${adminUrl}/report?route=${name}`)).body) as { routes: Array<{ suggestions: string[] }> }
  return body.routes[0]!.suggestions
}

t.test('suggestions wait for 20 retries and 50 requests', async (t) => {
  const down = await startUpstream(t, (_req, res) => { res.statusCode = 503; res.end('down') })
  const proxy = await startProxy(t, {
    routes: [
      route('retried', '/retried', down.url, { resilience: { retry: { attempts: 3, backoff: { baseMs: 1, maxMs: 1 }, budgetRatio: 10, budgetMinRetries: 100 } } }),
      route('bare', '/bare', down.url)
    ]
  })
  // Two retries per request: 9 requests make 18 retries, the 10th makes 20.
  for (let i = 0; i < 9; i++) await fetchText(`${proxy.url}/retried/x`)
  t.notOk((await suggestions(proxy.adminUrl, 'retried')).some((s) => /retries after/.test(s)), '18 retries: too few to advise on')
  await fetchText(`${proxy.url}/retried/x`)
  t.ok((await suggestions(proxy.adminUrl, 'retried')).some((s) => /retries after http_5xx failures succeed 0% of the time \(0 of 20\)/.test(s)), '20 retries: advice')

  for (let i = 0; i < 49; i++) await fetchText(`${proxy.url}/bare/x`)
  t.notOk((await suggestions(proxy.adminUrl, 'bare')).some((s) => /transient failure/.test(s)), '49 requests: too few')
  await fetchText(`${proxy.url}/bare/x`)
  t.ok((await suggestions(proxy.adminUrl, 'bare')).some((s) => /100% of requests met a transient failure .* no retry/.test(s)), '50 requests: advice')
})
