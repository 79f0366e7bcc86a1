/**
 * The lifecycle of an access request, pure: every state change a request can
 * go through, and what each causes (audit events, a notification, the
 * grant written or removed). Request, the actor's rights and the time in;
 * the next request and its effects out, or an AzgateError saying why not.
 * Nothing else writes a request's state: the service on the proxy
 * (proxy/access-requests.ts) loads, applies, compare-and-swaps and emits;
 * the API, the web UI, the CLI (through the API) and the sweeper call it.
 * Modelled on Teleport's lib/services/access_request.go (ApplyAccessReview).
 *
 *   PENDING --review (threshold met)--> APPROVED --revoke--> REVOKED
 *      |  \--review (a denial met)--> DENIED        \--window ends--> EXPIRED
 *      |--cancel (requester)--> CANCELLED
 *      \--deadline passes--> EXPIRED
 *   A rule decides at creation as a review would; a user's deletion ends
 *   PENDING (CANCELLED) and APPROVED (REVOKED) requests.
 */
import { AzgateError } from "../errors/index.ts";
import type { NotificationEvent } from "./notification-target.ts";
import { effectiveState, type AccessGrant, type AccessRequest } from "./access-request.ts";
import { reviewOutcome } from "../rbac/requests.ts";
import { audit } from "../audit/events.ts";

/** What an actor may do with one request, as the rules (rbac/requests.ts) and the actor's roles say. */
export interface Rights {
  /** The user acting ("azgate" for a rule or the sweeper). */
  actor: string;
  /** The actor is the request's requester (their user record). */
  requester: boolean;
  /** May the actor review this request: the roles' review_requests, or an administrator's rule; with why not. */
  review: { allowed: boolean; reason: string };
  /** The actor holds the rule to update access requests (an administrator, as tctl request). */
  admin: boolean;
}

export type Action = "review" | "cancel" | "revoke";

export interface Allowed {
  allowed: boolean;
  reason: string;
  /** Why not, as an error code: the actor may not (access_denied), the request is in another state (bad_parameter), a second review (already_exists). */
  code?: "access_denied" | "bad_parameter" | "already_exists";
}

/** One audit event a step causes, from the registry (audit/events.ts); the sink adds the time. */
export type AuditEntry = ReturnType<typeof audit>;

export interface Step {
  next: AccessRequest;
  audit: AuditEntry[];
  notice: { event: NotificationEvent; actor?: string; reason?: string } | null;
  /** The grant the per-request check reads: written on approval, removed on revoke or a user's deletion. */
  grant: { put: AccessGrant } | { remove: true } | null;
}

export type Transition =
  /** A reviewer's verdict; `countsFor`: the thresholds it counts toward (rbac/requests.ts thresholdsCounting). */
  | { kind: "review"; verdict: "APPROVED" | "DENIED"; reason: string; countsFor: number[] }
  | { kind: "rule"; rule: string; verdict: "APPROVED" | "DENIED"; reason: string }
  | { kind: "cancel" }
  | { kind: "revoke"; reason: string }
  | { kind: "expire" }
  | { kind: "user_deleted" };

/** What a new request is made of (the service checked each against the rules). */
export interface NewRequest {
  id: string;
  user: string;
  user_id: string;
  app: string;
  azure_identity: string;
  roles: string[];
  reason: string;
  ticket?: string;
  /** When the access window starts (ms), at approval if later. */
  start: number;
  duration_ms: number;
  thresholds: { approve: number; deny: number };
  threshold_rules: { name?: string; approve: number; deny: number; filter?: string }[];
  suggested_reviewers: string[];
  /** When it expires unreviewed (ms). */
  review_deadline: number;
}

/** A request is born PENDING at `now`, audited and notified. */
export function openRequest(n: NewRequest, now: number): Step {
  const at = new Date(now).toISOString();
  const next: AccessRequest = {
    kind: "access_request",
    version: "v3",
    metadata: { name: n.id },
    spec: {
      user: n.user,
      user_id: n.user_id,
      app: n.app,
      azure_identity: n.azure_identity,
      roles: n.roles,
      reason: n.reason,
      ...(n.ticket ? { ticket: n.ticket } : {}),
      start: new Date(n.start).toISOString(),
      duration_ms: n.duration_ms,
      state: "PENDING",
      reviews: [],
      thresholds: n.thresholds,
      threshold_rules: n.threshold_rules,
      suggested_reviewers: n.suggested_reviewers,
      created: at,
      review_deadline: new Date(n.review_deadline).toISOString(),
    },
  };
  const created: AuditEntry = audit("ACCESS_REQUEST_CREATED", { user: n.user, access_request_id: n.id, app: n.app, azure_identity: n.azure_identity, reason: n.reason, ticket: n.ticket || null, duration_ms: n.duration_ms, success: true });
  return { next, audit: [created], notice: { event: "access_request.create", actor: n.user }, grant: null };
}

