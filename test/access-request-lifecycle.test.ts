/**
 * The access-request lifecycle (src/resources/access-request-lifecycle.ts),
 * pure: each transition's next state and effects, and allowedActions, for
 * every state and kind of actor. No clock is read: `now` is an argument.
 */
import { describe, expect, it } from "vitest";
import { allowedActions, applyTransition, openRequest, type Rights } from "../src/resources/access-request-lifecycle.ts";
import type { AccessRequest } from "../src/resources/access-request.ts";

const ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const T0 = 1_000_000_000_000;
const HOUR = 3_600_000;

const born = (over: { approve?: number; deny?: number; start?: number } = {}) =>
  openRequest(
    {
      id: "00000000-0000-4000-8000-000000000001",
      user: "alice",
      user_id: "id-alice",
      app: "azure-cli",
      azure_identity: ID,
      roles: [],
      reason: "INC-1",
      start: over.start ?? T0,
      duration_ms: HOUR,
      thresholds: { approve: over.approve ?? 1, deny: over.deny ?? 1 },
      threshold_rules: [{ approve: over.approve ?? 1, deny: over.deny ?? 1 }],
      suggested_reviewers: ["bob"],
      review_deadline: T0 + HOUR,
    },
    T0,
  );

const requester: Rights = { actor: "alice", requester: true, review: { allowed: false, reason: "nobody reviews their own request" }, admin: false };
const reviewer = (name = "bob"): Rights => ({ actor: name, requester: false, review: { allowed: true, reason: "" }, admin: false });
const stranger: Rights = { actor: "mallory", requester: false, review: { allowed: false, reason: "no role of yours may review it" }, admin: false };
const admin: Rights = { actor: "root", requester: false, review: { allowed: false, reason: "no review role" }, admin: true };
const review = (verdict: "APPROVED" | "DENIED", reason = "") => ({ kind: "review" as const, verdict, reason, countsFor: [0] });
const approved = (): AccessRequest => applyTransition(born().next, review("APPROVED", "ok"), reviewer(), T0 + 1_000).next;

