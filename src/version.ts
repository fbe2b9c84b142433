<<<<<<< HEAD
/**
 * faultline's version, read from package.json once at start: the one place
 * it is written. The path holds from src/ (tsx) and from dist/ (the image
 * copies package.json beside dist/).
 */
import { readFileSync } from 'node:fs'

export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
=======
/** The package version, read once from package.json (one level above src/ and dist/). */
import { readFileSync } from 'node:fs'

export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version
>>>>>>> 3f48d38 (cli: commander with --help on every command, --version, FILE/--config/FAULTLINE_CONFIG everywhere, usage errors exit 2; a port clash names listen.port/admin.port and the address; YAML errors show the line and a caret; did-you-mean for keys and values; unset ${VAR}s reported with every other problem)
