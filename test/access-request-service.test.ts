/**
 * The access-request service on the proxy's real state (file backend, audit
 * log), called as the API calls it: what one user can make reviewers read,
 * who a request asks to review, and what time does to a request. The state
 * runs by a fake clock (helpers/fake-clock.ts) that tests move: a deadline is
 * passed by moving it, never by waiting.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import type { Caller } from "../src/proxy/caller.ts";
import type { App, Role } from "../src/rbac/types.ts";
import { cancelRequest, createRequest, getRequest, MAX_PENDING_PER_USER, recordEndings, reviewRequest } from "../src/proxy/access-requests.ts";
import { dispatchDue } from "../src/proxy/notify/outbox.ts";
import { parseResources } from "../src/resources/parse.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { startHttpReceiver } from "./helpers/receivers.ts";
import { KEYS } from "../src/proxy/keys.ts";
import type { AppRegistry, AppServer } from "../src/proxy/registry.ts";
import { TOTP, Secret } from "otpauth";
import { tempDir } from "./helpers/azgate.ts";

const READER = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const requester: Role = { kind: "role", version: "v7", metadata: { name: "requester" }, spec: { allow: { app_labels: { "*": "*" }, request: { azure_identities: [READER], suggested_reviewers: ["lead"] } } } };
const alice = { identity: { kind: "user" }, name: "alice", user: { metadata: { name: "alice" }, spec: { roles: ["requester"], traits: {} }, status: { id: "id-alice", generation: 0 } }, roles: [requester], traits: {} } as unknown as Caller;
/** The app as an agent serves it (the registry's view): requests are judged against it. */
const served = (app: string): App[] => (app === "azure-cli" ? [{ name: "azure-cli", labels: { env: "prod" } }] : []);

let ctx: ProxyContext;
let close: () => Promise<void>;
/** The state's one clock. */
const clock = new FakeClock();
beforeAll(async () => {
  ({ ctx, close } = await openState(tempDir("azgate-ars-"), { clusterName: "t", settings: settingsFrom(configSchema.parse({})), purpose: "request service tests", clock }));
});
afterAll(() => close?.());

describe("creating access requests", () => {
  it(`one user has at most ${MAX_PENDING_PER_USER} pending requests (each notifies reviewers); cancelling one makes room`, async () => {
    const made = [];
    for (let i = 0; i < MAX_PENDING_PER_USER; i++) made.push(await createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: `r${i}` }, served));
    await expect(createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: "one more" }, served)).rejects.toMatchObject({ code: "rate_limited", message: expect.stringContaining(`you have ${MAX_PENDING_PER_USER} pending requests`) });
    expect((await ctx.audit.search({ event: "access_request.create", user: "alice" })).filter((e) => e.success === false)).toEqual([expect.objectContaining({ error_code: "rate_limited", azure_identity: READER, success: false })]);
    expect(await ctx.backend.list(KEYS.accessRequests)).toHaveLength(MAX_PENDING_PER_USER);
    await cancelRequest(ctx, alice, made[0].metadata.name);
    expect((await createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: "room again" }, served)).spec.state).toBe("PENDING");
    for (const r of made.slice(1)) await cancelRequest(ctx, alice, r.metadata.name);
  });

  it("--reviewers adds to the roles' suggested reviewers; naming yourself or a bad name is refused", async () => {
    const r = await createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: "x", reviewers: ["bob", "lead"] }, served);
    expect(r.spec.suggested_reviewers).toEqual(["lead", "bob"]);
    await cancelRequest(ctx, alice, r.metadata.name);
    await expect(createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reviewers: ["alice"] }, served)).rejects.toThrow("you cannot review your own request");
    await expect(createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reviewers: ["bob\nINJECTED"] }, served)).rejects.toThrow("reviewers must be at most 10 user names");
  });

  it("a ticket is matched against the role's pattern in linear time (RE2, util/regex.ts): a pattern that backtracks answers at once", async () => {
    // `^(a+)+$` against forty `a`s and a `b` is 2^40 steps for a JavaScript RegExp: the requester would have stalled the proxy.
    const ticketed: Role = { ...requester, metadata: { name: "ticketed" }, spec: { allow: { ...requester.spec.allow, request: { ...requester.spec.allow!.request, ticket: { mode: "required", pattern: "^(a+)+$" } } } } };
    const carol = { ...alice, name: "carol", user: { ...alice.user, metadata: { name: "carol" } }, roles: [ticketed] } as unknown as Caller;
    await expect(createRequest(ctx, carol, { app: "azure-cli", azure_identity: READER, reason: "x", ticket: "a".repeat(40) + "b" }, served)).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("does not match ^(a+)+$") });
    const made = await createRequest(ctx, carol, { app: "azure-cli", azure_identity: READER, reason: "x", ticket: "aaaa" }, served);
    expect(made.spec.ticket).toBe("aaaa");
    await cancelRequest(ctx, carol, made.metadata.name);
  });
});

