import { sameIdentity } from "../azure/resource-id.ts";

/**
 * Access requests and the grants they lead to (Teleport's access_request
 * shape, for one Azure identity on one app). A request is the conversation
 * (who asked, why, who reviewed); a grant is what the proxy enforces, on
 * every request, until its window ends or it is revoked.
 */
export type RequestState = "PENDING" | "APPROVED" | "DENIED" | "CANCELLED" | "REVOKED" | "EXPIRED";

export interface Review {
  author: string;
  state: "APPROVED" | "DENIED";
  reason: string;
  created: string;
  /** The thresholds (indexes into `threshold_rules`) this review counts toward, decided by their filters when it was made. */
  counts_for?: number[];
}

export interface AccessRequest {
  kind: "access_request";
  version: "v3";
  metadata: { name: string };
  spec: {
    user: string;
    /** The requester's user record (its id): a user deleted and re-created under the same name is another requester. */
    user_id: string;
    app: string;
    azure_identity: string;
    /** Requested roles that allow the identity: their azure_api rules apply under the grant. */
    roles: string[];
    reason: string;
    ticket?: string;
    /** The access window asked for: it starts at `start` (or at approval, if later) and lasts `duration_ms`. */
    start: string;
    duration_ms: number;
    /** As stored; EXPIRED is also what a PENDING request past its deadline, or an APPROVED one past its window, reads as. */
    state: RequestState;
    reviews: Review[];
    /** Approvals and denials needed, as the roles said at creation (the strictest of threshold_rules). */
    thresholds: { approve: number; deny: number };
    /** Every threshold, with its filter, as the roles said at creation: all must be met to approve, any one denies. */
    threshold_rules?: { name?: string; approve: number; deny: number; filter?: string }[];
    suggested_reviewers: string[];
    created: string;
    review_deadline: string;
    /** The grant's window, once approved. */
    grant?: { not_before: string; not_after: string };
    resolution?: { by: string; at: string; reason: string };
  };
}

export interface AccessGrant {
  kind: "access_grant";
  version: "v1";
  metadata: { name: string };
  spec: {
    request_id: string;
    user: string;
    /** The user record the grant is for; a grant without one (stored before ids were kept) is in force for nobody. */
    user_id: string;
    app: string;
    azure_identity: string;
    roles: string[];
    not_before: string;
    not_after: string;
  };
}

/** The state as of `now`: windows and deadlines end requests without a write. */
export function effectiveState(r: AccessRequest, now: number): RequestState {
  const s = r.spec.state;
  if (s === "PENDING" && now >= Date.parse(r.spec.review_deadline)) return "EXPIRED";
  if (s === "APPROVED" && r.spec.grant && now >= Date.parse(r.spec.grant.not_after)) return "EXPIRED";
  return s;
}

/** The grant for this user (name and record id), app and identity in force at `now`, if any (identities compared in canonical form). */
export function activeGrant(grants: AccessGrant[], who: { user: string; user_id: string; app: string; azure_identity: string }, now: number): AccessGrant | undefined {
  return grants.find(
    (g) =>
      g.spec.user === who.user &&
      !!g.spec.user_id &&
      g.spec.user_id === who.user_id &&
      g.spec.app === who.app &&
      sameIdentity(g.spec.azure_identity, who.azure_identity) &&
      Date.parse(g.spec.not_before) <= now &&
      now < Date.parse(g.spec.not_after),
  );
}

/** True when `r` was made by this user record (not by an earlier user of the same name). */
export const isRequestOf = (r: AccessRequest, who: { user: string; user_id: string }) => r.spec.user === who.user && !!r.spec.user_id && r.spec.user_id === who.user_id;

/** How this user record's last grant for an app and identity ended: the denial that follows names it (README, "Just-in-time access"). */
export interface EndedGrant {
  request_id: string;
  how: "revoked" | "expired";
  /** When: the revoke's time, or the window's end. */
  at: string;
  /** Who revoked it, and why, as they said. */
  by?: string;
  reason?: string;
}

/**
 * The grant that ended last among this user record's requests for this app
 * and identity (compared in canonical form), at `now`: a request that was
 * approved (it has a window) and is now REVOKED or past its window. Null
 * when none did.
 */
export function lastEndedGrant(requests: AccessRequest[], who: { user: string; user_id: string; app: string; azure_identity: string }, now: number): EndedGrant | null {
  let last: EndedGrant | null = null;
  for (const r of requests) {
    if (!isRequestOf(r, who) || r.spec.app !== who.app || !r.spec.grant || !sameIdentity(r.spec.azure_identity, who.azure_identity)) continue;
    const state = effectiveState(r, now);
    const ended: EndedGrant | null =
      state === "REVOKED"
        ? { request_id: r.metadata.name, how: "revoked", at: r.spec.resolution?.at ?? r.spec.grant.not_after, ...(r.spec.resolution?.by ? { by: r.spec.resolution.by } : {}), ...(r.spec.resolution?.reason ? { reason: r.spec.resolution.reason } : {}) }
        : state === "EXPIRED"
          ? { request_id: r.metadata.name, how: "expired", at: r.spec.grant.not_after }
          : null;
    if (ended && (!last || Date.parse(ended.at) > Date.parse(last.at))) last = ended;
  }
  return last;
}

/** What may be asked for an identity, as the proxy's terms say (GET /v1/requests/terms). */
export interface RequestableTerms {
  max_duration_ms?: number;
  reason_required?: boolean;
  ticket_required?: boolean;
}

/** The one command that asks for an identity (apps login's hint, a denial after a grant ended): the flags the terms require, shown to fill in. */
export function requestCommand(app: string, identity: string, terms: RequestableTerms): string {
  const hours = Math.max(1, Math.floor((terms.max_duration_ms ?? 3_600_000) / 3_600_000));
  return `azgate request create --app ${app} --azure-identity ${identity} --for ${hours}h${terms.reason_required ? ' --reason "..."' : ""}${terms.ticket_required ? " --ticket ..." : ""}`;
}

/**
 * The sentence a denial adds after a grant ended: which request granted it,
 * how it ended (revoked by whom and when, or expired when), and how to ask
 * again (`again`: the command, or null when the roles no longer let the user
 * request it).
 */
export function endedGrantNote(ended: EndedGrant, again: string | null): string {
  const how = ended.how === "revoked" ? `revoked by ${ended.by ?? "azgate"} at ${ended.at}${ended.reason ? ` (${JSON.stringify(ended.reason)})` : ""}` : `expired at ${ended.at}, when its window ended`;
  return `access request ${ended.request_id} granted it and has ended: ${how}; ${again ? `to ask again: ${again}` : "your roles no longer let you request it"}`;
}
