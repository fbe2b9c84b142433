/**
 * Chaos control on the admin API. Reads are open; every change needs the
 * bearer token (enforced by the admin server), is validated with the same
 * zod schemas as the config, audited, and visible in GET /routes.
 *
 *   GET    /chaos                                  kill switch and every route's chaos
 *   POST   /chaos/off | /chaos/on                  the process-wide kill switch (fleet-wide with fleet control)
 *   GET    /chaos/routes/:route                    one route's chaos
 *   PATCH  /chaos/routes/:route                    { enabled?, seed? }
 *   GET    /chaos/routes/:route/faults             its faults, with ids
 *   POST   /chaos/routes/:route/faults             add one (body: a fault, as in the config)
 *   PUT    /chaos/routes/:route/faults/:id         replace one
 *   DELETE /chaos/routes/:route/faults/:id         remove one
 *   POST   /chaos/routes/:route/faults/:id/reset   restart its schedule (counts, window, ttl)
 *   POST   /chaos/routes/:route/reset              restart every schedule on the route, trigger headers' too
 *
 * The config file is the source of truth: a reload rebuilds every route's
 * chaos from it, dropping runtime changes. The kill switch is not config
 * and survives reloads (a reload never re-arms chaos an operator stopped).
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { adminError, audit, type AdminExtension } from './server.js'
import { problemsFromZod } from '../config/errors.js'
import { faultSchema, type FaultConfig } from '../faults/schema.js'
import type { ArmedFault } from '../faults/armed.js'
import { DuplicateFaultError, EndedFaultError, type FaultSet } from '../faults/fault-set.js'
import type { RouteRuntime } from '../proxy/route.js'
import type { ChaosSwitch } from '../faults/switch.js'

const RUNTIME_NOTE = 'runtime change: a config reload replaces this route\'s chaos with the config file\'s'

const routePatch = z.strictObject({
  enabled: z.boolean().optional(),
  seed: z.number().int().min(0).max(0xffffffff).optional()
})

interface RouteParams { route: string }
interface FaultParams { route: string, id: string }

function invalid (reply: FastifyReply, error: z.ZodError): FastifyReply {
  const problems = problemsFromZod(error)
  return adminError(reply, 'invalid_fault', problems.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).join('; '), { problems })
}

/**
 * With fleet control: whether every replica was told (`told`) or only this
 * one changed because Redis is unreachable (`pending`: the others follow
 * when it is back). Undefined without fleet control.
 */
async function fleetScope (chaosSwitch: ChaosSwitch): Promise<'told' | 'pending' | undefined> {
  const told = chaosSwitch.told
  if (told === undefined) return undefined
  return (await told) ? 'told' : 'pending'
}

