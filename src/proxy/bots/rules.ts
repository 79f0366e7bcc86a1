/**
 * What every join method shares: a rule matches a run when each field it
 * names equals what the CI's token says (exactly: no patterns, one canonical
 * reading of each claim, a missing claim matches nothing); the first rule
 * that matches wins, and when none does the refusal says where the closest
 * rule differs. Claims are read as strings only (GitLab's "true"/"false"
 * included), bounded, and never as anything to evaluate.
 */
import type { JWTPayload } from "jose";
import type { JoinMethod } from "../../resources/join-token.ts";

export type Claims = JWTPayload & Record<string, unknown>;

/** A claim as text, or undefined when it is missing or not a short string (or number). */
export function claim(claims: Record<string, unknown>, name: string): string | undefined {
  const v = claims[name];
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return typeof v === "string" && v.length <= 1024 ? v : undefined;
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
  /** A rule field's value in this run, from its claims. */
  field(claims: Claims, name: string): string | undefined;
  /** A check beyond the fields (GitHub's pull requests), or null when the rule may match. */
  extra?(rule: Record<string, unknown>, claims: Claims): string | null;
  /** A check of the token against the spec before any rule (Azure DevOps' organisation), or null. */
  precheck?(spec: S, claims: Claims): string | null;
  /** What the run is, for the certificate and every audit event. */
  facts(claims: Claims): Record<string, string>;
}

export type Match = { rule: number } | { mismatch: string; detail: string };

/** The first rule all of whose fields the run has; else the closest rule's first difference. */
export function firstMatch<S extends { allow: Record<string, unknown>[]; audience?: string }>(impl: MethodImpl<S>, spec: S, claims: Claims): Match {
  let closest: { misses: number; mismatch: string; detail: string } | null = null;
  for (const [i, rule] of spec.allow.entries()) {
    const misses = differences(impl, rule, claims, i + 1);
    if (misses.length === 0) return { rule: i };
    if (!closest || misses.length < closest.misses) closest = { misses: misses.length, ...misses[0] };
  }
  return closest ?? { mismatch: "the join token has no allow rules", detail: "no allow rules" };
}

/** Where one rule differs from the run: for the caller (what the run says) and for the audit log (what the rule wants too). */
function differences<S extends { allow: Record<string, unknown>[]; audience?: string }>(impl: MethodImpl<S>, rule: Record<string, unknown>, claims: Claims, n: number): { mismatch: string; detail: string }[] {
  const out: { mismatch: string; detail: string }[] = [];
  for (const [name, want] of Object.entries(rule)) {
    if (want === undefined) continue;
    const got = impl.field(claims, name);
    if (got === String(want)) continue;
    const said = got === undefined ? "missing" : JSON.stringify(got);
    out.push({ mismatch: `rule ${n} wants another ${name} (this run's is ${said})`, detail: `rule ${n}: ${name} is ${said}, the rule wants ${JSON.stringify(String(want))}` });
  }
  const extra = impl.extra?.(rule, claims);
  if (extra) out.push({ mismatch: `rule ${n}: ${extra}`, detail: `rule ${n}: ${extra}` });
  return out;
}

/** Facts kept: present, printable, at most 256 characters each. */
export function keptFacts(entries: [string, string | undefined][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of entries) if (v !== undefined && v !== "" && !/[\x00-\x1f\x7f]/.test(v)) out[k] = v.slice(0, 256);
  return out;
}
