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
import { globMatch } from "./azure-api.ts";
import { expandAll, expandAllow, expandFor } from "./template.ts";
import { isUnreadableRegex } from "../util/regex.ts";
import { distinctIdentities, identityKey, identityName, identityNameProblem, requireIdentityId, sameIdentity } from "../azure/resource-id.ts";
import { AzgateError } from "../errors/index.ts";
import type { Role, Traits } from "./types.ts";
import { parseDuration } from "../util/duration.ts";
import { compilePredicate, type Predicate, type Vars } from "./predicate.ts";
import { checkAppAccess, checkAzureIdentity, checkDenials } from "./engine.ts";
import type { App, Decision } from "./types.ts";

/** No grant is longer than this, whatever a role says (Teleport's cap is 14 days; a day is plenty for JIT). */
export const MAX_GRANT_MS = 24 * 3_600_000;
/** Without max_duration in the role: one hour. */
export const DEFAULT_GRANT_MS = 3_600_000;

export type RoleLookup = (name: string) => Role | undefined;

/** Patterns match the identity's canonical form; what is no identity ID matches no pattern. */
const matchesIdentity = (pattern: string, identity: string) => {
  const key = identityKey(identity);
  return pattern !== "*" && key !== null && globMatch(pattern, key, "segment");
};

/**
 * True when `role` allows `identity` outright (its allow.azure_identities), as a requested or reviewed role.
 * Its traits read as the rule naming the role reads them: an allow's as literals (a trait never picks the
 * identity that may be requested or reviewed), a deny's as they are (wider is safer there).
 */
function roleAllows(role: Role | undefined, identity: string, traits: Traits, side: "allow" | "deny"): boolean {
  return !!role && expandFor(side)(role.spec.allow?.azure_identities, traits).some((id) => sameIdentity(id, identity));
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
  /** Every threshold of those roles (a default one when none has any): all must be met to approve, any one denies. */
  thresholds: Threshold[];
  suggestedReviewers: string[];
  /** Roles named in `request.roles` that allow the identity: their azure_api rules apply under the grant. */
  grantRoles: string[];
  prompt?: string;
}

/** The roles named in `request` and `review_requests` blocks: what the rules here need loaded to read them. */
export const rolesNamedInRequests = (roles: Role[]): string[] => [
  ...new Set(roles.flatMap((r) => [...(r.spec.allow?.request?.roles ?? []), ...(r.spec.allow?.request?.search_as_roles ?? []), ...(r.spec.deny?.request?.roles ?? []), ...(r.spec.allow?.review_requests?.roles ?? []), ...(r.spec.deny?.review_requests?.roles ?? [])])),
];

