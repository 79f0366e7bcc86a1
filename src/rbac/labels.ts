import type { LabelSelector, Traits } from "./types.ts";
import { expandAll } from "./template.ts";
import { globMatch } from "../util/glob.ts";

/** `*` matches anything; `^...$` is a regular expression; `*` inside a value is a glob; else exact. */
export function matchLabelValue(pattern: string, value: string): boolean {
  if (pattern === "*") return true;
  if (pattern.startsWith("^") && pattern.endsWith("$")) return compileRegex(pattern)?.test(value) ?? false;
  // Linear in time (util/glob.ts): a trait can fill the pattern, and stars compiled to a regular expression backtrack.
  if (pattern.includes("*")) return globMatch(pattern, value);
  return pattern === value;
}

export function compileRegex(pattern: string): RegExp | null {
  try {
    return new RegExp(pattern);
  } catch {
    return null;
  }
}

/**
 * True when every key of the selector is satisfied by the labels. `'*': '*'`
 * matches every app, with or without labels. An empty selector matches nothing.
 */
export function matchLabels(selector: LabelSelector | undefined, labels: Record<string, string>, traits: Traits): boolean {
  const entries = Object.entries(selector ?? {});
  if (entries.length === 0) return false;
  return entries.every(([key, raw]) => {
    const patterns = expandAll(Array.isArray(raw) ? raw : [raw], traits);
    if (key === "*") return patterns.includes("*");
    const value = labels[key];
    return value !== undefined && patterns.some((p) => matchLabelValue(p, value));
  });
}
