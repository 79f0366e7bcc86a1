/**
 * The rules of access requests (src/rbac/requests.ts) and the request's state
 * over time (src/resources/access-request.ts), pure, with the role syntax
 * that feeds them.
 */
import { describe, expect, it } from "vitest";
import { mayReview, MAX_GRANT_MS, requestTerms, reviewOutcome, ruleVars, thresholdsCounting } from "../src/rbac/requests.ts";
import { compilePredicate } from "../src/rbac/predicate.ts";
import { decidingRule, inSchedule, type AccessRule } from "../src/resources/access-rule.ts";
import { activeGrant, effectiveState, type AccessGrant, type AccessRequest } from "../src/resources/access-request.ts";
import type { Role } from "../src/rbac/types.ts";
import { parseResources } from "../src/resources/parse.ts";

const MI = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities";
const READER = `${MI}/reader`;
const CONTRIB = `${MI}/contributor`;
const role = (name: string, spec: Role["spec"]): Role => ({ kind: "role", version: "v7", metadata: { name }, spec });
const none = () => undefined;

describe("who may request what", () => {
  it("an identity named in request.azure_identities (patterns), on the roles' terms", () => {
    const roles = [role("req", { allow: { request: { azure_identities: [`${MI}/r*`], max_duration: "2h", reason: { mode: "required" }, ticket: { mode: "required", pattern: "^INC-[0-9]+$" }, suggested_reviewers: ["bob"] } } })];
    const t = requestTerms(roles, {}, READER, none);
    expect(t).toMatchObject({ allowed: true, maxDurationMs: 2 * 3_600_000, reasonRequired: true, ticket: { required: true, pattern: "^INC-[0-9]+$" }, approvals: 1, denials: 1, suggestedReviewers: ["bob"], grantRoles: [] });
    expect(requestTerms(roles, {}, CONTRIB, none)).toMatchObject({ allowed: false, reason: `no role lets you request Azure identity "${CONTRIB}"` });
  });

  it("an identity a requestable role allows (Teleport's request.roles), whose azure_api rules then come with the grant", () => {
    const target = role("prod-contributor", { allow: { app_labels: { "*": "*" }, azure_identities: [CONTRIB] } });
    const roles = [role("req", { allow: { request: { roles: ["prod-contributor"], thresholds: [{ approve: 2, deny: 1 }] } } })];
    const t = requestTerms(roles, {}, CONTRIB, (n) => (n === "prod-contributor" ? target : undefined));
    expect(t).toMatchObject({ allowed: true, grantRoles: ["prod-contributor"], approvals: 2, denials: 1, maxDurationMs: 3_600_000 });
  });

  it("deny wins; no grant is longer than the global cap; a trait cannot turn an allow into a pattern", () => {
    const roles = [role("req", { allow: { request: { azure_identities: [`${MI}/*`], max_duration: "720h" } } }), role("no", { deny: { request: { azure_identities: [READER] } } })];
    expect(requestTerms(roles, {}, READER, none)).toMatchObject({ allowed: false, reason: `role "no" denies requesting Azure identity "${READER}"` });
    expect(requestTerms(roles, {}, CONTRIB, none).maxDurationMs).toBe(MAX_GRANT_MS);
    const byTrait = [role("t", { allow: { request: { azure_identities: [`${MI}/{{external.team}}`] } } })];
    expect(requestTerms(byTrait, { team: ["*"] }, READER, none).allowed).toBe(false);
    expect(requestTerms(byTrait, { team: ["reader"] }, READER, none).allowed).toBe(true);
  });
});

describe("who may review", () => {
  const reviewer = [role("rev", { allow: { review_requests: { azure_identities: [`${MI}/*`] } } })];
  const request = { user: "alice", azure_identity: READER };
  it("a reviewer role covering the identity; never the requester; deny wins", () => {
    expect(mayReview("bob", reviewer, {}, request, none).allowed).toBe(true);
    expect(mayReview("alice", reviewer, {}, request, none)).toEqual({ allowed: false, reason: "you cannot review your own request" });
    expect(mayReview("bob", [], {}, request, none).allowed).toBe(false);
    const denied = [...reviewer, role("not-reader", { deny: { review_requests: { azure_identities: [READER] } } })];
    expect(mayReview("bob", denied, {}, request, none)).toMatchObject({ allowed: false, reason: expect.stringContaining('role "not-reader"') });
  });

  it("through review_requests.roles: a role that allows the identity", () => {
    const target = role("readers", { allow: { azure_identities: [READER] } });
    const byRole = [role("rev", { allow: { review_requests: { roles: ["readers"] } } })];
    expect(mayReview("bob", byRole, {}, request, (n) => (n === "readers" ? target : undefined)).allowed).toBe(true);
    expect(mayReview("bob", byRole, {}, { user: "alice", azure_identity: CONTRIB }, (n) => (n === "readers" ? target : undefined)).allowed).toBe(false);
  });
});