describe("the app a request names (reviewers read it in chat and mail)", () => {
  // A role that offers the request but matches no app by itself: a grant of it would open no server.
  const offers: Role = { kind: "role", version: "v7", metadata: { name: "offers-reader" }, spec: { allow: { request: { azure_identities: [READER] } } } };
  const carol = { identity: { kind: "user" }, name: "carol", user: { metadata: { name: "carol" }, spec: { roles: ["offers-reader"], traits: {} }, status: { id: "id-carol", generation: 0 } }, roles: [offers], traits: {} } as unknown as Caller;
  const refusals = async (user: string) => (await ctx.audit.search({ event: "access_request.create", user })).filter((e) => e.success === false);

  it("an app name written to forge a notification (blank lines, a link, a mention) is refused and audited; nothing is stored or sent", async () => {
    const before = (await ctx.backend.list(KEYS.accessRequests)).length;
    const hostile = "azure-cli\n\n<!channel> [Approve now](https://evil.example/approve) @here";
    await expect(createRequest(ctx, alice, { app: hostile, azure_identity: READER, reason: "x" }, served)).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("is not an app name") });
    // Printable, and still not an app name.
    await expect(createRequest(ctx, alice, { app: "azure-cli [Approve](https://evil.example)", azure_identity: READER, reason: "x" }, served)).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("is not an app name") });
    expect((await refusals("alice")).slice(-2)).toEqual([
      expect.objectContaining({ app: hostile, success: false, error_code: "bad_parameter", reason: expect.stringContaining("is not an app name") }),
      expect.objectContaining({ app: "azure-cli [Approve](https://evil.example)", success: false, error_code: "bad_parameter", reason: expect.stringContaining("is not an app name") }),
    ]);
    expect(await ctx.backend.list(KEYS.accessRequests)).toHaveLength(before);
    expect(await ctx.backend.list(KEYS.notifications)).toEqual([]);
  });

  it("an app no agent serves is refused (not_found), and one whose labels the requester's roles do not cover (access_denied), audited; a served app they cover is taken", async () => {
    await expect(createRequest(ctx, alice, { app: "nobody-serves-this", azure_identity: READER, reason: "x" }, served)).rejects.toMatchObject({ code: "not_found", message: 'no agent serves app "nobody-serves-this" right now; azgate apps ls shows the apps that are up' });
    expect((await refusals("alice")).at(-1)).toMatchObject({ app: "nobody-serves-this", error_code: "not_found" });
    await expect(createRequest(ctx, carol, { app: "azure-cli", azure_identity: READER, reason: "x" }, served)).rejects.toMatchObject({ code: "access_denied", message: expect.stringContaining('would not cover app "azure-cli"') });
    expect((await refusals("carol")).at(-1)).toMatchObject({ app: "azure-cli", error_code: "access_denied" });
    const made = await createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: "x" }, served);
    expect(made.spec.app).toBe("azure-cli");
    await cancelRequest(ctx, alice, made.metadata.name);
  });
});

