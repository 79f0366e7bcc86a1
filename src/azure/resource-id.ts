/**
 * Azure managed identities by their ARM resource ID, in one grammar:
 *
 *   /subscriptions/{GUID}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}
 *
 * Every place an identity enters azgate (role files, user traits, SSO
 * claims, access requests, apps login, locks, the agent) parses it here, and
 * every comparison is of `canonical`. Anything else is refused, not cleaned:
 * an ID with a query string, a fragment, percent-encoding, a dot or empty
 * segment or a trailing slash is one that ARM may read as a *different*
 * identity than azgate's rules see (`.../teleport-contributor?x=` is the
 * contributor to ARM, and was a stranger to locks and deny rules).
 *
 * ARM's naming rules (resource-name-rules): a resource group is 1-90
 * letters, digits, '_', '-', '.', '(' and ')', not ending in '.'; a
 * user-assigned identity is 3-128 letters, digits, '-' and '_', starting
 * with a letter or digit. ARM allows non-ASCII letters in group names;
 * azgate does not (case folding and look-alikes would make one identity many
 * strings), so such an identity is refused, never guessed at. Names are
 * case-insensitive in Azure, and so are the keyword segments.
 */
import { AzgateError } from "../errors/index.ts";
import { isRegexValue } from "../util/regex.ts";

export interface IdentityResourceId {
  /** The subscription GUID, lower-case. */
  subscription: string;
  /** As written (Azure compares it ignoring case). */
  resourceGroup: string;
  /** As written (Azure compares it ignoring case). */
  name: string;
  /** The ID in Azure's spelling: keyword, provider and type segments as Azure writes them, the GUID lower-case, group and name as written. What azgate stores, shows and sends. */
  id: string;
  /** The one form every comparison uses: `id` with the group and the name lower-case. */
  canonical: string;
}

const SHAPE = "/subscriptions/{GUID}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}";
/** The fixed segments (index in the path: Azure's spelling), matched ignoring case. */
const KEYWORDS: [number, string][] = [[0, "subscriptions"], [2, "resourceGroups"], [4, "providers"], [5, "Microsoft.ManagedIdentity"], [6, "userAssignedIdentities"]];
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const GROUP = /^[A-Za-z0-9_.()-]{1,90}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{2,127}$/;
/** Longer than any valid ID (about 360 characters): refused before any work. */
const MAX_LENGTH = 512;

const segmentCount = (n: number) => (n === 1 ? "1 segment" : `${n} segments`);

/** The input, quoted (control characters escaped) and, past any valid ID's length, shortened, for a message. */
const shown = (s: string) => JSON.stringify(s.length > MAX_LENGTH ? `${s.slice(0, 100)}...` : s);

/** What no identity ID, name or pattern may contain, whatever else it is; null when none of it. */
function forbiddenPart(value: string): string | null {
  if (/[\x00-\x1f\x7f]/.test(value)) return "has a control character";
  if (/\s/.test(value)) return "has white space";
  if (value.includes("?")) return "has a query string ('?')";
  if (value.includes("#")) return "has a fragment ('#')";
  if (value.includes("%")) return "has percent-encoding ('%'); write the ID as Azure shows it";
  if (value.includes("\\")) return "has a backslash";
  return null;
}

/** Problems of the path shape shared by IDs and patterns: leading slash, no empty or dot segment, no trailing slash. */
function pathProblem(value: string): string | null {
  if (!value.startsWith("/")) return "does not start with /subscriptions/";
  if (value.length > 1 && value.endsWith("/")) return "ends with '/'";
  const segments = value.slice(1).split("/");
  if (segments.some((s) => s === "")) return "has an empty segment ('//')";
  if (segments.some((s) => s === "." || s === "..")) return "has a dot segment ('.' or '..')";
  return null;
}

/** Why `value` is not a user-assigned identity's resource ID, naming the part; null when it is one. */
export function identityIdProblem(value: string): string | null {
  return typeof value === "string" ? analyse(value).problem : "is not text";
}

