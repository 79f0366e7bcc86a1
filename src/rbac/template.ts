import type { Traits } from "./types.ts";
import { escapeRegex, isRegexValue } from "../util/regex.ts";

const TEMPLATE = /\{\{\s*([^{}]*?)\s*\}\}/g;
const VARIABLE = /^(internal|external)\.([A-Za-z0-9_\-:.\/]+)$|^(internal|external)\["([^"]+)"\]$/;

/** Null when `value` is a valid literal or template, else why not. */
export function templateProblem(value: string): string | null {
  const matches = [...value.matchAll(TEMPLATE)];
  if (matches.length > 1) return "only one {{...}} template per value is supported";
  if (matches.length === 0) return value.includes("{{") || value.includes("}}") ? "unbalanced {{ }} in value" : null;
  return VARIABLE.test(matches[0][1]) ? null : `unsupported template "${matches[0][0]}": use {{internal.NAME}} or {{external.NAME}}`;
}

/** How a trait value fills a template: the text to put in its place, or null to leave this value out. */
type Fill = (trait: string, where: { whole: boolean; regex: boolean }) => string | null;

/**
 * What a deny rule's value becomes when a trait would make it a regular
 * expression: one RE2 cannot read (a look-ahead), which deny rules take as
 * matching (util/regex.ts isUnreadableRegex) and allow rules as matching
 * nothing. Its text says why, where `roles explain` shows it.
 */
export const TRAIT_REGEX = "^(?=a trait may not write a regular expression)$";


/**
 * Deny rules take traits as they are, wider being safer there, but a trait
 * never writes a regular expression: running one costs what its writer
 * chooses (util/regex.ts), and an identity provider's attribute must not
 * stall every authorisation.
 * - inside a regular expression (`^...$`) it is escaped, as in allow rules;
 * - a value it makes a regular expression (`^...$` as the whole value, or a
 *   `^` or `$` it brings) becomes TRAIT_REGEX: the rule applies (fail closed).
 */
const asWritten: Fill = (t, where) => {
  if (where.regex) return escapeRegex(t);
  return t;
};

/**
 * Allow rules read a trait as a literal, so a trait (from an identity
 * provider, where a user may be able to edit an attribute) can never widen a
 * rule into a pattern:
 * - inside a regular expression (`^...$`) it is escaped;
 * - beside other text in a pattern it must be one segment: no `/` (which
 *   would reach other depths of a path or scope) and no `*`;
 * - as the whole value it must not be a pattern itself (`*`, or `^...$`).
 */
const asLiteral: Fill = (t, where) => {
  if (where.regex) return escapeRegex(t);
  if (t.includes("*")) return null;
  if (where.whole) return /^\^|\$$/.test(t) ? null : t;
  return t.includes("/") ? null : t;
};

/**
 * Expands `prefix{{internal.name}}suffix` into one value per trait value; an
 * empty or missing trait expands to nothing. A literal stays itself.
 */
export function expandTemplate(value: string, traits: Traits, fill: Fill = asWritten): string[] {
  const m = [...value.matchAll(TEMPLATE)][0];
  if (!m) return [value];
  const v = VARIABLE.exec(m[1]);
  if (!v) return [];
  const name = v[2] ?? v[4];
  const prefix = value.slice(0, m.index);
  const suffix = value.slice((m.index ?? 0) + m[0].length);
  const where = { whole: prefix === "" && suffix === "", regex: isRegexValue(value) };
  return (traits[name] ?? []).filter((t) => t !== "").flatMap((t) => {
    const filled = fill(t, where);
    if (filled === null) return [];
    const made = prefix + filled + suffix;
    // A trait that made the value a regular expression (a `^` or `$` it brought): an allow takes nothing, a deny applies.
    if (!where.regex && isRegexValue(made)) return fill === asLiteral ? [] : [TRAIT_REGEX];
    return [made];
  });
}

/** Values as deny rules read them: traits as they are, except that none writes a regular expression (asWritten). */
export function expandAll(values: string[] | undefined, traits: Traits): string[] {
  return (values ?? []).flatMap((v) => expandTemplate(v, traits));
}

/** Values as allow rules read them: every trait a literal (asLiteral). */
export function expandAllow(values: string[] | undefined, traits: Traits): string[] {
  return (values ?? []).flatMap((v) => expandTemplate(v, traits, asLiteral));
}

/** The expansion a side of a rule uses: the one choice of how traits are read. */
export const expandFor = (side: "allow" | "deny") => (side === "allow" ? expandAllow : expandAll);