describe("a request over time", () => {
  const t0 = Date.parse("2026-12-01T08:00:00Z");
  const base: AccessRequest = {
    kind: "access_request",
    version: "v3",
    metadata: { name: "00000000-0000-4000-8000-000000000001" },
    spec: { user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity: READER, roles: [], reason: "r", start: new Date(t0).toISOString(), duration_ms: 600_000, state: "PENDING", reviews: [], thresholds: { approve: 1, deny: 1 }, suggested_reviewers: [], created: new Date(t0).toISOString(), review_deadline: new Date(t0 + 3_600_000).toISOString() },
  };
  it("a pending request expires unreviewed at its deadline; an approved one when its window ends", () => {
    expect(effectiveState(base, t0 + 3_599_999)).toBe("PENDING");
    expect(effectiveState(base, t0 + 3_600_000)).toBe("EXPIRED");
    const approved: AccessRequest = { ...base, spec: { ...base.spec, state: "APPROVED", grant: { not_before: new Date(t0).toISOString(), not_after: new Date(t0 + 600_000).toISOString() } } };
    expect(effectiveState(approved, t0 + 599_999)).toBe("APPROVED");
    expect(effectiveState(approved, t0 + 600_000)).toBe("EXPIRED");
    expect(effectiveState({ ...base, spec: { ...base.spec, state: "DENIED" } }, t0 + 10 * 3_600_000)).toBe("DENIED");
  });

  it("a grant covers its user record, app and identity, inside its window only; a grant without a user id covers nobody", () => {
    const g: AccessGrant = { kind: "access_grant", version: "v1", metadata: { name: "g" }, spec: { request_id: "g", user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity: READER, roles: [], not_before: new Date(t0).toISOString(), not_after: new Date(t0 + 600_000).toISOString() } };
    const who = { user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity: READER.toUpperCase() };
    expect(activeGrant([g], who, t0)).toBe(g);
    expect(activeGrant([g], who, t0 - 1)).toBeUndefined();
    expect(activeGrant([g], who, t0 + 600_000)).toBeUndefined();
    expect(activeGrant([g], { ...who, user: "mallory" }, t0)).toBeUndefined();
    expect(activeGrant([g], { ...who, app: "other" }, t0)).toBeUndefined();
    // A user re-created under the same name is another record.
    expect(activeGrant([g], { ...who, user_id: "id-alice-2" }, t0)).toBeUndefined();
    const legacy = { ...g, spec: { ...g.spec, user_id: "" } };
    expect(activeGrant([legacy], { ...who, user_id: "" }, t0)).toBeUndefined();
  });
});

describe("role syntax", () => {
  const load = (spec: string) => parseResources(`kind: role\nversion: v7\nmetadata: {name: r}\nspec:\n${spec}`, "role.yaml");
  it("Teleport's request and review_requests fields load; azgate's azure_identities and ticket too", () => {
    const { resources, warnings } = load(`  allow:\n    request:\n      roles: [prod]\n      search_as_roles: [prod]\n      azure_identities: ["${MI}/*"]\n      max_duration: 1h\n      suggested_reviewers: [bob]\n      thresholds: [{approve: 2, deny: 1}]\n      reason: {mode: required, prompt: "Why?"}\n      ticket: {mode: required, pattern: "^INC-[0-9]+$"}\n      claims_to_roles: []\n    review_requests:\n      roles: [prod]\n      preview_as_roles: [prod]\n  options:\n    request_prompt: "Ticket?"\n`);
    expect((resources[0] as Role).spec.allow?.request?.thresholds).toEqual([{ approve: 2, deny: 1 }]);
    expect(warnings).toEqual([]);
  });
  it.each([
    [`  allow:\n    request:\n      thresholds: [{approve: 2, filter: 'contains(reviewer.role, "x")'}]\n`, /thresholds\[0\]\.filter: unknown name reviewer\.role/],
    [`  allow:\n    review_requests:\n      roles: [x]\n      where: 'request.reason'\n`, /review_requests\.where: request\.reason is not true or false/],
    [`  deny:\n    review_requests:\n      where: 'regexp.match(request.roles, "(")'\n`, /review_requests\.where: invalid regular expression/],
    [`  allow:\n    request:\n      ticket: {pattern: "(unclosed"}\n`, /ticket\.pattern: invalid regular expression/],
    [`  allow:\n    request:\n      azure_identities: ["reader"]\n`, /not an Azure identity resource ID pattern/],
    [`  allow:\n    request:\n      max_duration: forever\n`, /is not a duration/],
  ])("refuses what it cannot honour, naming the field (%#)", (spec, message) => {
    expect(() => load(spec)).toThrow(message);
  });
});

