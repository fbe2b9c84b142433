/**
 * Header names and values a user sets in config or through the admin API
 * (abort.headers, a static fallback's headers, an auth realm, webhook
 * headers). They are written into responses or requests as they are, so
 * they must be well-formed (RFC 9110 §5.1 token names, §5.5 field values:
 * no CR, LF or NUL, so no response splitting) and must never carry framing
 * or hop-by-hop fields: a `Content-Length` or `Transfer-Encoding` of the
 * user's beside the one faultline computes would give a response two
 * framings, a smuggling shape for any proxy in front. Names are compared
 * and stored lowercased, so case cannot sneak a second copy in.
 */
import { z } from 'zod'

/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/** RFC 9110 §5.5 field-value: visible characters and obs-text, inner spaces and tabs; no CTLs, no edge whitespace. */
const FIELD_VALUE = /^(?:[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?$/

/** Framing and hop-by-hop fields (RFC 9110 §7.6.1, §6.4.1, RFC 9112 §6.1): faultline owns them. */
export const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'host'
])

export const headerName = z.string().regex(TOKEN, { error: 'expected a header name made of RFC 9110 token characters (letters, digits, !#$%&\'*+-.^_`|~)' })

export const headerValue = z.string().regex(FIELD_VALUE, { error: 'expected a header value without CR, LF, NUL or other control characters, and without leading or trailing whitespace' })

/** Text placed inside a quoted-string of a header (e.g. an auth realm): a field value without quotes or backslashes. */
export const quotedHeaderText = headerValue.regex(/^[^"\\]*$/, { error: 'expected text without quotes or backslashes' })

/** A map of user-set headers: valid names and values, no framing or hop-by-hop names in any case, no duplicates by case; names lowercased. */
export const userHeaders = z.record(headerName, headerValue).superRefine((headers, ctx) => {
  const seen = new Map<string, string>()
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase()
    if (RESERVED_HEADERS.has(lower)) {
      ctx.addIssue({ code: 'custom', path: [name], message: `expected no ${lower} header: framing and hop-by-hop headers are set by faultline, never from config` })
    }
    const first = seen.get(lower)
    if (first !== undefined) ctx.addIssue({ code: 'custom', path: [name], message: `expected each header once, "${name}" repeats "${first}"` })
    else seen.set(lower, name)
  }
}).transform((headers) => Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value])))
