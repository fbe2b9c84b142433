/**
 * The probe listener (config `probes`): GET/HEAD /healthz and /readyz and
 * nothing else. It exists so the kubelet can probe faultline on a port of
 * its own while the admin API, with /routes, /report and the mutating
 * calls, stays behind its token and a network policy. Nothing it answers
 * depends on the caller, so it needs no token and refuses nothing else.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'

export interface ProbeServerOptions {
  logger: Logger
  isReady: () => boolean
}

export function createProbeServer (options: ProbeServerOptions): FastifyInstance {
  const app = Fastify({
    loggerInstance: options.logger.child({ component: 'probes' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Probes send no body; anything larger than a line is not a probe.
    bodyLimit: 1024,
    forceCloseConnections: true
  })
  app.get('/healthz', async (_request, reply) => await reply.header('cache-control', 'no-store').send({ status: 'ok' }))
  app.get('/readyz', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    if (options.isReady()) return await reply.send({ status: 'ready' })
    return await reply.code(503).send({ status: 'not_ready' })
  })
  app.setNotFoundHandler((request, reply) => reply.code(404).send({ error: 'not_found', message: `the probe port serves only GET /healthz and /readyz, not ${request.method} ${request.url.split('?')[0]}` }))
  return app
}
