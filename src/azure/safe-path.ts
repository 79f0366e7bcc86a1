/**
 * Reading a request's path as a server would, once: its segments decoded, or
 * a refusal (UnsafePath) where a server could read it otherwise than this
 * code does. The one reader of paths: the request's own (operation.ts
 * canonicalRequest) and a path named in a header (storage-hosts.ts).
 */
import { MAX_URL_CHARS } from "../tunnel/http.ts";

/** A path the mapper will not interpret: refused wherever a policy applies. */
export class UnsafePath extends Error {}

/** Percent-encodings of characters RFC 3986 calls unreserved: a server decodes them to the character itself. */
const ENCODED_UNRESERVED = /%(3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|5f|7e)/i;

/** Segments of a path, decoded; throws UnsafePath on anything ambiguous. */
export function safeSegments(rawPath: string): string[] {
  // No request through the tunnel is longer (tunnel/http.ts); a longer path only makes the policy's work grow.
  if (rawPath.length > MAX_URL_CHARS) throw new UnsafePath(`the path is longer than ${MAX_URL_CHARS} characters, the most a request through azgate may have`);
  if (!rawPath.startsWith("/")) throw new UnsafePath("the path must start with /");
  if (rawPath.includes("\\")) throw new UnsafePath("backslashes are not allowed in the path");
  if (/%(2f|5c|2e|00)/i.test(rawPath)) throw new UnsafePath("encoded separators, dots or NUL (%2F, %5C, %2E, %00) are not allowed in the path");
  const unreserved = ENCODED_UNRESERVED.exec(rawPath);
  if (unreserved) throw new UnsafePath(`percent-encoded letters, digits, - _ or ~ are not allowed in the path (${unreserved[0]} is "${decodeURIComponent(unreserved[0])}", and Azure reads it so)`);
  if (/%25[0-9a-f]{2}/i.test(rawPath)) throw new UnsafePath("an encoded percent sign before hex digits (%25XX, an encoding encoded twice) is not allowed in the path");
  const raw = rawPath === "/" ? [] : rawPath.slice(1).replace(/\/$/, "").split("/");
  return raw.map((s) => {
    if (s === "") throw new UnsafePath("empty path segments (//) are not allowed");
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      throw new UnsafePath("malformed percent-encoding in the path");
    }
    if (d === "." || d === "..") throw new UnsafePath("dot segments are not allowed in the path");
    if (/[\x00-\x1f\x7f]/.test(d)) throw new UnsafePath("control characters are not allowed in the path");
    if (/[.\s]$/.test(d)) throw new UnsafePath(`a path segment may not end in a dot or whitespace ("${d}")`);
    return d;
  });
}
