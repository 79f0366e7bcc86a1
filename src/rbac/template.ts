import type { Traits } from "./types.ts";

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

/** Deny rules take traits as they are: wider is safer there. */
const asIs: Fill = (t) => t;

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
  if (where.regex) return t.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&");
  if (t.includes("*")) return null;
  if (where.whole) return /^\^|\$$/.test(t) ? null : t;
  return t.includes("/") ? null : t;
};

/**
 * Expands `prefix{{internal.name}}suffix` into one value per trait value; an
 * empty or missing trait expands to nothing. A literal stays itself.
 */
export function expandTemplate(value: string, traits: Traits, fill: Fill = asIs): string[] {
  const m = [...value.matchAll(TEMPLATE)][0];
  if (!m) return [value];
  const v = VARIABLE.exec(m[1]);
  if (!v) return [];
  const name = v[2] ?? v[4];
  const prefix = value.slice(0, m.index);
  const suffix = value.slice((m.index ?? 0) + m[0].length);
  const where = { whole: prefix === "" && suffix === "", regex: value.startsWith("^") && value.endsWith("$") };
  return (traits[name] ?? []).filter((t) => t !== "").flatMap((t) => {
    const filled = fill(t, where);
    return filled === null ? [] : [prefix + filled + suffix];
  });
}

/** Values as deny rules read them: traits as they are. */
export function expandAll(values: string[] | undefined, traits: Traits): string[] {
  return (values ?? []).flatMap((v) => expandTemplate(v, traits));
}

/** Values as allow rules read them: every trait a literal (asLiteral). */
export function expandAllow(values: string[] | undefined, traits: Traits): string[] {
  return (values ?? []).flatMap((v) => expandTemplate(v, traits, asLiteral));
}

/** The expansion a side of a rule uses: the one choice of how traits are read. */
export const expandFor = (side: "allow" | "deny") => (side === "allow" ? expandAllow : expandAll);
