/**
 * Case folding as Azure's names compare: ASCII letters only. JavaScript's
 * toLowerCase folds other characters onto ASCII ones too (U+212A KELVIN SIGN
 * to `k`), so `\u212Aube-dev` would compare equal to `kube-dev`, which ARM
 * (an ordinal comparison) keeps apart: an allow scoped to one group would
 * cover another. Every comparison of paths, scopes and hosts without case
 * lowers ASCII letters only; a regular expression's `i` flag without `u`
 * already does (ECMAScript's Canonicalize never maps a non-ASCII character
 * to an ASCII one).
 */

/** The string with A-Z lowered and nothing else changed. */
export const asciiLower = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

/** The first character outside ASCII, or null. */
export const firstNonAscii = (s: string): string | null => /[^\x00-\x7f]/u.exec(s)?.[0] ?? null;