/** May a user with `roles` request `identity`, and on what terms. */
export function requestTerms(roles: Role[], traits: Traits, identity: string, lookup: RoleLookup): RequestTerms {
  const denied = roles.find((r) => expandAll(r.spec.deny?.request?.azure_identities, traits).some((p) => p === "*" || isUnreadableRegex(p) || matchesIdentity(p, identity)) || (r.spec.deny?.request?.roles ?? []).some((n) => roleAllows(lookup(n), identity, traits, "deny")));
  const none: RequestTerms = { allowed: false, reason: "", maxDurationMs: 0, reasonRequired: false, ticket: { required: false }, approvals: 1, denials: 1, thresholds: [], suggestedReviewers: [], grantRoles: [] };
  if (denied) return { ...none, reason: `role "${denied.metadata.name}" denies requesting Azure identity "${identity}"` };
  // Allow rules read traits literally (rbac/template.ts expandAllow): a trait never becomes a pattern here.
  const offering = roles.filter((r) => {
    const req = r.spec.allow?.request;
    if (!req) return false;
    return expandAllow(req.azure_identities, traits).some((p) => matchesIdentity(p, identity)) || [...(req.roles ?? []), ...(req.search_as_roles ?? [])].some((n) => roleAllows(lookup(n), identity, traits, "allow"));
  });
  if (offering.length === 0) return { ...none, reason: `no role lets you request Azure identity "${identity}"` };
  const durations = offering.map((r) => (r.spec.allow?.request?.max_duration ? parseDuration(r.spec.allow.request.max_duration) : DEFAULT_GRANT_MS));
  const given = offering.flatMap((r) => r.spec.allow?.request?.thresholds ?? []);
  const thresholds: Threshold[] = given.length ? given.map((t) => ({ ...(t.name ? { name: t.name } : {}), approve: t.approve ?? 1, deny: t.deny ?? 1, ...(t.filter ? { filter: t.filter } : {}) })) : [{ approve: 1, deny: 1 }];
  const tickets = offering.map((r) => r.spec.allow?.request?.ticket).filter((t): t is NonNullable<typeof t> => !!t);
  const grantRoles = [...new Set(offering.flatMap((r) => [...(r.spec.allow?.request?.roles ?? []), ...(r.spec.allow?.request?.search_as_roles ?? [])]).filter((n) => roleAllows(lookup(n), identity, traits, "allow")))];
  return {
    allowed: true,
    reason: `role "${offering[0].metadata.name}" lets you request Azure identity "${identity}"`,
    // The most generous role that offers it sets the length, the global cap bounds it.
    maxDurationMs: Math.min(Math.max(...durations), MAX_GRANT_MS),
    reasonRequired: offering.some((r) => r.spec.allow?.request?.reason?.mode === "required"),
    ticket: { required: tickets.some((t) => t.mode === "required"), pattern: tickets.find((t) => t.pattern)?.pattern },
    approvals: Math.max(...thresholds.map((t) => t.approve)),
    denials: Math.min(...thresholds.map((t) => t.deny)),
    thresholds,
    suggestedReviewers: [...new Set(offering.flatMap((r) => r.spec.allow?.request?.suggested_reviewers ?? []))],
    grantRoles,
    prompt: offering.map((r) => r.spec.options?.request_prompt).find((p) => !!p),
  };
}

/** The identities among `identities` whose name is `name` (without case, as Azure compares names), once each. */
export const identitiesNamed = (name: string, identities: string[]): string[] => distinctIdentities(identities).filter((id) => identityName(id).toLowerCase() === name.toLowerCase());

/**
 * The identity a request names: a full resource ID as given (in the one
 * grammar, Azure's spelling), or a short name (`prod-contributor`) that
 * exactly one known identity has, compared without case as Azure names are.
 * A name two known identities share is ambiguous whichever of them the roles
 * offer (a name in another resource group must not land on an identity the
 * user did not mean, nor an auto-review rule approve it): refused, listing
 * them. So is a name found in a list that was cut short (`complete` false).
 * Resolving decides nothing: requestTerms judges the full ID it returns.
 */
export function resolveRequestedName(given: string, known: { identities: string[]; complete: boolean }): string {
  if (given.startsWith("/")) return requireIdentityId(given, "azure_identity").id;
  const problem = identityNameProblem(given);
  if (problem) throw new AzgateError("bad_parameter", `azure_identity: ${problem}; give an identity's name or its full resource ID`);
  const matches = identitiesNamed(given, known.identities);
  if (matches.length > 1) throw new AzgateError("bad_parameter", `"${given}" names ${matches.length} Azure identities; give the full resource ID of the one you mean: ${matches.sort().join(", ")}`);
  if (!known.complete) throw new AzgateError("bad_parameter", `"${given}" cannot be told apart from every identity azgate was told of (an agent's list was cut short); give its full resource ID`);
  if (matches.length === 1) return matches[0];
  throw new AzgateError("bad_parameter", `"${given}" names no Azure identity azgate knows of (the roles' identities and those the agents read in ARM); give its full resource ID`);
}