describe("Teleport's predicates: threshold filters and review_requests.where", () => {
  const reviewerOf = (name: string, roleNames: string[], traits: Record<string, string[]> = {}) => ({ name, roles: roleNames.map((n) => role(n, {})), traits });
  const subject = { user: "alice", app: "azure-cli", azure_identity: READER, roles: ["prod"], reason: "incident 7", ticket: "INC-7", suggested_reviewers: [] };

  it("reads the request, the reviewer and the review as Teleport names them; ==, !=, &&, ||, !, equals, contains, regexp.match", () => {
    const vars = { "reviewer.name": "bob", "reviewer.roles": ["reviewer", "sre"], "reviewer.traits": { team: ["sre"] }, "request.reason": "incident 7", "request.roles": ["db-writer-us-east-1"], "request.azure_identity": READER, "request.azure_identities": [READER], "review.reason": "" };
    const holds = (text: string) => compilePredicate(text).test(vars);
    expect(holds('contains(reviewer.roles, "sre") && !equals(request.reason, "")')).toBe(true);
    expect(holds('contains(reviewer.traits["team"], "sre")')).toBe(true);
    expect(holds('contains(reviewer.traits.team, "dev")')).toBe(false);
    expect(holds('contains(reviewer.traits["nope"], "x")')).toBe(false);
    expect(holds('regexp.match(request.roles, "^db-writer-us-(east|west)-[0-9]+$")')).toBe(true);
    expect(holds('request.reason == "" || reviewer.name != "bob"')).toBe(false);
    expect(holds('!(request.reason == "incident 7")')).toBe(false);
    expect(holds('review.reason == ""')).toBe(true);
    expect(holds(`contains(request.azure_identities, "${READER}")`)).toBe(true);
  });

  it.each([
    ['contains(reviewer.roles, "x"', /expected \)/],
    ["startsWith(request.reason, \"x\")", /unknown function startsWith/],
    ['contains("x", reviewer.roles)', /contains needs a string second/],
    ['request.roles == "x" &&', /unexpected end/],
    ['equals(request.reason, "x") "y"', /unexpected "y"/],
    ['"unterminated', /unterminated string/],
    ['reviewer.roles["x"]', /cannot be indexed/],
  ])("refuses %s, saying why", (text, message) => {
    expect(() => compilePredicate(text)).toThrow(message);
  });

  it("a review counts toward the thresholds whose filter holds; all thresholds must be met to approve, any one denies", () => {
    const thresholds = [{ approve: 2, deny: 1, filter: 'contains(reviewer.roles, "senior")' }, { approve: 1, deny: 2 }];
    const senior = thresholdsCounting(thresholds, reviewerOf("bob", ["reviewer", "senior"]), subject, "ok");
    const junior = thresholdsCounting(thresholds, reviewerOf("dave", ["reviewer"]), subject, "ok");
    expect([senior, junior]).toEqual([[0, 1], [1]]);
    const review = (state: "APPROVED" | "DENIED", counts_for: number[]) => ({ state, counts_for });
    expect(reviewOutcome(thresholds, [review("APPROVED", senior)])).toBe("PENDING");
    // A junior approval meets the second threshold, never the first's two seniors.
    expect(reviewOutcome(thresholds, [review("APPROVED", senior), review("APPROVED", junior)])).toBe("PENDING");
    expect(reviewOutcome(thresholds, [review("APPROVED", senior), review("APPROVED", junior), review("APPROVED", senior)])).toBe("APPROVED");
    // One senior denial ends it (the first threshold denies at one); a junior's counts only toward the second (two).
    expect(reviewOutcome(thresholds, [review("DENIED", junior)])).toBe("PENDING");
    expect(reviewOutcome(thresholds, [review("DENIED", senior)])).toBe("DENIED");
    // Reviews stored before filters existed count toward every threshold.
    expect(reviewOutcome([{ approve: 1, deny: 1 }], [{ state: "APPROVED" }])).toBe("APPROVED");
  });

  it("review_requests.where narrows what a reviewer may review; a deny with only where refuses what it matches", () => {
    const lookup = () => undefined;
    const allow = [role("rev", { allow: { review_requests: { azure_identities: [`${MI}/*`], where: '!equals(request.reason, "")' } } })];
    expect(mayReview("bob", allow, {}, subject, lookup).allowed).toBe(true);
    expect(mayReview("bob", allow, {}, { ...subject, reason: "" }, lookup)).toMatchObject({ allowed: false, reason: expect.stringContaining("no role lets you review") });
    const denyTickets = [...allow, role("no-inc", { deny: { review_requests: { where: 'regexp.match(request.ticket, "^INC-")' } } })];
    expect(mayReview("bob", denyTickets, {}, subject, lookup)).toMatchObject({ allowed: false, reason: expect.stringContaining('role "no-inc" denies') });
    expect(mayReview("bob", denyTickets, {}, { ...subject, ticket: "CHG-1" }, lookup).allowed).toBe(true);
    // The reviewer's own traits: only the on-call team reviews.
    const onCall = [role("rev", { allow: { review_requests: { azure_identities: [`${MI}/*`], where: 'contains(reviewer.traits["team"], "oncall")' } } })];
    expect(mayReview("bob", onCall, { team: ["oncall"] }, subject, lookup).allowed).toBe(true);
    expect(mayReview("bob", onCall, { team: ["dev"] }, subject, lookup).allowed).toBe(false);
  });

  it("the request's terms carry every threshold with its filter; the summary is the strictest", () => {
    const roles = [role("a", { allow: { request: { azure_identities: [`${MI}/*`], thresholds: [{ approve: 2, deny: 2, filter: 'contains(reviewer.roles, "senior")' }] } } }), role("b", { allow: { request: { azure_identities: [READER], thresholds: [{ approve: 1, deny: 1 }] } } })];
    expect(requestTerms(roles, {}, READER, none)).toMatchObject({ approvals: 2, denials: 1, thresholds: [{ approve: 2, deny: 2, filter: 'contains(reviewer.roles, "senior")' }, { approve: 1, deny: 1 }] });
    expect(requestTerms([role("c", { allow: { request: { azure_identities: [READER] } } })], {}, READER, none).thresholds).toEqual([{ approve: 1, deny: 1 }]);
  });
});

