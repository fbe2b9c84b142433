/**
 * X-Forwarded-For/-Proto/-Host from a client are claims anyone can make:
 * replaced unless the peer is in listen.trustedProxies, kept and appended
 * to when it is (Envoy's xff_num_trusted_hops, by address).
 */
import t from 'tap'
import type { IncomingHttpHeaders } from 'node:http'
import { fetchText, route, startProxy, startUpstream } from '../helpers.js'
import { ForwardingTrust, parseCidr } from '../../src/proxy/trust.js'
import { parseConfig } from '../../src/config/load.js'

const spoofed = { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'bank.example', host: 'svc.local' }

t.test('from an untrusted peer, spoofed X-Forwarded-* are replaced', async (t) => {
  let seen: IncomingHttpHeaders = {}
  const upstream = await startUpstream(t, (req, res) => { seen = req.headers; res.end('ok') })
  const proxy = await startProxy(t, { listen: { trustedProxies: ['10.0.0.0/8'] }, routes: [route('f', '/f', upstream.url)] })
  await fetchText(`${proxy.url}/f`, { headers: spoofed })
  t.equal(seen['x-forwarded-for'], '127.0.0.1', 'only the address faultline saw')
  t.equal(seen['x-forwarded-proto'], 'http', 'the scheme faultline was reached by')
  t.equal(seen['x-forwarded-host'], 'svc.local', 'the Host the client sent')
})

t.test('from a trusted peer, they are kept and the peer appended', async (t) => {
  let seen: IncomingHttpHeaders = {}
  const upstream = await startUpstream(t, (req, res) => { seen = req.headers; res.end('ok') })
  const proxy = await startProxy(t, { listen: { trustedProxies: ['127.0.0.0/8'] }, routes: [route('f', '/f', upstream.url)] })
  await fetchText(`${proxy.url}/f`, { headers: spoofed })
  t.equal(seen['x-forwarded-for'], '6.6.6.6, 127.0.0.1')
  t.equal(seen['x-forwarded-proto'], 'https')
  t.equal(seen['x-forwarded-host'], 'bank.example')
})

t.test('trusted ranges: CIDRs and addresses, IPv4-mapped peers, bad entries named', async (t) => {
  const trust = new ForwardingTrust(['10.0.0.0/8', '192.168.1.7', 'fd00::/8'])
  t.ok(trust.trusts('10.200.3.4'))
  t.ok(trust.trusts('::ffff:10.1.1.1'), 'an IPv4-mapped IPv6 peer matches its IPv4 range')
  t.ok(trust.trusts('192.168.1.7'))
  t.notOk(trust.trusts('192.168.1.8'))
  t.ok(trust.trusts('fd12::1'))
  t.notOk(trust.trusts('127.0.0.1'))
  t.notOk(new ForwardingTrust().trusts('127.0.0.1'), 'nobody is trusted by default')
  t.equal(parseCidr('10.0.0.0/33'), undefined)
  t.equal(parseCidr('nope'), undefined)
  t.throws(() => parseConfig({ listen: { trustedProxies: ['10.0.0.0/8', 'a.b.c.d/8'] }, routes: [{ name: 'r', match: { pathPrefix: '/' }, upstream: { url: 'http://127.0.0.1:1' } }] }, 'cfg.yaml'),
    /listen\.trustedProxies\[1\].*IP address or CIDR/)
})
