/**
 * The regular expressions azgate's files hold (`^...$` in role rules and
 * labels, connectors' mappings, access rules' `regexp.match`, ticket
 * patterns, notification filters): RE2 syntax, as Teleport's Go regexp
 * reads them, matched in time linear in the value (re2js, a port of RE2).
 *
 * Why not RegExp: it backtracks. `^(a+)+$` against thirty `a`s and a `b`
 * takes seconds, and some values are the caller's (a ticket, a path, a
 * claim): one request could stall every authorisation. What RE2 has not, back-references
 * and look-around, is refused when a file is loaded, as Teleport refuses it.
 *
 * Linear is not free: RE2 simulates the pattern's program over the value,
 * so a match costs up to (instructions x value length), and a counted
 * repeat multiplies instructions (`.{999}` is a thousand). A pattern past
 * MAX_INSTRUCTIONS is refused as one RE2 cannot read, and a trait never
 * writes one (rbac/template.ts): the patterns that run are the files'.
 *
 * Case: RE2 folds U+212A KELVIN SIGN with `k` and U+017F LONG S with `s`,
 * which ARM's ordinal comparison keeps apart (util/ascii.ts). In the value
 * and in the pattern's text both become noncharacters (U+FDD0, U+FDD1) that
 * fold with nothing: a KELVIN SIGN matches a KELVIN SIGN, never a `k`, with
 * case or without, as globs and RegExp's `i` did. (Written as an escape,
 * `\x{212A}`, in a pattern with `(?i)`, it would still fold: an
 * administrator's choice. `\p{Lu}` no longer sees the two.)
 */
import { RE2JS } from "re2js";

export interface Pattern {
  /** True when the pattern matches the value (anywhere: a `^...$` pattern, the whole of it). */
  test(value: string): boolean;
}

/**
 * The most instructions a pattern may compile to, with case or without (either may be the larger): about twenty
 * times what a rule needs (a path pattern with a few alternatives is a hundred). A worst case at the bound (a chain
 * of `.*a`) takes about 0.3 s on an 8 KB path here; a rule's usual pattern, well under a millisecond.
 */
export const MAX_INSTRUCTIONS = 2_000;

/** The longest pattern compiled at all: checking one costs about 10 ms a kilobyte here, and no rule needs more. */
export const MAX_PATTERN_CHARS = 4_096;

const compiled = new Map<string, Pattern | null>();
/** Patterns come from files and traits: a bounded number, but bounded here too. */
const MAX_COMPILED = 2000;

/** The pattern compiled, or null when it is not an RE2 regular expression. */
export function compilePattern(source: string, opts: { caseInsensitive?: boolean } = {}): Pattern | null {
  const key = `${opts.caseInsensitive ? "i" : "-"}${source}`;
  let pattern = compiled.get(key);
  if (pattern === undefined) {
    pattern = compile(source, opts.caseInsensitive === true);
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    compiled.set(key, pattern);
  }
  return pattern;
}

/**
 * A value written as a regular expression: `^...$`, the files' way (Teleport's);
 * anything else is a glob or a literal. The one test every rule and loader uses.
 */
export function isRegexValue(value: string): boolean {
  return value.startsWith("^") && value.endsWith("$");
}

/**
 * A value written as a regular expression (`^...$`, the files' way) that RE2
 * cannot read. Files are checked as they load, so only a trait can make one;
 * a deny rule takes it as matching (fail closed), an allow as matching nothing.
 */
export function isUnreadableRegex(value: string): boolean {
  return isRegexValue(value) && (compilePattern(value) === null || compilePattern(value, { caseInsensitive: true }) === null);
}

/** Why `source` is not an RE2 regular expression, or null when it is. */
export function patternProblem(source: string): string | null {
  if (source.length > MAX_PATTERN_CHARS) return `longer than ${MAX_PATTERN_CHARS} characters`;
  // Both ways a rule may run it: a pattern that loads must compile wherever it is used (with case, or without).
  let size = 0;
  for (const flags of [0, RE2JS.CASE_INSENSITIVE]) {
    try {
      size = Math.max(size, RE2JS.compile(unfolded(source), flags).re2().numberOfInstructions());
    } catch (e) {
      return (e as Error).message;
    }
  }
  return size > MAX_INSTRUCTIONS ? `too large: ${size} instructions, at most ${MAX_INSTRUCTIONS} (a counted repeat such as {100} multiplies what it repeats)` : null;
}

/**
 * What a file is told of a pattern RE2 cannot read, in RE2's words (which name
 * the construct), the pattern named by its start when long (the message goes
 * to a terminal and to the proxy's log); null when it reads.
 */
export function invalidRegexMessage(source: string): string | null {
  const problem = patternProblem(source);
  if (!problem) return null;
  return `invalid regular expression ${source.length > 240 ? `${source.slice(0, 201)}... (${source.length} characters)` : source} (RE2 syntax, as Teleport's: ${problem})`;
}

/** RE2's metacharacters escaped (and `-`, which a class would read as a range): `text` matches itself only. */
export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
}

function compile(source: string, caseInsensitive: boolean): Pattern | null {
  if (source.length > MAX_PATTERN_CHARS) return null;
  let re: RE2JS;
  try {
    re = RE2JS.compile(unfolded(source), caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
  } catch {
    return null;
  }
  return re.re2().numberOfInstructions() > MAX_INSTRUCTIONS ? null : new Re2Pattern(re);
}

export class Re2Pattern implements Pattern {
  constructor(readonly re: RE2JS) {}

  test(value: string): boolean {
    // matcher().find(), not RE2JS's test(): that runs RE2's lazy DFA, whose state cache each compiled pattern
    // keeps, up to 8 MB, growing with the values it meets (a trait-made pattern and a caller's paths could grow
    // one per trait value). find() asks for the match's place, so RE2 takes its one-pass, bit-state or NFA
    // matchers: linear time too, memory bounded by pattern and value, nothing kept (as fast as test() here).
    return this.re.matcher(unfolded(value)).find();
  }
}

/** The text with the two non-ASCII letters RE2 would fold onto ASCII ones replaced by noncharacters, which fold with nothing. */
const unfolded = (text: string): string => (/[\u212a\u017f]/.test(text) ? text.replace(/\u212a/g, "\ufdd0").replace(/\u017f/g, "\ufdd1") : text);
