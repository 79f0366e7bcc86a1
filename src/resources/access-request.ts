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
