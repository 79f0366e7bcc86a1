import { AzgateError } from "../errors/index.ts";

/** Deeper than any request azgate takes; deeper input is refused before it is parsed. */
export const MAX_JSON_DEPTH = 32;

/** The deepest nesting of arrays and objects in `text` (strings skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) max = Math.max(max, ++depth);
    else if (ch === 0x7d || ch === 0x5d) depth--;
  }
  return max;
}

/** A request body that must be a JSON object: anything else, or anything too deep, is the caller's error (400). */
export function parseJsonObject<T>(text: string): T {
  if (jsonDepth(text) > MAX_JSON_DEPTH) throw new AzgateError("bad_parameter", `request body is nested deeper than ${MAX_JSON_DEPTH} levels`);
  try {
    const v = JSON.parse(text || "{}");
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error();
    return v as T;
  } catch {
    throw new AzgateError("bad_parameter", "request body must be a JSON object");
  }
}
