/**
 * Access requests, the rules (pure): may this user ask for this Azure
 * identity, for how long, with what; may that user review the request. Deny
 * wins; nobody reviews their own request. Data in, decision out: the proxy's
 * request service (proxy/access-requests.ts) and the per-request check call
 * these.
 *
 * An identity is requestable through `allow.request.azure_identities`
 * (resource-ID patterns, azgate's) or through `allow.request.roles` /
 * `search_as_roles` (Teleport's): the identities those roles allow. It is
 * reviewable through `allow.review_requests.azure_identities`, or
 * `allow.review_requests.roles` naming a role that allows it.
 */
import { globMatch, literalTraits } from "./azure-api.ts";
import { expandAll } from "./template.ts";
import type { Role, Traits } from "./types.ts";
import { parseDuration } from "../util/duration.ts";

/** No grant is longer than this, whatever a role says (Teleport's cap is 14 days; a day is plenty for JIT). */
export const MAX_GRANT_MS = 24 * 3_600_000;
/** Without max_duration in the role: one hour. */
export const DEFAULT_GRANT_MS = 3_600_000;

export type RoleLookup = (name: string) => Role | undefined;

const matchesIdentity = (pattern: string, identity: string) => pattern !== "*" && globMatch(pattern, identity, "segment");

/** True when `role` allows `identity` outright (its allow.azure_identities), as a requested or reviewed role. */
function roleAllows(role: Role | undefined, identity: string, traits: Traits): boolean {
  return !!role && expandAll(role.spec.allow?.azure_identities, traits).some((id) => id.toLowerCase() === identity.toLowerCase());
}

export interface RequestTerms {
  allowed: boolean;
  reason: string;
  maxDurationMs: number;
  reasonRequired: boolean;
  ticket: { required: boolean; pattern?: string };
  /** Approvals and denials a decision needs (the strictest threshold of the roles that offer the request). */
  approvals: number;
  denials: number;
  suggestedReviewers: string[];
  /** Roles named in `request.roles` that allow the identity: their azure_api rules apply under the grant. */
  grantRoles: string[];
  prompt?: string;
}

/** May a user with `roles` request `identity`, and on what terms. */
export function requestTerms(roles: Role[], traits: Traits, identity: string, lookup: RoleLookup): RequestTerms {
  const denied = roles.find((r) => expandAll(r.spec.deny?.request?.azure_identities, traits).some((p) => p === "*" || matchesIdentity(p, identity)) || (r.spec.deny?.request?.roles ?? []).some((n) => roleAllows(lookup(n), identity, traits)));
  const none: RequestTerms = { allowed: false, reason: "", maxDurationMs: 0, reasonRequired: false, ticket: { required: false }, approvals: 1, denials: 1, suggestedReviewers: [], grantRoles: [] };
  if (denied) return { ...none, reason: `role "${denied.metadata.name}" denies requesting Azure identity "${identity}"` };
  // Allow rules read traits literally (azure-api.ts literalTraits): a trait never becomes a pattern here.
  const literal = literalTraits(traits);
  const offering = roles.filter((r) => {
    const req = r.spec.allow?.request;
    if (!req) return false;
    return expandAll(req.azure_identities, literal).some((p) => matchesIdentity(p, identity)) || [...(req.roles ?? []), ...(req.search_as_roles ?? [])].some((n) => roleAllows(lookup(n), identity, traits));
  });
  if (offering.length === 0) return { ...none, reason: `no role lets you request Azure identity "${identity}"` };
  const durations = offering.map((r) => (r.spec.allow?.request?.max_duration ? parseDuration(r.spec.allow.request.max_duration) : DEFAULT_GRANT_MS));
  const thresholds = offering.flatMap((r) => r.spec.allow?.request?.thresholds ?? []);
  const tickets = offering.map((r) => r.spec.allow?.request?.ticket).filter((t): t is NonNullable<typeof t> => !!t);
  const grantRoles = [...new Set(offering.flatMap((r) => [...(r.spec.allow?.request?.roles ?? []), ...(r.spec.allow?.request?.search_as_roles ?? [])]).filter((n) => roleAllows(lookup(n), identity, traits)))];
  return {
    allowed: true,
    reason: `role "${offering[0].metadata.name}" lets you request Azure identity "${identity}"`,
    // The most generous role that offers it sets the length, the global cap bounds it.
    maxDurationMs: Math.min(Math.max(...durations), MAX_GRANT_MS),
    reasonRequired: offering.some((r) => r.spec.allow?.request?.reason?.mode === "required"),
    ticket: { required: tickets.some((t) => t.mode === "required"), pattern: tickets.find((t) => t.pattern)?.pattern },
    approvals: Math.max(1, ...thresholds.map((t) => t.approve ?? 1)),
    denials: Math.max(1, Math.min(...(thresholds.length ? thresholds.map((t) => t.deny ?? 1) : [1]))),
    suggestedReviewers: [...new Set(offering.flatMap((r) => r.spec.allow?.request?.suggested_reviewers ?? []))],
    grantRoles,
    prompt: offering.map((r) => r.spec.options?.request_prompt).find((p) => !!p),
  };
}

/** May `reviewer` (with these roles) review a request by `requester` for `identity`: never their own; deny wins. */
export function mayReview(reviewer: string, roles: Role[], traits: Traits, request: { user: string; azure_identity: string }, lookup: RoleLookup): { allowed: boolean; reason: string } {
  if (reviewer === request.user) return { allowed: false, reason: "you cannot review your own request" };
  const covers = (c: Role["spec"]["allow"], t: Traits) => {
    const r = c?.review_requests;
    if (!r) return false;
    return expandAll(r.azure_identities, t).some((p) => p === "*" || matchesIdentity(p, request.azure_identity)) || (r.roles ?? []).some((n) => roleAllows(lookup(n), request.azure_identity, t));
  };
  const denying = roles.find((r) => covers(r.spec.deny, traits));
  if (denying) return { allowed: false, reason: `role "${denying.metadata.name}" denies reviewing requests for "${request.azure_identity}"` };
  const allowing = roles.find((r) => covers(r.spec.allow, literalTraits(traits)));
  return allowing ? { allowed: true, reason: `role "${allowing.metadata.name}" allows reviewing requests for "${request.azure_identity}"` } : { allowed: false, reason: `no role lets you review requests for Azure identity "${request.azure_identity}"` };
}
