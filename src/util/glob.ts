/**
 * Glob matching in linear time: `*` is any run of characters (or, with a
 * separator, any run within one segment); everything else is literal; the
 * whole value must match. No regular expression is built: `a*a*a*...b`
 * compiled to `.*` backtracks exponentially, and a caller who writes a
 * filter (the audit search) or a trait that becomes a pattern must not be
 * able to stall the process.
 *
 * How: the pattern's literal pieces between stars must appear in order, the
 * first at the start and the last at the end; taking each middle piece at
 * its leftmost place is always right, since a star takes anything. Each
 * piece is found with Knuth-Morris-Pratt, so the work is at most a small
 * constant times (pattern length + value length), whatever the input.
 */

import { asciiLower } from "./ascii.ts";

/** Comparisons made so far (tests read it to check the matcher stays linear). */
export const globSteps = { count: 0 };

export interface GlobOptions {
  /** Compare without case, ASCII letters only (Azure's operation names, host names). */
  caseInsensitive?: boolean;
  /** A character `*` does not match: "/" keeps a star within a path segment, "." within a DNS label. */
  separator?: string;
}

export function globMatch(pattern: string, value: string, opts: GlobOptions = {}): boolean {
  // ASCII letters only (util/ascii.ts): toLowerCase would make U+212A KELVIN SIGN a `k`.
  const p = opts.caseInsensitive ? asciiLower(pattern) : pattern;
  const v = opts.caseInsensitive ? asciiLower(value) : value;
  if (!opts.separator) return matchAny(p, v);
  // A star cannot cross the separator, and literal separators must line up: segment by segment.
  const ps = p.split(opts.separator);
  const vs = v.split(opts.separator);
  globSteps.count += ps.length + vs.length;
  if (ps.length !== vs.length) return false;
  return ps.every((piece, i) => matchAny(piece, vs[i]));
}

/** `*` matches any run of characters, separators included. */
function matchAny(pattern: string, value: string): boolean {
  const pieces = pattern.split("*");
  globSteps.count += pieces.length;
  if (pieces.length === 1) {
    globSteps.count += value.length;
    return pattern === value;
  }
  const first = pieces[0];
  const last = pieces[pieces.length - 1];
  if (first.length + last.length > value.length) return false;
  if (!startsAt(value, first, 0) || !startsAt(value, last, value.length - last.length)) return false;
  let from = first.length;
  const end = value.length - last.length;
  for (const piece of pieces.slice(1, -1)) {
    if (piece === "") continue;
    const at = indexOfWithin(value, piece, from, end);
    if (at < 0) return false;
    from = at + piece.length;
  }
  return true;
}

function startsAt(value: string, piece: string, at: number): boolean {
  for (let i = 0; i < piece.length; i++) {
    globSteps.count++;
    if (value.charCodeAt(at + i) !== piece.charCodeAt(i)) return false;
  }
  return true;
}

/** Leftmost index of `piece` in value[from, end), or -1; Knuth-Morris-Pratt, O(piece + (end - from)). */
function indexOfWithin(value: string, piece: string, from: number, end: number): number {
  const fail = new Int32Array(piece.length);
  for (let i = 1, k = 0; i < piece.length; i++) {
    while (k > 0 && piece.charCodeAt(i) !== piece.charCodeAt(k)) {
      k = fail[k - 1];
      globSteps.count++;
    }
    globSteps.count++;
    if (piece.charCodeAt(i) === piece.charCodeAt(k)) k++;
    fail[i] = k;
  }
  for (let i = from, k = 0; i < end; i++) {
    while (k > 0 && value.charCodeAt(i) !== piece.charCodeAt(k)) {
      k = fail[k - 1];
      globSteps.count++;
    }
    globSteps.count++;
    if (value.charCodeAt(i) === piece.charCodeAt(k)) k++;
    if (k === piece.length) return i - piece.length + 1;
  }
  return -1;
}