function analyse(value: string): { problem: string; parsed?: undefined } | { problem: null; parsed: IdentityResourceId } {
  if (value.length > MAX_LENGTH) return { problem: `is longer than ${MAX_LENGTH} characters` };
  const bad = forbiddenPart(value) ?? pathProblem(value);
  if (bad) return { problem: bad };
  const segments = value.slice(1).split("/");
  if (segments.length !== 8) return { problem: `has ${segmentCount(segments.length)}, not the 8 of ${SHAPE}` };
  for (const [i, word] of KEYWORDS) {
    if (segments[i].toLowerCase() !== word.toLowerCase()) return { problem: `has ${shown(segments[i])} where ${SHAPE} has "${word}"` };
  }
  const [, subscription, , resourceGroup, , , , name] = segments;
  if (!GUID.test(subscription)) return { problem: `has the subscription ${shown(subscription)}, which is not a GUID` };
  if (!GROUP.test(resourceGroup) || resourceGroup.endsWith(".")) {
    return { problem: `has the resource group ${shown(resourceGroup)}: a group is 1-90 letters, digits, '_', '-', '.', '(' and ')', not ending in '.'` };
  }
  if (!NAME.test(name)) return { problem: `has the identity name ${shown(name)}: ${NAME_RULE}` };
  const sub = subscription.toLowerCase();
  const id = `/subscriptions/${sub}/resourceGroups/${resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
  const canonical = `/subscriptions/${sub}/resourceGroups/${resourceGroup.toLowerCase()}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name.toLowerCase()}`;
  return { problem: null, parsed: { subscription: sub, resourceGroup, name, id, canonical } };
}

const NAME_RULE = "an identity name is 3-128 letters, digits, '-' and '_', starting with a letter or digit";

/** Parses a user-assigned managed identity's ARM resource ID; null when it is not one (identityIdProblem says why). */
export function parseIdentityId(value: string): IdentityResourceId | null {
  return typeof value === "string" ? (analyse(value).parsed ?? null) : null;
}

/**
 * Parses an identity ID where one enters azgate, or refuses it with
 * `bad_parameter` naming the bad part (`what` says where it came from).
 */
export function requireIdentityId(value: unknown, what = "Azure identity"): IdentityResourceId {
  if (typeof value !== "string" || value === "") throw new AzgateError("bad_parameter", `${what} is required: ${SHAPE}`);
  const r = analyse(value);
  if (r.problem !== null) throw new AzgateError("bad_parameter", refusal(what, value, r.problem));
  return r.parsed;
}

/** Why `value` is refused as an identity ID, as a whole sentence naming the value and the bad part; null when it is one. */
export function identityRefusal(value: string, what = "Azure identity"): string | null {
  const problem = identityIdProblem(value);
  return problem === null ? null : refusal(what, value, problem);
}

const refusal = (what: string, value: string, problem: string) => `${what} ${shown(value)} ${problem}; an Azure identity is named ${SHAPE}`;

/**
 * A refused identity as an audit event may record it: control characters
 * (a NUL a PostgreSQL text column refuses, above all) replaced, and bounded.
 */
export function refusedIdentityForAudit(value: unknown): string {
  const s = typeof value === "string" ? value : String(value ?? "");
  return s.slice(0, MAX_LENGTH).replace(/[\x00-\x1f\x7f]/g, "\uFFFD");
}

/** The comparison form of an identity ID; null when it is not one (and so matches nothing). */
export function identityKey(value: string): string | null {
  return parseIdentityId(value)?.canonical ?? null;
}

/** True when both are identity IDs that Azure reads as the same identity. Anything unparsed is the same as nothing. */
export function sameIdentity(a: string, b: string): boolean {
  const ka = identityKey(a);
  return ka !== null && ka === identityKey(b);
}

/** The identity IDs among `values`, once each (by canonical form, the first spelling kept, in Azure's); anything else left out. */
export function distinctIdentities(values: string[]): string[] {
  const out = new Map<string, string>();
  for (const p of values.map(parseIdentityId)) if (p && !out.has(p.canonical)) out.set(p.canonical, p.id);
  return [...out.values()];
}

/** True when `value` is an identity's name alone (`teleport-reader`): what `--azure-identity NAME` and a lock may give. */
export function isIdentityName(value: string): boolean {
  return typeof value === "string" && NAME.test(value);
}

/** Why `value` is not an identity name; null when it is one. */
export function identityNameProblem(value: string): string | null {
  return isIdentityName(value) ? null : `${shown(value)} is not an identity name (${NAME_RULE})`;
}

/** The short name of an identity ("teleport-reader"), or the input when it is not an identity ID. */
export function identityName(id: string): string {
  return parseIdentityId(id)?.name ?? id;
}

/**
 * The identity's ARM path, from its parsed segments, each one encoded: what
 * the agent appends to its ARM host (a raw string never becomes a URL).
 */
export function identityArmPath(p: IdentityResourceId): string {
  const e = encodeURIComponent;
  return `/subscriptions/${e(p.subscription)}/resourceGroups/${e(p.resourceGroup)}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${e(p.name)}`;
}

// ---- patterns and templates in role files ----------------------------------

const TEMPLATE = /\{\{[^{}]*\}\}/g;
const PATTERN_SEGMENT = /^[A-Za-z0-9_.()*-]+$/;

/**
 * Why a role's identity *pattern* (request and review_requests:
 * `*` within one segment, `^...$` a regular expression, `{{...}}` a trait)
 * can never name an identity; null when it may. A literal must be an
 * identity ID; a glob must have the ID's segments (a `*` never spans a `/`,
 * so any other shape matches nothing), its fixed ones spelled as Azure's
 * (ignoring case) unless starred; a template's literal parts are checked
 * (what it expands to is checked where it is used).
 */
export function identityPatternProblem(pattern: string): string | null {
  if (pattern === "*") return null;
  if (isRegexValue(pattern)) return null; // matched against canonical IDs only, which hold none of ? # %
  if (pattern.includes("{{")) return templatedIdentityProblem(pattern);
  if (!pattern.includes("*")) return identityIdProblem(pattern);
  const bad = forbiddenPart(pattern) ?? pathProblem(pattern);
  if (bad) return bad;
  const segments = pattern.slice(1).split("/");
  if (segments.length !== 8) return `has ${segmentCount(segments.length)}; '*' stays within one segment, so the pattern needs the 8 of ${SHAPE}`;
  for (const [i, word] of KEYWORDS) {
    if (!segments[i].includes("*") && segments[i].toLowerCase() !== word.toLowerCase()) return `has ${shown(segments[i])} where ${SHAPE} has "${word}"`;
  }
  const odd = segments.find((s) => !PATTERN_SEGMENT.test(s));
  return odd === undefined ? null : `has the segment ${shown(odd)}, with a character no identity ID has`;
}

/**
 * For a value with a `{{...}}` template (roles' azure_identities): the
 * literal text around the template may hold nothing an identity ID cannot
 * (no ? # %, white space, empty or dot segment, trailing slash). The
 * expansion is checked where it is used (rbac/engine.ts).
 */
export function templatedIdentityProblem(value: string): string | null {
  // The template stands for one non-empty piece: what it expands to is checked at use.
  const literal = value.replace(TEMPLATE, "x");
  const bad = forbiddenPart(literal);
  if (bad) return bad;
  if (literal.length > 1 && literal.endsWith("/")) return "ends with '/'";
  if (literal.includes("//")) return "has an empty segment ('//')";
  if (literal.split("/").some((s) => s === "." || s === "..")) return "has a dot segment ('.' or '..')";
  return null;
}

/**
 * For a literal in a role's allow/deny azure_identities: an identity ID, or a
 * template whose literal parts could be one. Null when fine.
 */
export function roleIdentityProblem(value: string): string | null {
  return value.includes("{{") ? templatedIdentityProblem(value) : identityIdProblem(value);
}