/**
 * May a grant be used on this app server now (pure): a grant is no wider than
 * what made it requestable, judged on the roles as they are now, not as they
 * were at approval.
 *
 * - Either way the user's roles, as they are now, must still let them request
 *   the identity: a requester role taken away or a `deny.request` added ends
 *   the grant on the next request.
 * - A grant for requested roles (`roles` non-empty) is in force on a server
 *   only while one of those roles, as defined now (`granted`; a deleted one is
 *   missing), is still one the user may request and still allows the identity
 *   on that server's labels. A role edited or deleted mid-grant ends it (fail
 *   closed), never widens it.
 * - A grant for an identity named in `request.azure_identities` needs the
 *   user's own roles to allow the app's labels.
 * - Any deny of the user's roles or the granted ones wins.
 *
 * Allowed, it also says which roles' rules the requests under it are decided
 * on (`roles`): the user's own, the granted roles that still count in full
 * (requestable now and allowing the identity on this server), and the
 * granted roles that no longer count with their deny rules only, so a role
 * taken out of `request.roles` mid-grant stops widening what the grant allows
 * on the next request, while its denies still apply.
 */
export type GrantDecision = Decision & { roles?: Role[] };

export function grantPermits(callerRoles: Role[], traits: Traits, grant: { roles: string[]; azure_identity: string }, granted: Role[], lookup: RoleLookup, app: App): GrantDecision {
  const identity = grant.azure_identity;
  const denial = checkDenials([...callerRoles, ...granted], traits, app, identity);
  if (!denial.allowed) return denial;
  const terms = requestTerms(callerRoles, traits, identity, lookup);
  const noLongerRequestable: Decision = { allowed: false, reason: `${terms.reason || `you may no longer request role ${grant.roles.join(", ")}`}: the grant for it no longer holds` };
  if (grant.roles.length > 0) {
    const allowing = granted.filter((r) => checkAzureIdentity([r], traits, app, identity).allowed);
    if (allowing.length === 0) {
      return { allowed: false, reason: `the role${grant.roles.length > 1 ? "s" : ""} this access was granted for (${grant.roles.join(", ")}) no longer allow${grant.roles.length > 1 ? "" : "s"} Azure identity "${identity}" on app "${app.name}"` };
    }
    // The user's roles must still let them request the role (a requester role taken away, a deny.request added).
    const counting = allowing.filter((r) => terms.allowed && terms.grantRoles.includes(r.metadata.name));
    if (counting.length === 0) return noLongerRequestable;
    const denyOnly = granted.filter((r) => !counting.includes(r)).map(denyRulesOnly);
    return { allowed: true, reason: `requested role "${counting[0].metadata.name}" allows Azure identity "${identity}" on app "${app.name}"`, roles: [...callerRoles, ...counting, ...denyOnly] };
  }
  const appAccess = checkAppAccess(callerRoles, traits, app);
  if (!appAccess.allowed) return { allowed: false, reason: `${appAccess.reason}: the grant for "${identity}" covers only apps your roles allow` };
  return terms.allowed ? { allowed: true, reason: terms.reason, roles: callerRoles } : noLongerRequestable;
}

/** A role with its allow rules taken away: what still binds of a role that no longer grants. */
const denyRulesOnly = (r: Role): Role => ({ ...r, spec: { ...r.spec, allow: {} } });

/** What a `where` or a threshold `filter` may read about the request. */
export interface ReviewSubject {
  user: string;
  azure_identity: string;
  app?: string;
  roles?: string[];
  reason?: string;
  ticket?: string;
  suggested_reviewers?: string[];
}

export interface Reviewer {
  name: string;
  roles: Role[];
  traits: Traits;
}

const compiled = new Map<string, Predicate>();
/** Compiled once per text; role validation already refused any that does not compile. */
export function predicate(text: string): Predicate {
  let p = compiled.get(text);
  if (!p) compiled.set(text, (p = compilePredicate(text)));
  return p;
}

function predicateVars(reviewer: Reviewer, request: ReviewSubject, reviewReason?: string): Vars {
  return {
    "reviewer.name": reviewer.name,
    "reviewer.roles": reviewer.roles.map((r) => r.metadata.name),
    "reviewer.traits": reviewer.traits,
    "review.reason": reviewReason ?? "",
    ...requestVars(request),
  };
}

