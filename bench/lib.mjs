/** Helpers shared by the bench scripts. */
import { createServer } from 'node:net'

/** A free port on 127.0.0.1 (bound, then released) for a child process to listen on. */
export async function freePort () {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}
