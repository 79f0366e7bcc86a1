import type { LabelSelector, Traits } from "./types.ts";
import { expandFor } from "./template.ts";
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
 * In an allow, a trait is a literal value (rbac/template.ts): a trait of `*`
 * opens nothing it would not otherwise (Teleport takes it as a wildcard).
 */
export function matchLabels(selector: LabelSelector | undefined, labels: Record<string, string>, traits: Traits, side: "allow" | "deny"): boolean {
  const entries = Object.entries(selector ?? {});
  if (entries.length === 0) return false;
  return entries.every(([key, raw]) => {
    const patterns = expandFor(side)(Array.isArray(raw) ? raw : [raw], traits);
    if (key === "*") return patterns.includes("*");
    const value = labels[key];
    return value !== undefined && patterns.some((p) => matchLabelValue(p, value));
  });
}