const ALLOW: Allowed = { allowed: true, reason: "" };
const denied = (reason: string): Allowed => ({ allowed: false, reason, code: "access_denied" });
const wrongState = (reason: string): Allowed => ({ allowed: false, reason, code: "bad_parameter" });

/** What the actor may do with the request at `now`: the one answer the API, the web UI and the CLI give. */
export function allowedActions(r: AccessRequest, rights: Rights, now: number): Record<Action, Allowed> {
  const state = effectiveState(r, now);
  const id = r.metadata.name;
  return {
    review: !rights.review.allowed
      ? denied(rights.review.reason)
      : state !== "PENDING"
        ? wrongState(`access request "${id}" is ${state}; only a PENDING request can be reviewed`)
        : r.spec.reviews.some((x) => x.author === rights.actor)
          ? { allowed: false, reason: `you already reviewed access request "${id}"`, code: "already_exists" }
          : ALLOW,
    cancel: !rights.requester
      ? denied("only the requester can cancel a request; reviewers deny it, or revoke it once approved")
      : state !== "PENDING"
        ? wrongState(`access request "${id}" is ${state}; only a PENDING request can be cancelled (revoke an approved one)`)
        : ALLOW,
    revoke: !(rights.requester || rights.admin || rights.review.allowed)
      ? denied("only the requester, a reviewer of the request or an administrator can revoke it")
      : state !== "APPROVED"
        ? wrongState(`access request "${id}" is ${state}; only an APPROVED request can be revoked`)
        : ALLOW,
  };
}

function refuse(a: Allowed): never {
  throw new AzgateError(a.code ?? "access_denied", a.reason);
}

/**
 * Applies one transition at `now`. Throws when the actor may not or the
 * request is in the wrong state; otherwise returns the next request and
 * every effect, for the caller to store (compare-and-swap) and emit.
 */
