/**
 * A listener that could not bind, said in config terms: which key to
 * change (`listen.port`, `admin.port` or `probes.port`) and which address clashed,
 * instead of a bare `listen EADDRINUSE` stack. Its `code` is `listen_failed`;
 * the system's (`EADDRINUSE`, `EACCES`, ...) is `causeCode`.
 */
import { FaultlineError } from './core/errors.js'

export class ListenError extends FaultlineError {
  readonly key: string
  readonly address: string
  readonly causeCode: string | undefined

  constructor (key: 'listen' | 'admin' | 'probes', host: string, port: number, cause: unknown) {
    const code = (cause as { code?: string } | undefined)?.code
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`
    const why = code === 'EADDRINUSE'
      ? `${address} is already in use (another process, or another faultline, listens there): change ${key}.port or stop that process`
      : code === 'EACCES'
        ? `permission denied to listen on ${address} (ports below 1024 need privileges): change ${key}.port`
        : code === 'EADDRNOTAVAIL'
          ? `${address} is not an address of this machine: change ${key}.host`
          : `cannot listen on ${address}: ${(cause as Error | undefined)?.message ?? String(cause)}`
    const field = code === 'EADDRNOTAVAIL' ? `${key}.host` : `${key}.port`
    super('listen_failed', `${field}: ${why}`, { cause })
    this.name = 'ListenError'
    this.key = field
    this.address = address
    this.causeCode = code
  }
}
