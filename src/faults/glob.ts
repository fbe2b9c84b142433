/**
 * Path globs for fault matchers, matched without a backtracking regex.
 *
 * picomatch compiles `/reports/*-*-*.csv` to a regex whose lazy stars
 * backtrack polynomially: a 4 KB path of dashes blocked the event loop for
 * seconds. Here a pattern is split into segments once, and matched with
 * the classic two-pointer wildcard algorithm at two levels (`**` over
 * segments, `*` within one): it remembers only the last star, so the cost
 * is bounded by path length × pattern length, whatever the input.
 *
 * Syntax (picomatch's, with `dot: true`): `*` any run within a segment
 * (a lone `*` needs at least one character), `**` as a whole segment any
 * number of segments (none included), `?` one character, `[a-z]`,
 * `[!x]`/`[^x]` classes, `{a,b}` alternatives, `\` escapes. Extglobs
 * (`+(a|b)` and friends) are refused.
 */
import { FaultlineError } from '../core/errors.js'

/** A character test for one pattern position. */
type Atom = { kind: 'char', ch: string } | { kind: 'any' } | { kind: 'star' } | { kind: 'class', negated: boolean, ranges: Array<[string, string]> }

type Segment = { kind: 'globstar' } | { kind: 'atoms', atoms: Atom[], loneStar: boolean }

export const MAX_GLOB_LENGTH = 256
const MAX_ALTERNATIVES = 64

export class GlobError extends FaultlineError {
  constructor (message: string) { super('invalid_glob', message) }
}

/** `{a,b}` expanded into whole patterns (bounded), innermost-first. */
function expandBraces (pattern: string): string[] {
  let depth = 0
  let open = -1
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === '\\') { i++; continue }
    if (c === '{') { if (depth++ === 0) open = i } else if (c === '}' && depth > 0 && --depth === 0) {
      const body = pattern.slice(open + 1, i)
      const parts: string[] = []
      let level = 0
      let start = 0
      for (let j = 0; j < body.length; j++) {
        const d = body[j]
        if (d === '\\') { j++; continue }
        if (d === '{') level++
        else if (d === '}') level--
        else if (d === ',' && level === 0) { parts.push(body.slice(start, j)); start = j + 1 }
      }
      parts.push(body.slice(start))
      // `{a}` without a comma is literal in picomatch too.
      if (parts.length === 1) continue
      const head = pattern.slice(0, open)
      const tail = pattern.slice(i + 1)
      const out: string[] = []
      for (const part of parts) {
        for (const expanded of expandBraces(head + part + tail)) {
          out.push(expanded)
          if (out.length > MAX_ALTERNATIVES) throw new GlobError(`expected at most ${MAX_ALTERNATIVES} alternatives from {...}`)
        }
      }
      return out
    }
  }
  return [pattern]
}

function parseSegment (text: string): Segment {
  if (text === '**') return { kind: 'globstar' }
  const atoms: Atom[] = []
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c === '\\') {
      const next = text[++i]
      if (next === undefined) throw new GlobError('expected a character after "\\"')
      atoms.push({ kind: 'char', ch: next })
    } else if (c === '*') {
      // Runs of stars inside a segment are one star (`a**` is `a*`, as in picomatch).
      if (atoms.at(-1)?.kind !== 'star') atoms.push({ kind: 'star' })
    } else if (c === '?') {
      if (text[i + 1] === '(') throw new GlobError('extglobs like "?(...)" are not supported')
      atoms.push({ kind: 'any' })
    } else if ((c === '+' || c === '@' || c === '!') && text[i + 1] === '(') {
      throw new GlobError(`extglobs like "${c}(...)" are not supported`)
    } else if (c === '[') {
      const close = text.indexOf(']', i + 2)
      if (close === -1) throw new GlobError('expected "]" to close "["')
      let body = text.slice(i + 1, close)
      const negated = body.startsWith('!') || body.startsWith('^')
      if (negated) body = body.slice(1)
      const ranges: Array<[string, string]> = []
      for (let j = 0; j < body.length; j++) {
        const from = body[j]!
        if (body[j + 1] === '-' && j + 2 < body.length) {
          ranges.push([from, body[j + 2]!])
          j += 2
        } else {
          ranges.push([from, from])
        }
      }
      atoms.push({ kind: 'class', negated, ranges })
      i = close
    } else {
      atoms.push({ kind: 'char', ch: c })
    }
  }
  return { kind: 'atoms', atoms, loneStar: atoms.length === 1 && atoms[0]!.kind === 'star' }
}

function atomMatches (atom: Atom, ch: string): boolean {
  switch (atom.kind) {
    case 'char': return atom.ch === ch
    case 'any': return true
    case 'star': return true
    case 'class': {
      let inside = false
      for (const [from, to] of atom.ranges) if (ch >= from && ch <= to) { inside = true; break }
      return inside !== atom.negated
    }
  }
}

/** One segment: two pointers, backtracking only to the last star (O(text × atoms)). */
function segmentMatches (segment: Extract<Segment, { kind: 'atoms' }>, text: string): boolean {
  if (segment.loneStar) return text.length > 0
  const atoms = segment.atoms
  let a = 0
  let t = 0
  let starAt = -1
  let resumeAt = 0
  while (t < text.length) {
    const atom = atoms[a]
    if (atom !== undefined && atom.kind === 'star') {
      starAt = a++
      resumeAt = t
    } else if (atom !== undefined && atomMatches(atom, text[t]!)) {
      a++
      t++
    } else if (starAt !== -1) {
      a = starAt + 1
      t = ++resumeAt
    } else {
      return false
    }
  }
  while (atoms[a]?.kind === 'star') a++
  return a === atoms.length
}

/** The same algorithm one level up: `**` is the star, a segment the character. */
function pathMatches (segments: Segment[], parts: string[]): boolean {
  let s = 0
  let p = 0
  let starAt = -1
  let resumeAt = 0
  while (p < parts.length) {
    const segment = segments[s]
    if (segment !== undefined && segment.kind === 'globstar') {
      starAt = s++
      resumeAt = p
    } else if (segment !== undefined && segmentMatches(segment, parts[p]!)) {
      s++
      p++
    } else if (starAt !== -1) {
      s = starAt + 1
      p = ++resumeAt
    } else {
      return false
    }
  }
  while (segments[s]?.kind === 'globstar') s++
  return s === segments.length
}

/** Compiles a path glob; throws GlobError naming what is not supported. */
export function compileGlob (pattern: string): (path: string) => boolean {
  if (pattern.length > MAX_GLOB_LENGTH) throw new GlobError(`expected a glob of at most ${MAX_GLOB_LENGTH} characters`)
  const alternatives = expandBraces(pattern).map((alt) => alt.split('/').map(parseSegment))
  if (alternatives.length === 1) {
    const only = alternatives[0]!
    return (path) => pathMatches(only, path.split('/'))
  }
  return (path) => {
    const parts = path.split('/')
    return alternatives.some((segments) => pathMatches(segments, parts))
  }
}

/** The problem with a glob, or undefined when it compiles. */
export function globProblem (pattern: string): string | undefined {
  try {
    compileGlob(pattern)
    return undefined
  } catch (err) {
    if (err instanceof GlobError) return err.message
    throw err
  }
}