describe("a role that asks reviewers for an authenticator code (options.review_mfa)", () => {
  const reviewerRole: Role = { kind: "role", version: "v7", metadata: { name: "careful-reviewer" }, spec: { allow: { review_requests: { azure_identities: [READER] } }, options: { review_mfa: true } } };
  const bob = { identity: { kind: "user" }, name: "bob", user: null, roles: [reviewerRole], traits: {} } as unknown as Caller;
  const sam = { ...bob, name: "sam" } as Caller;
  const secret = new Secret({ size: 20 }).base32;
  const totp = new TOTP({ secret: Secret.fromBase32(secret), digits: 6, period: 30 });

  it("refuses a review without the code, with a wrong one, or with one already used, audited; takes a fresh one", async () => {
    await ctx.backend.put(KEYS.userAuth("bob"), { password_hash: "x", totp_secret: secret });
    const first = await createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: "mfa 1" }, served);
    await expect(reviewRequest(ctx, bob, first.metadata.name, { state: "APPROVED", reason: "ok" })).rejects.toThrow('role "careful-reviewer" requires an authenticator code with each review: give the code (--otp CODE)');
    await expect(reviewRequest(ctx, bob, first.metadata.name, { state: "APPROVED", reason: "ok", otp: totp.generate({ timestamp: clock.now() - 10 * 60_000 }) })).rejects.toThrow("the code is wrong or already used");
    const code = totp.generate({ timestamp: clock.now() });
    expect((await reviewRequest(ctx, bob, first.metadata.name, { state: "APPROVED", reason: "ok", otp: code })).spec.state).toBe("APPROVED");
    const second = await createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: "mfa 2" }, served);
    await expect(reviewRequest(ctx, bob, second.metadata.name, { state: "APPROVED", reason: "ok", otp: code })).rejects.toThrow("the code is wrong or already used");
    const refusals = (await ctx.audit.search({ event: "access_request.review", user: "bob" })).filter((e) => e.success === false);
    expect(refusals.map((e) => e.access_request_id)).toEqual([first.metadata.name, first.metadata.name, second.metadata.name]);
    // A reviewer with no authenticator at azgate (an SSO user) cannot meet the role's demand.
    await expect(reviewRequest(ctx, sam, second.metadata.name, { state: "APPROVED", reason: "ok", otp: "123456" })).rejects.toThrow("you have no authenticator registered with azgate");
    expect((await reviewRequest(ctx, bob, second.metadata.name, { state: "DENIED", reason: "no", otp: totp.generate({ timestamp: clock.now() + 30_000 }) })).spec.state).toBe("DENIED");
  });
});

describe("what time does to a request (the state's clock, moved)", () => {
  const reviewer: Role = { kind: "role", version: "v7", metadata: { name: "reviewer" }, spec: { allow: { review_requests: { azure_identities: [READER] } } } };
  const bob = { identity: { kind: "user" }, name: "bob", user: null, roles: [reviewer], traits: {} } as unknown as Caller;

  it("a pending request nobody reviews expires at its deadline: reviews are refused, the expiry is audited once and reviewers hear of it", async () => {
    const hooks = await startHttpReceiver();
    try {
      for (const r of parseResources(`kind: notification_target\nversion: v1\nmetadata: {name: reviewers}\nspec: {type: slack, url: "${hooks.url("/hook")}"}\n`, "t.yaml").resources) await ctx.backend.put(KEYS.notificationTarget(r.metadata.name), r);
      const deps = { backend: ctx.backend, audit: ctx.audit, clock: ctx.clock, context: async () => ({ cluster: "t", proxyUrl: "https://proxy.example.com" }), allowPrivateAddresses: true }; // the receiver is on loopback
      const made = await createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: "nobody looks", request_ttl: "5s" }, served);
      await expect(createRequest(ctx, alice, { app: "azure-cli", azure_identity: READER, reason: "x", request_ttl: "4s" }, served)).rejects.toThrow("request_ttl must be from 5s to 7 days");
      expect(Date.parse(made.spec.review_deadline)).toBe(clock.now() + 5_000);
      expect(await dispatchDue(deps)).toBe(1);
      clock.advance(4_999);
      expect((await getRequest(ctx, alice, made.metadata.name)).spec.state).toBe("PENDING");
      expect(await recordEndings(ctx)).toBe(0);
      clock.advance(1);
      // The state reads EXPIRED at once, before any sweep writes it.
      expect((await getRequest(ctx, alice, made.metadata.name)).spec.state).toBe("EXPIRED");
      await expect(reviewRequest(ctx, bob, made.metadata.name, { state: "APPROVED" })).rejects.toThrow("is EXPIRED; only a PENDING request can be reviewed");
      // Two sweeps (two replicas, or two passes): recorded once.
      expect((await Promise.all([recordEndings(ctx), recordEndings(ctx)])).reduce((a, b) => a + b)).toBe(1);
      expect(await recordEndings(ctx)).toBe(0);
      const expired = (await ctx.audit.search({ event: "access_request.expire" })).filter((e) => e.access_request_id === made.metadata.name);
      expect(expired).toEqual([expect.objectContaining({ user: "alice", why: "not reviewed before its deadline" })]);
      expect(await dispatchDue(deps)).toBe(1);
      const heard = hooks.posts.map((p) => JSON.parse(p.body).attachments[0].fields.find((f: { title: string }) => f.title === "Request ID")?.value as string);
      expect(heard.every((v) => v.includes(made.metadata.name.slice(0, 8)))).toBe(true);
      expect(hooks.posts).toHaveLength(2);
      expect(hooks.posts[1].body).toContain("expired");
    } finally {
      await hooks.close();
      await ctx.backend.delete(KEYS.notificationTarget("reviewers"));
    }
  });
});
