/** The request methods a route or a fault matcher may name. */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'] as const
export type HttpMethod = (typeof HTTP_METHODS)[number]
