/**
 * https:// upstreams: verified against a CA bundle the test generates with
 * openssl, SNI sent as configured, and a client certificate for mutual TLS.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { copyFileSync, readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { join } from 'node:path'
import { fetchText, route, startProxy } from '../helpers.js'

/** A CA, a server certificate for `upstream.test`, and a client certificate, all signed by the CA. */
function makePki (dir: string): Record<'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey' | 'otherCa', string> {
  const f = (name: string): string => join(dir, name)
  const ssl = (...args: string[]): void => { execFileSync('openssl', args, { stdio: 'pipe' }) }
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '1', '-subj', '/CN=faultline test CA')
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('other.key'), '-out', f('other.pem'), '-days', '1', '-subj', '/CN=some other CA')
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=upstream.test')
  const ext = f('server.ext')
  execFileSync('sh', ['-c', `printf 'subjectAltName=DNS:upstream.test\\n' > ${ext}`])
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.pem'), '-days', '1', '-extfile', ext)
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('client.key'), '-out', f('client.csr'), '-subj', '/CN=faultline client')
  ssl('x509', '-req', '-in', f('client.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('client.pem'), '-days', '1')
  return { ca: f('ca.pem'), serverCert: f('server.pem'), serverKey: f('server.key'), clientCert: f('client.pem'), clientKey: f('client.key'), otherCa: f('other.pem') }
}

t.test('TLS upstreams: CA bundle, SNI and mutual TLS', async (t) => {
  const pki = makePki(t.testdir({}))
  const seen: Array<{ sni: unknown, clientCn: unknown }> = []
  const server: Server = createServer({
    cert: readFileSync(pki.serverCert),
    key: readFileSync(pki.serverKey),
    ca: readFileSync(pki.ca),
    // Mutual TLS: a client certificate from the CA is required.
    requestCert: true,
    rejectUnauthorized: true
  }, (req, res) => {
    const socket = req.socket as TLSSocket
    const peer = socket.getPeerCertificate()
    seen.push({ sni: socket.servername, clientCn: peer.subject?.CN })
    res.end('secure hello')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise((resolve) => server.close(resolve)) })
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  const tls = { ca: pki.ca, servername: 'upstream.test', cert: pki.clientCert, key: pki.clientKey }
  // A CA bundle at a fixed path whose contents are replaced later (a rotated, mounted secret).
  const liveCa = join(pki.ca, '..', 'live-ca.pem')
  copyFileSync(pki.otherCa, liveCa)
  const proxy = await startProxy(t, {
    routes: [
      route('mtls', '/mtls', url, { upstream: { url, tls } }),
      route('nocert', '/nocert', url, { upstream: { url, tls: { ca: pki.ca, servername: 'upstream.test' } } }),
      route('wrongca', '/wrongca', url, { upstream: { url, tls: { ...tls, ca: pki.otherCa } } }),
      route('wrongname', '/wrongname', url, { upstream: { url, tls: { ...tls, servername: 'elsewhere.test' } } }),
      route('rotating', '/rotating', url, { upstream: { url, tls: { ...tls, ca: liveCa } } })
    ]
  })
  const ok = await fetchText(`${proxy.url}/mtls`)
  t.equal(ok.status, 200)
  t.equal(ok.body, 'secure hello')
  t.same(seen[0], { sni: 'upstream.test', clientCn: 'faultline client' }, 'SNI sent and the client certificate presented')

  const nocert = await fetchText(`${proxy.url}/nocert`)
  t.equal(nocert.status, 502, 'without the client certificate the upstream refuses the handshake')
  const wrongCa = await fetchText(`${proxy.url}/wrongca`)
  t.equal(wrongCa.status, 502, 'an upstream the CA bundle does not vouch for is refused')
  const wrongName = await fetchText(`${proxy.url}/wrongname`)
  t.equal(wrongName.status, 502, 'a certificate for another name is refused')
  t.equal(seen.length, 1, 'only the verified, authenticated route reached the upstream')

  // Certificates rotated in place are read again on reload: same path, new contents, a new pool.
  t.equal((await fetchText(`${proxy.url}/rotating`)).status, 502, 'the live bundle does not vouch for the upstream yet')
  copyFileSync(pki.ca, liveCa)
  t.equal((await fetchText(`${proxy.url}/rotating`)).status, 502, 'no reload yet: the pool keeps what it read')
  proxy.faultline.applyConfig(proxy.faultline.currentConfig)
  const rotated = await fetchText(`${proxy.url}/rotating`)
  t.equal(rotated.status, 200, 'after a reload the rotated bundle is used')
  t.equal(rotated.body, 'secure hello')
})

t.test('TLS config is validated', async (t) => {
  const { parseConfig } = await import('../../src/config/load.js')
  t.throws(() => parseConfig({ routes: [route('a', '/', 'https://x:1', { upstream: { url: 'https://x:1', tls: { cert: '/c.pem' } } })] }, 'f.yaml'), /routes\[0\]\.upstream\.tls: expected both cert and key/)
})