describe("auto-review rules (kind access_rule)", () => {
  const load = (spec: string) => parseResources(`kind: access_rule\nversion: v1\nmetadata: {name: r}\nspec:\n${spec}`, "rule.yaml").resources[0] as AccessRule;
  const rule = (name: string, decision: "APPROVED" | "DENIED", condition: string, schedule?: string) => ({ ...load(`  condition: '${condition}'\n  decision: ${decision}\n${schedule ? `  schedule: ${schedule}\n` : ""}`), metadata: { name } });
  const subject = { user: "alice", app: "azure-cli", azure_identity: READER, roles: [], reason: "incident 7", ticket: "", suggested_reviewers: [] };
  const vars = (traits: Record<string, string[]> = {}) => ruleVars(subject, { roles: [role("requester", {})], traits });
  const monday10 = new Date("2026-11-30T09:00:00Z"); // 10:00 in Berlin, a Monday

  it("refuses a rule that reads a reviewer (there is none), a bad timezone or hours, naming the field", () => {
    expect(() => load(`  condition: 'contains(reviewer.roles, "x")'\n  decision: APPROVED\n`)).toThrow(/spec\.condition: reviewer\.roles cannot be used here \(only request\.\*, user\.\*\)/);
    expect(() => load(`  condition: 'request.user == "a"'\n  decision: MAYBE\n`)).toThrow(/decision must be APPROVED or DENIED/);
    expect(() => load(`  condition: 'request.user == "a"'\n  decision: APPROVED\n  schedule: {timezone: Mars/Olympus}\n`)).toThrow(/spec\.schedule\.timezone: timezone must be an IANA name/);
    expect(() => load(`  condition: 'request.user == "a"'\n  decision: APPROVED\n  schedule: {timezone: UTC, hours: "8-18"}\n`)).toThrow(/hours must be "HH:MM-HH:MM"/);
  });

  it("office hours in the rule's timezone, weekdays, and shifts that run past midnight", () => {
    const office = { timezone: "Europe/Berlin", days: ["Mon", "Tue", "Wed", "Thu", "Fri"] as ("Mon" | "Tue" | "Wed" | "Thu" | "Fri")[], hours: "08:00-18:00" };
    expect(inSchedule(office, monday10)).toBe(true);
    expect(inSchedule(office, new Date("2026-11-30T17:00:00Z"))).toBe(false); // 18:00 Berlin: the end is excluded
    expect(inSchedule(office, new Date("2026-11-30T06:59:00Z"))).toBe(false); // 07:59 Berlin
    expect(inSchedule(office, new Date("2026-12-05T09:00:00Z"))).toBe(false); // Saturday
    const night = { timezone: "UTC", days: ["Fri"] as "Fri"[], hours: "22:00-06:00" };
    expect(inSchedule(night, new Date("2026-12-04T23:00:00Z"))).toBe(true); // Friday night
    expect(inSchedule(night, new Date("2026-12-05T05:59:00Z"))).toBe(true); // Saturday morning, Friday's shift
    expect(inSchedule(night, new Date("2026-12-05T23:00:00Z"))).toBe(false); // Saturday night
    expect(inSchedule(undefined, monday10)).toBe(true);
  });

  /** A request made at `at` for a window of `minutes` starting then (or `startIn` minutes later). */
  const times = (at: Date, minutes = 60, startIn = 0) => ({ now: at.getTime(), window: { from: at.getTime() + startIn * 60_000, to: at.getTime() + (startIn + minutes) * 60_000 } });

  it("the rule that decides: its condition over the request and requester, in its schedule; deny wins", () => {
    const approveReader = rule("approve-reader", "APPROVED", `request.azure_identity == "${READER}" && contains(user.traits["team"], "sre")`, "{timezone: Europe/Berlin, days: [Mon, Tue, Wed, Thu, Fri], hours: \"08:00-18:00\"}");
    expect(decidingRule([approveReader], vars({ team: ["sre"] }), times(monday10))?.metadata.name).toBe("approve-reader");
    expect(decidingRule([approveReader], vars({ team: ["dev"] }), times(monday10))).toBeUndefined();
    expect(decidingRule([approveReader], vars({ team: ["sre"] }), times(new Date("2026-12-05T09:00:00Z")))).toBeUndefined();
    const denyIncidents = rule("deny-incidents", "DENIED", 'regexp.match(request.reason, "^incident")');
    expect(decidingRule([approveReader, denyIncidents], vars({ team: ["sre"] }), times(monday10))?.metadata.name).toBe("deny-incidents");
  });

  it("a schedule is read over the grant window: an approval must fit inside it whole, a denial applies if it touches it (the attack: asked in office hours for a window after them)", () => {
    const approveReader = rule("approve-reader", "APPROVED", `request.azure_identity == "${READER}"`, "{timezone: Europe/Berlin, days: [Mon, Tue, Wed, Thu, Fri], hours: \"08:00-18:00\"}");
    const sre = vars({ team: ["sre"] });
    const monday1630 = new Date("2026-11-30T15:30:00Z"); // 16:30 in Berlin
    expect(decidingRule([approveReader], sre, times(monday1630, 90))?.metadata.name).toBe("approve-reader"); // ends 18:00, end excluded
    expect(decidingRule([approveReader], sre, times(monday1630, 91))).toBeUndefined(); // one minute past the end
    expect(decidingRule([approveReader], sre, times(monday1630, 60, 120))).toBeUndefined(); // asked in office hours for 18:30-19:30
    expect(decidingRule([approveReader], sre, times(new Date("2026-11-30T05:00:00Z"), 60, 120))?.metadata.name).toBe("approve-reader"); // asked at 06:00 for 08:00-09:00
    // Friday 17:00 for 24 hours runs into Saturday.
    expect(decidingRule([approveReader], sre, times(new Date("2026-12-04T16:00:00Z"), 24 * 60))).toBeUndefined();
    // A window with a part in a DST change (Berlin, 29 March 2026 02:00 -> 03:00): every minute is read in local time.
    const night = rule("night", "APPROVED", `request.user == "alice"`, '{timezone: Europe/Berlin, hours: "01:00-02:30"}');
    expect(decidingRule([night], sre, times(new Date("2026-03-29T00:00:00Z"), 59))?.metadata.name).toBe("night"); // 01:00-01:59 CET
    expect(decidingRule([night], sre, times(new Date("2026-03-29T00:00:00Z"), 61))).toBeUndefined(); // 01:00 CET is followed by 03:00 CEST
    // A denial whose schedule touches the window or the moment of asking applies.
    const noWeekends = rule("no-weekends", "DENIED", `request.user == "alice"`, "{timezone: UTC, days: [Sat, Sun]}");
    expect(decidingRule([noWeekends, approveReader], sre, times(new Date("2026-12-04T15:00:00Z"), 60, 24 * 60))?.metadata.name).toBe("no-weekends"); // Friday for Saturday
    expect(decidingRule([noWeekends], sre, times(new Date("2026-12-04T15:00:00Z"), 60))).toBeUndefined(); // Friday for Friday
  });
});