export function chaosAdmin (chaosSwitch: ChaosSwitch): AdminExtension {
  return (app, control) => {
    const routeOf = (request: FastifyRequest<{ Params: RouteParams }>, reply: FastifyReply): RouteRuntime | undefined => {
      const route = control.table().get(request.params.route)
      if (route === undefined) void adminError(reply, 'no_route', `no route named ${JSON.stringify(request.params.route)}`)
      return route
    }

    app.get('/chaos', async () => ({
      killSwitch: chaosSwitch.enabled ? 'on' : 'off',
      routes: control.table().routes.map((r) => ({ route: r.name, ...r.faultStage.snapshot() }))
    }))

    app.post('/chaos/off', async (request) => {
      const changed = chaosSwitch.turnOff()
      const fleet = await fleetScope(chaosSwitch)
      audit(request, 'chaos.off', { changed, fleet })
      return { killSwitch: 'off', changed, ...(fleet === undefined ? {} : { fleet }) }
    })

    app.post('/chaos/on', async (request) => {
      const changed = chaosSwitch.turnOn()
      const fleet = await fleetScope(chaosSwitch)
      audit(request, 'chaos.on', { changed, fleet })
      return { killSwitch: 'on', changed, ...(fleet === undefined ? {} : { fleet }) }
    })

    app.get<{ Params: RouteParams }>('/chaos/routes/:route', async (request, reply) => {
      const route = routeOf(request, reply)
      return route === undefined ? reply : { route: route.name, ...route.faultStage.snapshot() }
    })

    app.patch<{ Params: RouteParams }>('/chaos/routes/:route', async (request, reply) => {
      const route = routeOf(request, reply)
      if (route === undefined) return reply
      const body = routePatch.safeParse(request.body ?? {}, { reportInput: true })
      if (!body.success) return invalid(reply, body.error)
      if (body.data.enabled !== undefined) route.faultSet.setEnabled(body.data.enabled)
      if (body.data.seed !== undefined) route.faultSet.reseed(body.data.seed)
      audit(request, 'chaos.route', { route: route.name, ...body.data })
      return { route: route.name, ...route.faultStage.snapshot(), note: RUNTIME_NOTE }
    })

    app.get<{ Params: RouteParams }>('/chaos/routes/:route/faults', async (request, reply) => {
      const route = routeOf(request, reply)
      return route === undefined ? reply : { route: route.name, faults: route.faultSet.list() }
    })

    /**
     * Validates the body as a fault and hands it to `change` (add or
     * replace); answers 400 (invalid), 409 (name taken) or 404 (no such
     * fault) itself, and the audited success otherwise.
     */
    const changeFault = async (
      request: FastifyRequest<{ Params: RouteParams & { id?: string } }>,
      reply: FastifyReply,
      action: string,
      change: (set: FaultSet, config: FaultConfig) => ArmedFault | undefined
    ): Promise<FastifyReply> => {
      const route = routeOf(request, reply)
      if (route === undefined) return reply
      const body = faultSchema.safeParse(request.body, { reportInput: true })
      if (!body.success) return invalid(reply, body.error)
      let armed
      try {
        armed = change(route.faultSet, body.data)
      } catch (err) {
        if (err instanceof DuplicateFaultError) return adminError(reply, 'duplicate_fault', err.message)
        if (err instanceof EndedFaultError) return adminError(reply, 'invalid_fault', err.message)
        throw err
      }
      if (armed === undefined) return adminError(reply, 'no_fault', `route ${route.name} has no fault ${JSON.stringify(request.params.id)}`)
      audit(request, action, { route: route.name, id: armed.id, replaced: request.params.id, fault: armed.config })
      return await reply.code(request.params.id === undefined ? 201 : 200)
        .send({ route: route.name, fault: { id: armed.id, ...armed.config }, enabled: route.faultSet.isEnabled, note: RUNTIME_NOTE })
    }

    app.post<{ Params: RouteParams }>('/chaos/routes/:route/faults', async (request, reply) =>
      await changeFault(request, reply, 'chaos.fault.add', (set, config) => set.add(config)))

    app.put<{ Params: FaultParams }>('/chaos/routes/:route/faults/:id', async (request, reply) =>
      await changeFault(request, reply, 'chaos.fault.replace', (set, config) => set.replace(request.params.id, config)))

    app.delete<{ Params: FaultParams }>('/chaos/routes/:route/faults/:id', async (request, reply) => {
      const route = routeOf(request, reply)
      if (route === undefined) return reply
      if (!route.faultSet.remove(request.params.id)) return adminError(reply, 'no_fault', `route ${route.name} has no fault ${JSON.stringify(request.params.id)}`)
      audit(request, 'chaos.fault.remove', { route: route.name, id: request.params.id })
      return { route: route.name, removed: request.params.id, note: RUNTIME_NOTE }
    })

    app.post<{ Params: FaultParams }>('/chaos/routes/:route/faults/:id/reset', async (request, reply) => {
      const route = routeOf(request, reply)
      if (route === undefined) return reply
      if (!route.faultSet.resetSchedule(request.params.id)) return adminError(reply, 'no_fault', `route ${route.name} has no fault ${JSON.stringify(request.params.id)}`)
      audit(request, 'chaos.fault.reset', { route: route.name, id: request.params.id })
      const fault = route.faultSet.list().find((f) => f.id === request.params.id)
      return { route: route.name, fault, note: RUNTIME_NOTE }
    })

    app.post<{ Params: RouteParams }>('/chaos/routes/:route/reset', async (request, reply) => {
      const route = routeOf(request, reply)
      if (route === undefined) return reply
      route.faultSet.resetSchedule()
      audit(request, 'chaos.route.reset', { route: route.name })
      return { route: route.name, ...route.faultStage.snapshot(), note: RUNTIME_NOTE }
    })
  }
}