describe("the access-request lifecycle", () => {
  it("a request is born PENDING, audited and notified as created", () => {
    const s = born();
    expect(s.next.spec).toMatchObject({ state: "PENDING", user: "alice", user_id: "id-alice", created: new Date(T0).toISOString(), review_deadline: new Date(T0 + HOUR).toISOString(), reviews: [] });
    expect(s.audit).toEqual([expect.objectContaining({ event: "access_request.create", user: "alice", success: true })]);
    expect(s.notice).toEqual({ event: "access_request.create", actor: "alice" });
    expect(s.grant).toBeNull();
  });

  it("an approval meeting the threshold writes the grant's window (from now, or the asked start if later), audited and notified", () => {
    const s = applyTransition(born().next, review("APPROVED", "on call"), reviewer(), T0 + 1_000);
    expect(s.next.spec.state).toBe("APPROVED");
    expect(s.next.spec.grant).toEqual({ not_before: new Date(T0 + 1_000).toISOString(), not_after: new Date(T0 + 1_000 + HOUR).toISOString() });
    expect(s.audit.map((e) => e.event)).toEqual(["access_request.review", "access_request.approve", "access_grant.start"]);
    expect(s.grant).toEqual({ put: expect.objectContaining({ spec: expect.objectContaining({ user: "alice", user_id: "id-alice", azure_identity: ID, not_before: new Date(T0 + 1_000).toISOString() }) }) });
    expect(s.notice).toEqual({ event: "access_request.approve", actor: "bob", reason: "on call" });
    const later = applyTransition(born({ start: T0 + 2 * HOUR }).next, review("APPROVED"), reviewer(), T0 + 1_000);
    expect(later.next.spec.grant?.not_before).toBe(new Date(T0 + 2 * HOUR).toISOString());
  });

  it("two approvals needed: the first leaves it PENDING (a review event, no grant), the second approves; one denial ends it", () => {
    const first = applyTransition(born({ approve: 2 }).next, review("APPROVED"), reviewer("bob"), T0 + 1);
    expect([first.next.spec.state, first.audit.map((e) => e.event), first.grant, first.notice?.event]).toEqual(["PENDING", ["access_request.review"], null, "access_request.review"]);
    const second = applyTransition(first.next, review("APPROVED"), reviewer("carol"), T0 + 2);
    expect(second.next.spec.state).toBe("APPROVED");
    const denied = applyTransition(first.next, review("DENIED", "not now"), reviewer("carol"), T0 + 2);
    expect([denied.next.spec.state, denied.audit.map((e) => e.event), denied.grant]).toEqual(["DENIED", ["access_request.review", "access_request.deny"], null]);
  });

  it("allowedActions: who may do what in which state, the same answer the transitions enforce", () => {
    const pending = born().next;
    const ok = approved();
    const expired = T0 + 2 * HOUR;
    const table: [string, AccessRequest, Rights, number, Record<"review" | "cancel" | "revoke", boolean>][] = [
      ["requester, pending", pending, requester, T0, { review: false, cancel: true, revoke: false }],
      ["reviewer, pending", pending, reviewer(), T0, { review: true, cancel: false, revoke: false }],
      ["stranger, pending", pending, stranger, T0, { review: false, cancel: false, revoke: false }],
      ["admin without review rights, pending", pending, admin, T0, { review: false, cancel: false, revoke: false }],
      ["requester, approved", ok, requester, T0 + 2_000, { review: false, cancel: false, revoke: true }],
      ["reviewer, approved", ok, reviewer("carol"), T0 + 2_000, { review: false, cancel: false, revoke: true }],
      ["admin, approved", ok, admin, T0 + 2_000, { review: false, cancel: false, revoke: true }],
      ["stranger, approved", ok, stranger, T0 + 2_000, { review: false, cancel: false, revoke: false }],
      ["reviewer, past the deadline", pending, reviewer(), expired, { review: false, cancel: false, revoke: false }],
      ["requester, window over", ok, requester, expired, { review: false, cancel: false, revoke: false }],
    ];
    for (const [name, r, rights, now, want] of table) {
      const got = allowedActions(r, rights, now);
      expect({ review: got.review.allowed, cancel: got.cancel.allowed, revoke: got.revoke.allowed }, name).toEqual(want);
      // What allowedActions refuses, the transition refuses with the same reason and code.
      const transitions = { review: review("APPROVED"), cancel: { kind: "cancel" as const }, revoke: { kind: "revoke" as const, reason: "" } };
      for (const action of ["review", "cancel", "revoke"] as const) {
        if (got[action].allowed) expect(() => applyTransition(r, transitions[action], rights, now), `${name}: ${action}`).not.toThrow();
        else expect(() => applyTransition(r, transitions[action], rights, now), `${name}: ${action}`).toThrow(expect.objectContaining({ code: got[action].code, message: got[action].reason }));
      }
    }
  });

  it("a second review by the same reviewer is refused as already_exists", () => {
    const first = applyTransition(born({ approve: 2 }).next, review("APPROVED"), reviewer(), T0 + 1);
    expect(() => applyTransition(first.next, review("APPROVED"), reviewer(), T0 + 2)).toThrow(expect.objectContaining({ code: "already_exists" }));
  });

  it("cancel and revoke: their states, audit events, notices; a revoke removes the grant", () => {
    const c = applyTransition(born().next, { kind: "cancel" }, requester, T0 + 1);
    expect([c.next.spec.state, c.audit.map((e) => e.event), c.notice?.event, c.grant]).toEqual(["CANCELLED", ["access_request.cancel"], "access_request.cancel", null]);
    const r = applyTransition(approved(), { kind: "revoke", reason: "done" }, admin, T0 + 2_000);
    expect([r.next.spec.state, r.audit.map((e) => e.event), r.notice, r.grant]).toEqual(["REVOKED", ["access_request.revoke", "access_grant.end"], { event: "access_request.revoke", actor: "root", reason: "done" }, { remove: true }]);
    expect(r.next.spec.resolution).toEqual({ by: "root", at: new Date(T0 + 2_000).toISOString(), reason: "done" });
  });

  it("expire records an end that came with time, once: a deadline passed, a window ended; nothing to record otherwise", () => {
    const sys: Rights = { actor: "azgate", requester: false, review: { allowed: false, reason: "" }, admin: false };
    expect(() => applyTransition(born().next, { kind: "expire" }, sys, T0 + HOUR - 1)).toThrow(expect.objectContaining({ code: "bad_parameter" }));
    const e = applyTransition(born().next, { kind: "expire" }, sys, T0 + HOUR);
    expect([e.next.spec.state, e.audit.map((x) => [x.event, x.why]), e.notice?.event]).toEqual(["EXPIRED", [["access_request.expire", "not reviewed before its deadline"]], "access_request.expire"]);
    expect(() => applyTransition(e.next, { kind: "expire" }, sys, T0 + 2 * HOUR)).toThrow();
    const w = applyTransition(approved(), { kind: "expire" }, sys, T0 + 1_000 + HOUR);
    expect(w.audit.map((x) => [x.event, x.why])).toEqual([["access_grant.end", "window ended"]]);
  });

  it("a rule decides at creation as a review would, by azgate, naming the rule", () => {
    const sys: Rights = { actor: "azgate", requester: false, review: { allowed: false, reason: "" }, admin: false };
    const s = applyTransition(born().next, { kind: "rule", rule: "audits", verdict: "APPROVED", reason: "read-only audits" }, sys, T0);
    expect(s.next.spec.resolution).toMatchObject({ by: "rule/audits", reason: "read-only audits" });
    expect(s.audit[0]).toMatchObject({ event: "access_request.review", user: "azgate", rule: "audits", automatic: true });
    expect(s.notice).toMatchObject({ event: "access_request.approve", actor: "rule audits" });
  });

  it("a user's deletion cancels a pending request and revokes an approved one, removing its grant", () => {
    const by: Rights = { actor: "root", requester: false, review: { allowed: false, reason: "" }, admin: false };
    expect(applyTransition(born().next, { kind: "user_deleted" }, by, T0 + 1).next.spec.state).toBe("CANCELLED");
    const r = applyTransition(approved(), { kind: "user_deleted" }, by, T0 + 2_000);
    expect([r.next.spec.state, r.grant, r.audit.map((e) => e.event)]).toEqual(["REVOKED", { remove: true }, ["access_request.revoke", "access_grant.end"]]);
  });
});
