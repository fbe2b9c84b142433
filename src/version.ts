/**
 * faultline's version, read from package.json once at start: the one place
 * it is written. The path holds from src/ (tsx) and from dist/ (the image
 * copies package.json beside dist/).
 */
import { readFileSync } from 'node:fs'

export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
