/** Programmatic API: start faultline in-process (tests, the demo, embedding). */
export { Faultline, type StartOptions } from './faultline.js'
export { loadConfigFile, parseConfig, parseConfigText } from './config/load.js'
export { ConfigError } from './config/errors.js'
export { configSchema, type Config, type ConfigInput, type RouteConfig } from './config/schema.js'
export { Metrics } from './metrics/metrics.js'
export { createLogger } from './log.js'
