/**
 * The no-op fault: the request goes on untouched. Useful as a trigger
 * header (`x-faultline-fault: none`) to exempt one request from a route's
 * random faults, since a trigger header replaces them for its request.
 */
import { defineFault, faultObject } from './fault.js'

export const none = defineFault({
  summary: 'nothing: the request goes on untouched',
  example: 'none',
  schema: faultObject('none', {}),
  create: () => ({ apply: async (ctx, next) => await next(ctx) })
})