describe("ends that come with time (recordEndings)", () => {
  it("records a pending request's expiry and a grant's end once each, whoever sweeps, as the clock moves", async () => {
    const { FakeClock } = await import("./helpers/fake-clock.ts");
    const clock = new FakeClock();
    const { FileBackend } = await import("../src/storage/file.ts");
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const { KEYS } = await import("../src/proxy/keys.ts");
    const { recordEndings } = await import("../src/proxy/access-requests.ts");
    const backend = await FileBackend.open(mkdtempSync(path.join(tmpdir(), "azgate-endings-")), clock);
    const events: Record<string, unknown>[] = [];
    const audit = { emit: async (e: Record<string, unknown>) => void events.push(e) };
    const t0 = clock.now();
    const req = (id: string, state: AccessRequest["spec"]["state"], extra: Partial<AccessRequest["spec"]> = {}): AccessRequest => ({
      kind: "access_request",
      version: "v3",
      metadata: { name: id },
      spec: { user: "alice", user_id: "id-alice", app: "azure-cli", azure_identity: READER, roles: [], reason: "r", start: new Date(t0).toISOString(), duration_ms: 600_000, state, reviews: [], thresholds: { approve: 1, deny: 1 }, suggested_reviewers: [], created: new Date(t0).toISOString(), review_deadline: new Date(t0 + 3_600_000).toISOString(), ...extra },
    });
    const pending = "00000000-0000-4000-8000-00000000000a";
    const approved = "00000000-0000-4000-8000-00000000000b";
    await backend.put(KEYS.accessRequest(pending), req(pending, "PENDING"));
    await backend.put(KEYS.accessRequest(approved), req(approved, "APPROVED", { grant: { not_before: new Date(t0).toISOString(), not_after: new Date(t0 + 600_000).toISOString() } }));
    const deps = { backend, audit, clock } as unknown as Parameters<typeof recordEndings>[0];

    // Nothing has ended yet.
    clock.advance(599_999);
    expect(await recordEndings(deps)).toBe(0);
    // The grant's window ends first; then the review deadline passes.
    clock.advance(1);
    expect(await recordEndings(deps)).toBe(1);
    expect(events).toEqual([expect.objectContaining({ event: "access_grant.end", access_request_id: approved, user: "alice", why: "window ended" })]);
    clock.advance(3_000_000);
    expect(await recordEndings(deps)).toBe(1);
    expect(events[1]).toMatchObject({ event: "access_request.expire", access_request_id: pending });
    // Two sweepers at once (two replicas): an end is recorded once.
    const third = "00000000-0000-4000-8000-00000000000c";
    await backend.put(KEYS.accessRequest(third), req(third, "APPROVED", { grant: { not_before: new Date(t0).toISOString(), not_after: new Date(t0 + 600_000).toISOString() } }));
    clock.advance(3_600_000);
    expect((await Promise.all([recordEndings(deps), recordEndings(deps)])).reduce((a, b) => a + b)).toBe(1);
    expect(events).toHaveLength(3);
    expect(await recordEndings(deps)).toBe(0);
    expect((await backend.get<AccessRequest>(KEYS.accessRequest(pending)))!.value.spec.state).toBe("EXPIRED");
    await backend.close();
  });
});
