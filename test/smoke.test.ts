import t from 'tap'
import { fetchText, route, scrape, startProxy, startUpstream, sumOf } from './helpers.js'

t.test('a request passes through and is counted', async (t) => {
  const upstream = await startUpstream(t, (req, res) => { res.setHeader('content-type', 'text/plain'); res.end(`hello ${req.url}`) })
  const proxy = await startProxy(t, { routes: [route('hello', '/hello', upstream.url)] })
  const res = await fetchText(`${proxy.url}/hello/world?x=1`)
  t.equal(res.status, 200)
  t.equal(res.body, 'hello /hello/world?x=1')
  const samples = await scrape(proxy)
  t.equal(sumOf(samples, 'faultline_requests_total', { route: 'hello', outcome: 'ok', status_class: '2xx', method: 'GET' }), 1)
})
