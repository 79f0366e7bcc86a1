import type { LabelSelector, Traits } from "./types.ts";
import { expandFor } from "./template.ts";
import { globMatch } from "../util/glob.ts";
import { asciiLower } from "../util/ascii.ts";
import { compilePattern, isRegexValue, isUnreadableRegex } from "../util/regex.ts";

/** `*` matches anything; `^...$` is a regular expression (RE2, linear: util/regex.ts); `*` inside a value is a glob; else exact. */
export function matchLabelValue(pattern: string, value: string, opts: { caseInsensitive?: boolean } = {}): boolean {
  if (pattern === "*") return true;
  // The pattern as written, case or not an option of the match: lowering a regular expression would turn \D into \d.
  if (isRegexValue(pattern)) return compilePattern(pattern, opts)?.test(value) ?? false;
  // Linear in time (util/glob.ts): a trait can fill the pattern, and stars compiled to a regular expression backtrack.
  if (pattern.includes("*")) return globMatch(pattern, value, opts);
  return opts.caseInsensitive ? asciiLower(pattern) === asciiLower(value) : pattern === value;
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
    // A trait-made regular expression RE2 cannot read matches in a deny (fail closed), nothing in an allow (util/regex.ts).
    return value !== undefined && patterns.some((p) => (side === "deny" && isUnreadableRegex(p)) || matchLabelValue(p, value));
  });
}
