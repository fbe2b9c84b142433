/**
 * Who may tell faultline where a request came from (docs/SECURITY.md,
 * "Forwarded headers"). X-Forwarded-For/-Proto/-Host sent by a client are
 * claims anyone can make; only a peer in `listen.trustedProxies` (a load
 * balancer or ingress in front of faultline) is believed, as Envoy
 * believes only its `xff_num_trusted_hops`. From anyone else they are
 * replaced by what faultline saw itself.
 */
import { BlockList, isIP } from 'node:net'

/** "10.0.0.0/8", "192.168.1.7", "fd00::/8": an address, optionally with a prefix length. */
export function parseCidr (text: string): { address: string, prefix: number, family: 'ipv4' | 'ipv6' } | undefined {
  const slash = text.indexOf('/')
  const address = slash === -1 ? text : text.slice(0, slash)
  const version = isIP(address)
  if (version === 0) return undefined
  const max = version === 4 ? 32 : 128
  const prefixText = slash === -1 ? String(max) : text.slice(slash + 1)
  if (!/^\d{1,3}$/.test(prefixText)) return undefined
  const prefix = Number(prefixText)
  if (prefix > max) return undefined
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' }
}

export class ForwardingTrust {
  private readonly list: BlockList | undefined

  constructor (cidrs: readonly string[] = []) {
    if (cidrs.length === 0) return
    this.list = new BlockList()
    for (const cidr of cidrs) {
      const parsed = parseCidr(cidr)
      if (parsed !== undefined) this.list.addSubnet(parsed.address, parsed.prefix, parsed.family)
    }
  }

  /** True when the peer at `address` may set X-Forwarded-*; IPv4-mapped IPv6 peers match IPv4 ranges. */
  trusts (address: string | undefined): boolean {
    if (this.list === undefined || address === undefined) return false
    const version = isIP(address)
    if (version === 0) return false
    return this.list.check(address, version === 4 ? 'ipv4' : 'ipv6')
  }
}
