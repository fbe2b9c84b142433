/**
 * A small reader for the Prometheus text format, enough to read our own
 * /metrics back (the demo summary and the tests use it).
 */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

export function parsePrometheusText (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = LINE.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    if (m[2]) for (const l of m[2].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\')
    samples.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return samples
}

/** Sum of the samples of `name` whose labels include all of `where`. */
export function sumOf (samples: Sample[], name: string, where: Record<string, string> = {}): number {
  let total = 0
  for (const s of samples) {
    if (s.name !== name) continue
    let ok = true
    for (const k in where) if (s.labels[k] !== where[k]) { ok = false; break }
    if (ok) total += s.value
  }
  return total
}
