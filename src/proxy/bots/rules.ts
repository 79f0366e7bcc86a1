/**
 * What every join method shares: a rule matches a run when each field it
 * names equals what the CI's token says (exactly: no patterns, one canonical
 * reading of each claim, a missing claim matches nothing); the first rule
 * that matches wins, and when none does the refusal says where the closest
 * rule differs. Claims are read as strings only (GitLab's "true"/"false"
 * included), bounded, and never as anything to evaluate.
 */
import type { JWTPayload } from "jose";
import { AzgateError } from "../../errors/index.ts";
import type { JoinMethod } from "../../resources/join-token.ts";

export type Claims = JWTPayload & Record<string, unknown>;

/** A claim as text, or undefined when it is missing or not a string (or number); the token's 16 KiB bounds it. */
export function claim(claims: Record<string, unknown>, name: string): string | undefined {
  const v = claims[name];
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return typeof v === "string" ? v : undefined;
}

/**
 * Characters no name of a CI's is read with: controls (C0, DEL, C1), format
 * characters (zero-width, bidi overrides and isolates, the BOM) and line and
 * paragraph separators. \`refs/heads/main\u200b\` prints as main but is
 * another branch: a claim holding one is refused wherever it is matched or
 * recorded (fail closed), never cleaned into a name it is not.
 */
const UNREADABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const UNREADABLE_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

/** The first unreadable character of `v` as U+XXXX, or null. */
export function unreadable(v: string): string | null {
  const m = UNREADABLE.exec(v);
  return m ? `U+${m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}` : null;
}

/** A value with its unreadable characters shown as \\u{XXXX}, for a refusal's audit event. */
export const shownEscaped = (v: string) => v.replace(UNREADABLE_ALL, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);

function refuseUnreadable(name: string, v: string): void {
  const c = unreadable(v);
  if (c) throw new AzgateError("join_denied", `the CI token's ${name} holds an invisible or control character (${c}); azgate does not read it as any name`);
}

/** What one method knows: its issuer, its audience, how to read a run's fields and facts, and its own extra rule. */
export interface MethodImpl<S extends { allow: Record<string, unknown>[]; audience?: string }> {
  method: JoinMethod;
  issuer(spec: S): string;
  /** The audience when the join token names none (the cluster's, or what the CI cannot change). */
  defaultAudience(clusterAudience: string): string;
  /** How old a token may be by its iat (none but its exp when absent). */
  maxAgeMs?: number;
  /** False where the CI hands one token to a job for its whole life (a projected service-account token): no replay cache. */
  singleUse: boolean;
  /** Every field a rule of this method may name (its rule shape's keys). */
  ruleFields: readonly string[];
  /** A rule field's value in this run, from its claims. */
  field(claims: Claims, name: string): string | undefined;
  /** A check beyond the fields (GitHub's pull requests), on the run's fields, or null when the rule may match. */
  extra?(rule: Record<string, unknown>, run: RunFields): string | null;
  /** A check of the token against the spec before any rule (Azure DevOps' organisation), or null. */
  precheck?(spec: S, claims: Claims): string | null;
  /** What the run is, for the certificate and every audit event. */
  facts(claims: Claims): Record<string, string>;
}

export type Match = { rule: number } | { mismatch: string; detail: string };

/** A run as rules see it: the value of each rule field of its method, read once from its claims (at the join) and kept in its certificate (for renewals). */
export type RunFields = Record<string, string>;

/** The longest rule field value read; a longer claim is missing to every rule (fail closed). */
const MAX_FIELD_CHARS = 1024;

/** The run's rule fields from its verified claims: refused (join_denied) when one holds an unreadable character. */
export function runFields<S extends { allow: Record<string, unknown>[]; audience?: string }>(impl: MethodImpl<S>, claims: Claims): RunFields {
  const out: RunFields = {};
  for (const name of impl.ruleFields) {
    const v = impl.field(claims, name);
    if (v === undefined || v.length > MAX_FIELD_CHARS) continue;
    refuseUnreadable(name, v);
    out[name] = v;
  }
  return out;
}

/** The first rule all of whose fields the run has; else the closest rule's first difference. */
export function firstMatch<S extends { allow: Record<string, unknown>[]; audience?: string }>(impl: MethodImpl<S>, spec: S, run: RunFields): Match {
  let closest: { misses: number; mismatch: string; detail: string } | null = null;
  for (const [i, rule] of spec.allow.entries()) {
    const misses = differences(impl, rule, run, i + 1);
    if (misses.length === 0) return { rule: i };
    if (!closest || misses.length < closest.misses) closest = { misses: misses.length, ...misses[0] };
  }
  return closest ?? { mismatch: "the join token has no allow rules", detail: "no allow rules" };
}

/** Where one rule differs from the run: for the caller (what the run says) and for the audit log (what the rule wants too). */
function differences<S extends { allow: Record<string, unknown>[]; audience?: string }>(impl: MethodImpl<S>, rule: Record<string, unknown>, run: RunFields, n: number): { mismatch: string; detail: string }[] {
  const out: { mismatch: string; detail: string }[] = [];
  for (const [name, want] of Object.entries(rule)) {
    if (want === undefined) continue;
    const got = Object.hasOwn(run, name) ? run[name] : undefined;
    if (got === String(want)) continue;
    const said = got === undefined ? "missing" : JSON.stringify(got);
    out.push({ mismatch: `rule ${n} wants another ${name} (this run's is ${said})`, detail: `rule ${n}: ${name} is ${said}, the rule wants ${JSON.stringify(String(want))}` });
  }
  const extra = impl.extra?.(rule, run);
  if (extra) out.push({ mismatch: `rule ${n}: ${extra}`, detail: `rule ${n}: ${extra}` });
  return out;
}

/** The longest fact kept whole; a longer one keeps its first FACT_CHARS - 1 characters and ends with TRUNCATED. */
export const FACT_CHARS = 256;
export const TRUNCATED = "\u2026";

/** Facts kept: present, at most FACT_CHARS characters each, a cut one marked with TRUNCATED (readability is checkedFacts'). */
export function keptFacts(entries: [string, string | undefined][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of entries) if (v !== undefined && v !== "") out[k] = [...v].length > FACT_CHARS ? [...v].slice(0, FACT_CHARS - 1).join("") + TRUNCATED : v;
  return out;
}

/**
 * A run's facts as the join records them: refused (join_denied) when one
 * holds an unreadable character, with the facts escaped for the refusal's
 * audit event (`shown`).
 */
export function checkedFacts(facts: Record<string, string>, shown: (f: Record<string, string>) => void): Record<string, string> {
  shown(Object.fromEntries(Object.entries(facts).map(([k, v]) => [k, shownEscaped(v)])));
  for (const [k, v] of Object.entries(facts)) refuseUnreadable(k, v);
  return facts;
}