/** What an auto-review rule reads: the request, and its requester's roles and traits. */
export function ruleVars(request: ReviewSubject, requester: { roles: Role[]; traits: Traits }): Vars {
  return { ...requestVars(request), "user.roles": requester.roles.map((r) => r.metadata.name), "user.traits": requester.traits };
}

function requestVars(request: ReviewSubject): Vars {
  return {
    "request.user": request.user,
    "request.app": request.app ?? "",
    "request.azure_identity": request.azure_identity,
    "request.azure_identities": [request.azure_identity],
    "request.roles": request.roles ?? [],
    "request.reason": request.reason ?? "",
    "request.ticket": request.ticket ?? "",
    "request.suggested_reviewers": request.suggested_reviewers ?? [],
    "request.system_annotations": {},
  };
}

/**
 * May `reviewer` review this request: never their own; deny wins. A
 * `review_requests` block covers a request when its identities or roles
 * match and its `where` holds; a deny block with only `where` covers every
 * request for which it holds.
 */
export function mayReview(reviewer: string, roles: Role[], traits: Traits, request: ReviewSubject, lookup: RoleLookup): { allowed: boolean; reason: string } {
  if (reviewer === request.user) return { allowed: false, reason: "you cannot review your own request" };
  const vars = predicateVars({ name: reviewer, roles, traits }, request);
  const covers = (c: Role["spec"]["allow"], t: Traits, side: "allow" | "deny") => {
    const r = c?.review_requests;
    if (!r) return false;
    const scoped = r.azure_identities !== undefined || r.roles !== undefined;
    // A pattern RE2 cannot read (only a trait makes one: rbac/template.ts TRAIT_REGEX) covers every request in a deny.
    const inScope = expandFor(side)(r.azure_identities, t).some((p) => p === "*" || (side === "deny" && isUnreadableRegex(p)) || matchesIdentity(p, request.azure_identity)) || (r.roles ?? []).some((n) => roleAllows(lookup(n), request.azure_identity, t, side));
    if (r.where === undefined) return inScope;
    return (inScope || (side === "deny" && !scoped)) && predicate(r.where).test(vars);
  };
  const denying = roles.find((r) => covers(r.spec.deny, traits, "deny"));
  if (denying) return { allowed: false, reason: `role "${denying.metadata.name}" denies reviewing requests for "${request.azure_identity}"${denying.spec.deny?.review_requests?.where ? ` where ${denying.spec.deny.review_requests.where}` : ""}` };
  const allowing = roles.find((r) => covers(r.spec.allow, traits, "allow"));
  return allowing ? { allowed: true, reason: `role "${allowing.metadata.name}" allows reviewing requests for "${request.azure_identity}"` } : { allowed: false, reason: `no role lets you review requests for Azure identity "${request.azure_identity}"` };
}

export interface Threshold {
  name?: string;
  approve: number;
  deny: number;
  /** Only reviews for which this holds count toward this threshold. */
  filter?: string;
}

/** The thresholds (by index) a review by `reviewer` counts toward. */
export function thresholdsCounting(thresholds: Threshold[], reviewer: Reviewer, request: ReviewSubject, reviewReason: string): number[] {
  const vars = predicateVars(reviewer, request, reviewReason);
  return thresholds.flatMap((t, i) => (!t.filter || predicate(t.filter).test(vars) ? [i] : []));
}

/**
 * The outcome of these reviews: DENIED once any threshold has its denials,
 * APPROVED once every threshold has its approvals (counting, for each, the
 * reviews that count toward it), PENDING otherwise. Stricter than Teleport,
 * where one threshold per role suffices: here two thresholds mean both.
 */
export function reviewOutcome(thresholds: Threshold[], reviews: { state: "APPROVED" | "DENIED"; counts_for?: number[] }[]): "APPROVED" | "DENIED" | "PENDING" {
  const count = (i: number, state: string) => reviews.filter((r) => r.state === state && (r.counts_for ?? [i]).includes(i)).length;
  if (thresholds.some((t, i) => count(i, "DENIED") >= t.deny)) return "DENIED";
  if (thresholds.every((t, i) => count(i, "APPROVED") >= t.approve)) return "APPROVED";
  return "PENDING";
}