export function applyTransition(r: AccessRequest, t: Transition, rights: Rights, now: number): Step {
  const next = structuredClone(r);
  const at = new Date(now).toISOString();
  const id = r.metadata.name;
  const requester = r.spec.user;
  const state = effectiveState(r, now);
  switch (t.kind) {
    case "review": {
      const may = allowedActions(r, rights, now).review;
      if (!may.allowed) refuse(may);
      if (t.countsFor.length === 0) throw new AzgateError("access_denied", "your review would not count: no threshold of this request counts reviews like yours");
      next.spec.reviews.push({ author: rights.actor, state: t.verdict, reason: t.reason, created: at, counts_for: t.countsFor });
      const outcome = reviewOutcome(next.spec.threshold_rules ?? [next.spec.thresholds], next.spec.reviews);
      const review: AuditEntry = audit("ACCESS_REQUEST_REVIEWED", { user: rights.actor, access_request_id: id, requester, state: t.verdict, reason: t.reason, success: true });
      if (outcome !== "APPROVED" && outcome !== "DENIED") return { next, audit: [review], notice: { event: "access_request.review", actor: rights.actor, ...(t.reason ? { reason: t.reason } : {}) }, grant: null };
      return decide(next, outcome, { user: rights.actor }, t.reason, at, now, [review]);
    }
    case "rule": {
      if (state !== "PENDING") throw new AzgateError("bad_parameter", `access request "${id}" is ${state}; a rule decides only at creation`);
      next.spec.reviews.push({ author: `rule/${t.rule}`, state: t.verdict, reason: t.reason, created: at });
      const review: AuditEntry = audit("ACCESS_REQUEST_REVIEWED", { user: "azgate", rule: t.rule, automatic: true, access_request_id: id, requester, state: t.verdict, reason: t.reason, success: true });
      return decide(next, t.verdict, { user: "azgate", rule: t.rule }, t.reason, at, now, [review]);
    }
    case "cancel": {
      const may = allowedActions(r, rights, now).cancel;
      if (!may.allowed) refuse(may);
      next.spec.state = "CANCELLED";
      next.spec.resolution = { by: rights.actor, at, reason: "cancelled by the requester" };
      return { next, audit: [audit("ACCESS_REQUEST_CANCELLED", { user: rights.actor, access_request_id: id })], notice: { event: "access_request.cancel", actor: rights.actor }, grant: null };
    }
    case "revoke": {
      const may = allowedActions(r, rights, now).revoke;
      if (!may.allowed) refuse(may);
      next.spec.state = "REVOKED";
      next.spec.resolution = { by: rights.actor, at, reason: t.reason };
      return {
        next,
        audit: [
          audit("ACCESS_REQUEST_REVOKED", { user: rights.actor, access_request_id: id, requester, reason: t.reason }),
          audit("ACCESS_GRANT_END", { user: requester, access_request_id: id, app: r.spec.app, azure_identity: r.spec.azure_identity, why: "revoked" }),
        ],
        notice: { event: "access_request.revoke", actor: rights.actor, ...(t.reason ? { reason: t.reason } : {}) },
        grant: { remove: true },
      };
    }
    case "expire": {
      // Records an end that came with time: the state already reads EXPIRED; this writes it, once.
      if (state !== "EXPIRED" || r.spec.state === "EXPIRED") throw new AzgateError("bad_parameter", `access request "${id}" has nothing to record: it is ${state}`);
      next.spec.state = "EXPIRED";
      const base = { user: requester, access_request_id: id, app: r.spec.app, azure_identity: r.spec.azure_identity };
      return r.spec.state === "PENDING"
        ? { next, audit: [audit("ACCESS_REQUEST_EXPIRED", { ...base, why: "not reviewed before its deadline" })], notice: { event: "access_request.expire" }, grant: null }
        : { next, audit: [audit("ACCESS_GRANT_END", { ...base, why: "window ended", not_after: r.spec.grant?.not_after ?? null })], notice: { event: "access_grant.end" }, grant: null };
    }
    case "user_deleted": {
      if (state !== "PENDING" && state !== "APPROVED") throw new AzgateError("bad_parameter", `access request "${id}" is ${state}; nothing to end`);
      const reason = "the user was deleted";
      const base = { user: rights.actor, access_request_id: id, requester, reason };
      next.spec.resolution = { by: rights.actor, at, reason };
      if (state === "PENDING") {
        next.spec.state = "CANCELLED";
        return { next, audit: [audit("ACCESS_REQUEST_CANCELLED", { ...base })], notice: null, grant: null };
      }
      next.spec.state = "REVOKED";
      return {
        next,
        audit: [
          audit("ACCESS_REQUEST_REVOKED", { ...base }),
          audit("ACCESS_GRANT_END", { user: requester, access_request_id: id, app: r.spec.app, azure_identity: r.spec.azure_identity, why: "user deleted" }),
        ],
        notice: null,
        grant: { remove: true },
      };
    }
  }
}

/** A decision (a review's outcome or a rule's): the state, the grant's window when approved, and what it causes. */
function decide(next: AccessRequest, outcome: "APPROVED" | "DENIED", by: { user: string; rule?: string }, reason: string, at: string, now: number, before: AuditEntry[]): Step {
  const id = next.metadata.name;
  next.spec.state = outcome;
  next.spec.resolution = { by: by.rule ? `rule/${by.rule}` : by.user, at, reason };
  const who = { user: by.user, ...(by.rule ? { rule: by.rule, automatic: true } : {}), access_request_id: id, requester: next.spec.user, reason };
  const notice = { event: outcome === "APPROVED" ? ("access_request.approve" as const) : ("access_request.deny" as const), actor: by.rule ? `rule ${by.rule}` : by.user, ...(reason ? { reason } : {}) };
  if (outcome === "DENIED") return { next, audit: [...before, audit("ACCESS_REQUEST_DENIED", { ...who })], notice, grant: null };
  // The window starts at the asked start, or now if later.
  const notBefore = Math.max(now, Date.parse(next.spec.start));
  next.spec.grant = { not_before: new Date(notBefore).toISOString(), not_after: new Date(notBefore + next.spec.duration_ms).toISOString() };
  const s = next.spec;
  const grant: AccessGrant = { kind: "access_grant", version: "v1", metadata: { name: id }, spec: { request_id: id, user: s.user, user_id: s.user_id, app: s.app, azure_identity: s.azure_identity, roles: s.roles, ...s.grant! } };
  return {
    next,
    audit: [
      ...before,
      audit("ACCESS_REQUEST_APPROVED", { ...who }),
      audit("ACCESS_GRANT_START", { user: s.user, access_request_id: id, app: s.app, azure_identity: s.azure_identity, not_before: grant.spec.not_before, not_after: grant.spec.not_after }),
    ],
    notice,
    grant: { put: grant },
  };
}
