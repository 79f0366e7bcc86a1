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

/**
 * Expands `prefix{{internal.name}}suffix` into one value per trait value; an
 * empty or missing trait expands to nothing. A literal stays itself.
 */
export function expandTemplate(value: string, traits: Traits): string[] {
  const m = [...value.matchAll(TEMPLATE)][0];
  if (!m) return [value];
  const v = VARIABLE.exec(m[1]);
  if (!v) return [];
  const name = v[2] ?? v[4];
  const prefix = value.slice(0, m.index);
  const suffix = value.slice((m.index ?? 0) + m[0].length);
  return (traits[name] ?? []).filter((t) => t !== "").map((t) => prefix + t + suffix);
}

export function expandAll(values: string[] | undefined, traits: Traits): string[] {
  return (values ?? []).flatMap((v) => expandTemplate(v, traits));
}
