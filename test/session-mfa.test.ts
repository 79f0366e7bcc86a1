/**
 * Per-session MFA (issue 36 part 2) and the CLI's browser steps, in process
 * (test/helpers/memory-cluster.ts: the real state, authorisation, audit and
 * agent forwarder against the emulator; a software authenticator answers as
 * the browser's would). A role with require_session_mfa refuses apps login
 * without a fresh passkey check (mfa_required, audited); with one, the
 * certificate lives a minute (in memory: the login's life) and carries the
 * check; a check counts once, for the session, user and identity it was
 * asked for; a role edited to ask refuses sessions already open on their
 * next request. The browser login ends in a certificate for the CLI's key.
 * The cluster's clock is moved (FakeClock), never waited for.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { SoftAuthenticator } from "./helpers/soft-authenticator.ts";
import { browserCheck, CONTRIB, ORIGIN, PASSKEY_ROLES, READER } from "./helpers/passkeys.ts";
import { relyingParty } from "../src/proxy/login.ts";
import { beginRegistration, finishRegistration } from "../src/proxy/webauthn.ts";
import { beginBrowserStep, finishBrowserStep, pickUpBrowserLogin, startBrowserCheck, startBrowserLogin } from "../src/proxy/browser-flows.ts";
import { MFA_DISK_CERT_MS } from "../src/proxy/apps.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import { x509 } from "../src/pki/x509.ts";
import { identityOf } from "../src/pki/certificate.ts";
import type { Caller } from "../src/proxy/caller.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import { createRequest, reviewRequest } from "../src/proxy/access-requests.ts";
import { servedApps } from "../src/proxy/registry.ts";
import { assertionOptions } from "../src/proxy/webauthn.ts";
import { userStamp } from "../src/proxy/users.ts";

const fx = useEmulator({ projectToken: true });
const GROUPS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const ROLES = PASSKEY_ROLES;

describe("per-session MFA", () => {
  let c: MemoryCluster;
  let agent: ReturnType<MemoryCluster["agent"]>;
  let users = 0;
  const rp = () => relyingParty(c.ctx, ORIGIN);
  const events = async (event: string, user: string): Promise<AuditEvent[]> => (await c.ctx.audit.search({ event })).filter((e) => e.user === user);

  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    await c.createRoles(ROLES);
    agent = c.agent();
  });
  // Each case starts with the agent alive on the cluster's clock (a case moves it).
  beforeEach(() => agent.heartbeat());
  afterAll(async () => c?.close());

  /** A signed-in user with a passkey. */
  async function person(roles = ["prod-mfa", "plain"]): Promise<{ name: string; caller: Caller; expires: Date; key: SoftAuthenticator }> {
    const name = `mfa${++users}`;
    const { caller, expires } = await c.signIn(name, roles);
    const key = await SoftAuthenticator.create();
    await finishRegistration(c.ctx, caller, rp(), key.register(await beginRegistration(c.ctx, caller, rp(), { password: `correct horse battery ${name}` }), ORIGIN), "key");
    return { name, caller, expires, key };
  }

  /** The CLI's check as the browser does it (helpers/passkeys.ts): the browser ends at the CLI's loopback with the code. */
  const check = async (caller: Caller, key: SoftAuthenticator, what: Record<string, string>, origin?: string) => {
    const done = await browserCheck(c, caller, key, what, origin);
    expect(done.next).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);
    return done;
  };

  it("refuses apps login without a fresh check (mfa_required, audited); with one the certificate lives a minute on disk, the login's life in memory, and serves", async () => {
    const p = await person();
    await expect(c.appSessionAs(p.caller, p.expires, READER)).rejects.toMatchObject({ code: "mfa_required", message: expect.stringContaining('role "prod-mfa" (require_session_mfa) asks for a fresh check') });
    expect((await events("app.session.denied", p.name)).at(-1)).toMatchObject({ error_code: "mfa_required", azure_identity: READER, success: false });
    // The role that does not ask: no check.
    await expect(c.appSessionAs(p.caller, p.expires, CONTRIB)).resolves.toBeDefined();

    const onDisk = await c.appSessionAs(p.caller, p.expires, READER, { mfa: await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER }) });
    // A certificate's end is in whole seconds.
    expect(new Date(onDisk.login.expires).getTime()).toBeLessThanOrEqual(c.clock.now() + MFA_DISK_CERT_MS);
    expect(new Date(onDisk.login.expires).getTime()).toBeGreaterThan(c.clock.now() + MFA_DISK_CERT_MS - 1_000);
    expect(onDisk.identity.mfa_verified).toBe(c.clock.date().toISOString());
    expect((await onDisk.request(GROUPS)).status).toBe(200);
    const inMemory = await c.appSessionAs(p.caller, p.expires, READER, { mfa: await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER }), inMemory: true });
    expect(Math.abs(Date.parse(inMemory.login.expires) - p.expires.getTime())).toBeLessThan(1_000);
    expect(await events("app.session.start", p.name)).toEqual(expect.arrayContaining([expect.objectContaining({ azure_identity: READER, in_memory: true, mfa_verified: expect.any(String) })]));
    expect((await events("mfa.used", p.name)).map((e) => e.purpose)).toEqual(["session", "session"]);
    // A minute on: the disk one is past its end (the proxy refuses an expired certificate at the tunnel); the in-memory one serves.
    c.clock.advance(MFA_DISK_CERT_MS + 1_000);
    agent.heartbeat();
    expect(new x509.X509Certificate(onDisk.login.cert_pem).notAfter.getTime()).toBeLessThan(c.clock.now());
    expect((await inMemory.request(GROUPS)).status).toBe(200);
  });

  it("a check counts once, for the session, user and identity it was asked for: used twice, another login's, another identity's, a wrong secret, expired, a review's: all mfa_required, audited", async () => {
    const p = await person();
    const denied = async (mfa: unknown, reason: RegExp, caller = p.caller, who = p.name) => {
      await expect(c.appSessionAs(caller, p.expires, READER, { mfa: mfa as never })).rejects.toMatchObject({ code: "mfa_required", message: expect.stringMatching(reason) });
      expect((await events("app.session.denied", who)).at(-1)).toMatchObject({ error_code: "mfa_required", reason: expect.stringMatching(reason) });
    };
    const used = await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER });
    await c.appSessionAs(p.caller, p.expires, READER, { mfa: used });
    await denied(used, /unknown, used or expired/);
    // The same person's other login (another laptop) cannot spend this session's check.
    const mine = await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER });
    const otherSession = { ...p.caller, identity: { ...p.caller.identity, session_id: crypto.randomUUID() } } as Caller;
    await denied(mine, /another session/, otherSession);
    // Asked for another identity (spelled any way), or for a review.
    await denied(await check(p.caller, p.key, { app: "azure-cli", azure_identity: CONTRIB }), /was asked to use Azure identity .*teleport-contributor/);
    // A check for a review is started only for a request the caller may see: a made-up one is not found.
    await expect(check(p.caller, p.key, { request: "00000000-0000-0000-0000-000000000001" })).rejects.toMatchObject({ code: "not_found" });
    // The right code with the wrong secret: refused, and the attempt is gone (the right secret after it finds nothing).
    const stolen = await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER });
    await denied({ ...stolen, secret: "0".repeat(64) }, /another client/);
    await denied(stolen, /unknown, used or expired/);
    // Not picked up in time.
    const late = await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER });
    c.clock.advance(c.ctx.settings.ssoLoginTimeoutMs + 1);
    agent.heartbeat();
    await denied(late, /unknown, used or expired/);
  });

  it("the browser's answer must be the user's own, on this origin, to a live challenge of this attempt: else mfa_required and mfa.check.failed", async () => {
    const p = await person();
    const mallory = await person();
    const start = async () => {
      const secret = randomBytes(32).toString("hex");
      return (await startBrowserCheck(c.ctx, p.caller, { app: "azure-cli", azure_identity: READER, redirect_url: "http://127.0.0.1:9/callback", secret_hash: createHash("sha256").update(secret).digest("hex") }, ORIGIN, c.registry)).attempt;
    };
    const refused = async (attempt: string, answer: unknown, reason: RegExp) => {
      await expect(finishBrowserStep(c.ctx, rp(), attempt, { response: answer })).rejects.toMatchObject({ code: "mfa_required" });
      expect((await events("mfa.check.failed", p.name)).at(-1)).toMatchObject({ purpose: "session", reason: expect.stringMatching(reason), success: false });
    };
    let a = await start();
    await refused(a, await mallory.key.assert(await beginBrowserStep(c.ctx, rp(), a, {}), ORIGIN), /not registered/);
    a = await start();
    await refused(a, await p.key.assert(await beginBrowserStep(c.ctx, rp(), a, {}), "https://phish.example"), /origin/i);
    // A challenge of another attempt (the same user's) does not answer this one.
    const a1 = await start();
    const a2 = await start();
    const forA1 = await beginBrowserStep(c.ctx, rp(), a1, {});
    await refused(a2, await p.key.assert(forA1, ORIGIN), /asked for something else/);
    // A login challenge (the user's password phished, the passkey tapped on a login page) does not answer a check.
    const loginSecret = randomBytes(32).toString("hex");
    const { attempt: loginAttempt } = await startBrowserLogin(c.ctx, { public_key_pem: await publicKeyToPem((await generateKeyPair()).publicKey), redirect_url: "http://127.0.0.1:9/callback", secret_hash: createHash("sha256").update(loginSecret).digest("hex") }, ORIGIN);
    const loginOptions = await beginBrowserStep(c.ctx, rp(), loginAttempt, { user: p.name, password: `correct horse battery ${p.name}` });
    a = await start();
    await refused(a, await p.key.assert(loginOptions, ORIGIN), /was for login, not session/);
  });

  it("a role edited to ask refuses sessions already open on their next request (mfa_required, audited); the cluster's setting asks of every session", async () => {
    const p = await person(["plain"]);
    const open = await c.appSessionAs(p.caller, p.expires, CONTRIB);
    expect((await open.request(GROUPS)).status).toBe(200);
    await c.createRoles(ROLES.replace(`['${CONTRIB}']}}`, `['${CONTRIB}']}, options: {require_session_mfa: true}}`));
    try {
      const refused = await open.request(GROUPS);
      expect(refused.status).toBe(403);
      expect(JSON.parse(await refused.text()).error.code).toBe("mfa_required");
      expect((await events("app.request.denied", p.name)).at(-1)).toMatchObject({ error_code: "mfa_required", azure_identity: CONTRIB });
    } finally {
      await c.createRoles(ROLES);
    }
    expect((await open.request(GROUPS)).status).toBe(200);
    c.ctx.settings.requireSessionMfa = true;
    try {
      expect((await open.request(GROUPS)).status).toBe(403);
      await expect(c.appSessionAs(p.caller, p.expires, CONTRIB)).rejects.toMatchObject({ code: "mfa_required", message: expect.stringContaining("the cluster (auth.require_session_mfa)") });
    } finally {
      c.ctx.settings.requireSessionMfa = false;
    }
  });

  it("a browser login ends in a certificate for the CLI's key, picked up once with code and secret; the page's user and password are checked first", async () => {
    const p = await person();
    const cliKey = await generateKeyPair();
    const secret = randomBytes(32).toString("hex");
    const started = await startBrowserLogin(c.ctx, { public_key_pem: await publicKeyToPem(cliKey.publicKey), user: p.name, redirect_url: "http://127.0.0.1:9/callback", secret_hash: createHash("sha256").update(secret).digest("hex") }, ORIGIN);
    expect(started.url).toBe(`${ORIGIN}/web/cli/${started.attempt}`);
    await expect(beginBrowserStep(c.ctx, rp(), started.attempt, { user: p.name, password: "wrong password 123" })).rejects.toMatchObject({ code: "login_failed" });
    const options = await beginBrowserStep(c.ctx, rp(), started.attempt, { user: p.name, password: `correct horse battery ${p.name}` });
    const { next } = await finishBrowserStep(c.ctx, rp(), started.attempt, { user: p.name, response: await p.key.assert(options, ORIGIN) });
    const code = new URL(next).searchParams.get("code")!;
    // The page is done: a second answer finds no attempt.
    await expect(finishBrowserStep(c.ctx, rp(), started.attempt, { user: p.name, response: {} })).rejects.toMatchObject({ code: "sso_attempt_invalid" });
    await expect(pickUpBrowserLogin(c.ctx, { attempt: started.attempt, code, secret: "f".repeat(64) })).rejects.toMatchObject({ code: "sso_attempt_invalid" });
    await expect(pickUpBrowserLogin(c.ctx, { attempt: started.attempt, code, secret })).rejects.toMatchObject({ code: "sso_attempt_invalid" });

    const again = await startBrowserLogin(c.ctx, { public_key_pem: await publicKeyToPem(cliKey.publicKey), redirect_url: "http://127.0.0.1:9/callback", secret_hash: createHash("sha256").update(secret).digest("hex") }, ORIGIN);
    const o2 = await beginBrowserStep(c.ctx, rp(), again.attempt, { user: p.name, password: `correct horse battery ${p.name}` });
    const code2 = new URL((await finishBrowserStep(c.ctx, rp(), again.attempt, { user: p.name, response: await p.key.assert(o2, ORIGIN) })).next).searchParams.get("code")!;
    const login = await pickUpBrowserLogin(c.ctx, { attempt: again.attempt, code: code2, secret });
    const cert = new x509.X509Certificate(login.cert_pem);
    expect(identityOf(cert).name).toBe(p.name);
    expect(Buffer.from(cert.publicKey.rawData)).toEqual(Buffer.from(await crypto.subtle.exportKey("spki", cliKey.publicKey)));
    expect((await events("user.login", p.name)).at(-1)).toMatchObject({ success: true, second_factor: "webauthn", via: "web" });
    // The loopback address is the CLI's only: anything else is refused at the start.
    await expect(startBrowserLogin(c.ctx, { public_key_pem: await publicKeyToPem(cliKey.publicKey), redirect_url: "https://evil.example/callback", secret_hash: "a".repeat(64) }, ORIGIN)).rejects.toMatchObject({ code: "bad_parameter" });
  });

  it("reviews with a passkey (review_mfa): none given is mfa_required (audited); the page's answer and the CLI's browser check each count for their own request only", async () => {
    const asker = await c.signIn(`asker${++users}`, ["requester"]);
    const reviewer = await person(["careful-reviewer", "prod-mfa"]);
    const ask = async () => (await createRequest(c.ctx, asker.caller, { app: "azure-cli", azure_identity: READER, reason: "x" }, servedApps(c.registry))).metadata.name;
    const [r1, r2, r3] = [await ask(), await ask(), await ask()];
    const refusals = async () => (await events("access_request.review", reviewer.name)).filter((e) => e.success === false);
    await expect(reviewRequest(c.ctx, reviewer.caller, r1, { state: "APPROVED" })).rejects.toMatchObject({ code: "mfa_required", message: expect.stringContaining("asks for a fresh check with each review") });
    expect((await refusals()).at(-1)).toMatchObject({ access_request_id: r1, error_code: "mfa_required" });
    const userId = userStamp(reviewer.caller.user!).id;
    const pageAnswer = async (request: string) => reviewer.key.assert(await assertionOptions(c.ctx, rp(), "review", reviewer.name, userId, request), ORIGIN);
    // The page's answer for r1, sent with a review of r2: refused, audited (and that challenge is spent).
    await expect(reviewRequest(c.ctx, reviewer.caller, r2, { state: "APPROVED", passkey: { rp: rp(), answer: await pageAnswer(r1) } })).rejects.toMatchObject({ code: "mfa_required" });
    expect((await events("mfa.check.failed", reviewer.name)).at(-1)).toMatchObject({ purpose: "review", reason: expect.stringMatching(/asked for something else/) });
    const answer = await pageAnswer(r1);
    expect((await reviewRequest(c.ctx, reviewer.caller, r1, { state: "APPROVED", passkey: { rp: rp(), answer } })).spec.state).toBe("APPROVED");
    // Replayed on another request: the challenge is gone.
    await expect(reviewRequest(c.ctx, reviewer.caller, r2, { state: "APPROVED", passkey: { rp: rp(), answer } })).rejects.toMatchObject({ code: "mfa_required" });
    // The CLI's check in the browser: for r2 it reviews r2; an app session's check, or r2's again, does not review r3.
    const forR2 = await check(reviewer.caller, reviewer.key, { request: r2 });
    expect((await reviewRequest(c.ctx, reviewer.caller, r2, { state: "DENIED", mfa: forR2 })).spec.state).toBe("DENIED");
    await expect(reviewRequest(c.ctx, reviewer.caller, r3, { state: "APPROVED", mfa: forR2 })).rejects.toMatchObject({ code: "mfa_required" });
    await expect(reviewRequest(c.ctx, reviewer.caller, r3, { state: "APPROVED", mfa: await check(reviewer.caller, reviewer.key, { app: "azure-cli", azure_identity: READER }) })).rejects.toMatchObject({ code: "mfa_required", message: expect.stringContaining("was asked to use Azure identity") });
    expect((await events("mfa.used", reviewer.name)).map((e) => e.purpose)).toEqual(["review", "review", "session"]);
  });
});
