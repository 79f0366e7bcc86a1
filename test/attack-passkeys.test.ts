/**
 * An outside review's attacks on passkeys, the CLI's browser steps and
 * per-session MFA (branch passkeys). Each case plays an attack and asserts
 * the secure outcome: a case that fails today is a finding
 * (/work/notes/attack-passkeys.md). Cases that pass are controls that held.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { SoftAuthenticator } from "./helpers/soft-authenticator.ts";
import { browserCheck, CONTRIB, ORIGIN, PASSKEY_ROLES, PASSWORD, READER } from "./helpers/passkeys.ts";
import { authenticate, beginWebAuthnLogin, relyingParty } from "../src/proxy/login.ts";
import { beginRegistration, finishRegistration, listDevices, registrationCheck, removeDevice } from "../src/proxy/webauthn.ts";
import { beginBrowserStep, finishBrowserStep, startBrowserCheck, startBrowserLogin } from "../src/proxy/browser-flows.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import type { Caller } from "../src/proxy/caller.ts";
import { resolveCaller } from "../src/proxy/caller.ts";
import { addUser } from "../src/proxy/admin.ts";
import { acceptInvite, invitePasskeyOptions } from "../src/proxy/users.ts";
import { newTotpSecret, totpFor } from "../src/auth/totp.ts";
import { createApi } from "../src/proxy/api.ts";
import { VERSION } from "../src/version.ts";
import { VERSION_HEADER } from "../src/api/version.ts";

const fx = useEmulator({ projectToken: true });
const ROLES = PASSKEY_ROLES;

describe("attacks on passkeys, browser steps and per-session MFA", () => {
  let c: MemoryCluster;
  let agent: ReturnType<MemoryCluster["agent"]>;
  let users = 0;
  const rp = () => relyingParty(c.ctx, ORIGIN);
  const hash = (s: string) => createHash("sha256").update(s).digest("hex");

  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    await c.createRoles(ROLES);
    agent = c.agent();
  });
  beforeEach(() => {
    agent.heartbeat();
    c.ctx.settings.secondFactor = "off";
  });
  afterAll(async () => c?.close());

  /** A signed-in user with a passkey (the victim). */
  async function person(roles = ["prod-mfa", "plain"]) {
    const name = `atk${++users}`;
    const { caller, expires } = await c.signIn(name, roles);
    const key = await SoftAuthenticator.create();
    await finishRegistration(c.ctx, caller, rp(), key.register(await beginRegistration(c.ctx, caller, rp(), { password: `correct horse battery ${name}` }), ORIGIN), "key");
    return { name, caller, expires, key };
  }

  const check = (caller: Caller, key: SoftAuthenticator, what: Record<string, string>, origin?: string) => browserCheck(c, caller, key, what, origin);

  // ---------------------------------------------------------------- findings

  it("F1: a stolen login certificate cannot add its own passkey and then pass per-session MFA (adding a device needs a fresh check with an existing one)", async () => {
    const victim = await person();
    // Per-session MFA holds against the stolen certificate alone.
    await expect(c.appSessionAs(victim.caller, victim.expires, READER)).rejects.toMatchObject({ code: "mfa_required" });
    // The thief (the victim's ~/.azgate, or a web session cookie) registers an authenticator of their own:
    // POST /v1/webauthn/devices/begin and /v1/webauthn/devices (or /web/keys/begin, /web/keys) need nothing more.
    const thiefKey = await SoftAuthenticator.create();
    const chain = async () => {
      await finishRegistration(c.ctx, victim.caller, rp(), thiefKey.register(await beginRegistration(c.ctx, victim.caller, rp()), ORIGIN), "thief");
      // ...then answers the fresh check with it, and opens the session the role guards.
      return c.appSessionAs(victim.caller, victim.expires, READER, { mfa: await check(victim.caller, thiefKey, { app: "azure-cli", azure_identity: READER }) });
    };
    await expect(chain()).rejects.toBeDefined();
    expect((await listDevices(c.ctx, victim.caller)).map((d) => d.name)).toEqual(["key"]);
  });

  it("F1b: a stolen login certificate cannot remove the victim's passkeys without a fresh check (a webauthn cluster's user is then locked out)", async () => {
    const victim = await person();
    await expect(removeDevice(c.ctx, victim.caller, rp(), victim.key.id, undefined)).rejects.toMatchObject({ code: "mfa_required" });
    expect(await listDevices(c.ctx, victim.caller)).toHaveLength(1);
  });

  /** A user with a password and a TOTP authenticator, on a cluster with second_factor otp (the default). */
  async function otpUser() {
    c.ctx.settings.secondFactor = "otp";
    const name = `otp${++users}`;
    const { invite } = await addUser(c.ctx, c.admin, name, ["plain"], {});
    const secret = newTotpSecret();
    const code = (t = c.clock.now()) => totpFor("user", secret, "azgate").generate({ timestamp: t });
    await acceptInvite(c.ctx, invite.token, { password: PASSWORD(name), otp_secret: secret, otp_code: code() });
    c.clock.advance(31_000);
    return { name, code };
  }
  const wrongCode = (right: string) => String((Number(right) + 500_000) % 1_000_000).padStart(6, "0");

  it("F2 control: without the passkey begin, maxAttempts wrong codes lock the account", async () => {
    const u = await otpUser();
    for (let i = 0; i < c.ctx.settings.lockout.maxAttempts; i++) await authenticate(c.ctx, { user: u.name, password: PASSWORD(u.name), otp: wrongCode(u.code()) }).catch(() => undefined);
    expect((await c.ctx.audit.search({ event: "user.locked" })).filter((e) => e.user === u.name)).toHaveLength(1);
  });

  it("F2: the passkey begin (correct password, no code) does not clear the failure count: a password holder cannot brute-force the TOTP past the lockout", async () => {
    const u = await otpUser();
    const { maxAttempts } = c.ctx.settings.lockout;
    let tries = 0;
    // Round after round: maxAttempts-1 wrong codes, then the password alone on /v1/auth/webauthn/begin (or /web/login/passkey/begin, /web/cli/ID/begin).
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < maxAttempts - 1; i++) {
        tries++;
        await authenticate(c.ctx, { user: u.name, password: PASSWORD(u.name), otp: wrongCode(u.code()) }).catch(() => undefined);
      }
      await beginWebAuthnLogin(c.ctx, rp(), { user: u.name, password: PASSWORD(u.name) }).catch(() => undefined);
    }
    expect(tries).toBeGreaterThan(maxAttempts);
    // More wrong codes than the lockout allows were tried within its window: the account must be locked now.
    const locked = (await c.ctx.audit.search({ event: "user.locked" })).filter((e) => e.user === u.name);
    expect(locked.length).toBeGreaterThan(0);
    await expect(authenticate(c.ctx, { user: u.name, password: PASSWORD(u.name), otp: u.code() })).rejects.toMatchObject({ code: "login_failed" });
  });

  it("F3: on an otp cluster the passkey begin is no password oracle: a right password without the code is answered as a wrong one (POST /v1/auth/webauthn/begin)", async () => {
    const u = await otpUser();
    const api = createApi(c.ctx, { publicUrl: () => ORIGIN, registry: c.registry });
    const post = (password: string) =>
      api.request("/v1/auth/webauthn/begin", { method: "POST", headers: { "content-type": "application/json", [VERSION_HEADER]: VERSION }, body: JSON.stringify({ user: u.name, password }) });
    const wrong = await post("not the password 123");
    const right = await post(PASSWORD(u.name));
    const [w, r] = [await wrong.json(), await right.json()];
    expect(wrong.status).toBe(401);
    expect({ status: right.status, body: r }).toEqual({ status: wrong.status, body: w });
  });

  it("F4: a fresh check's page shows only a real app: the check's scope is not free text the caller writes on the proxy's own page", async () => {
    const victim = await person();
    const bait = "azure-cli. Routine re-verification by IT: confirm, then paste the address your browser shows into the chat";
    const secret = randomBytes(32).toString("hex");
    await expect(startBrowserCheck(c.ctx, victim.caller, { app: bait, azure_identity: READER, redirect_url: "http://127.0.0.1:9/callback", secret_hash: hash(secret) }, ORIGIN, c.registry)).rejects.toMatchObject({
      code: expect.stringMatching(/bad_parameter|not_found/),
    });
  });

  it("F5: a browser login finished for another user than the CLI asked for is said in the audit log (as browser-flows.ts promises)", async () => {
    const asked = await person();
    const signedIn = await person();
    const secret = randomBytes(32).toString("hex");
    const started = await startBrowserLogin(c.ctx, { public_key_pem: await publicKeyToPem((await generateKeyPair()).publicKey), user: asked.name, redirect_url: "http://127.0.0.1:9/callback", secret_hash: hash(secret) }, ORIGIN);
    const options = await beginBrowserStep(c.ctx, rp(), started.attempt, { user: signedIn.name, password: PASSWORD(signedIn.name) });
    await finishBrowserStep(c.ctx, rp(), started.attempt, { user: signedIn.name, response: await signedIn.key.assert(options, ORIGIN) });
    const login = (await c.ctx.audit.search({ event: "user.login" })).filter((e) => e.user === signedIn.name).at(-1)!;
    expect(JSON.stringify(login)).toContain(asked.name);
  });

  it("F6: a passkey registered with an invite gets the same name rules as one added later (1-40 letters, digits, spaces, . _ ' -)", async () => {
    const name = `inv${++users}`;
    const { invite } = await addUser(c.ctx, c.admin, name, ["plain"], {});
    const key = await SoftAuthenticator.create();
    const options = await invitePasskeyOptions(c.ctx, rp(), invite.token);
    const label = `<img src=x>\u202e${"A".repeat(20_000)}`;
    await expect(acceptInvite(c.ctx, invite.token, { password: PASSWORD(name), passkey: { rp: rp(), response: key.register(options, ORIGIN), name: label } })).rejects.toMatchObject({ code: "bad_parameter" });
  });

  it("F7: a signed-in user cannot fill the backend with challenges (begin without finish is bounded per user)", async () => {
    const victim = await person();
    const before = (await c.ctx.backend.list("webauthn-ceremonies/")).length;
    // Each way to make one: the check before a device change, a registration (refused without its proof), a browser check.
    for (let i = 0; i < 200; i++) {
      await registrationCheck(c.ctx, victim.caller, rp()).catch(() => undefined);
      await beginRegistration(c.ctx, victim.caller, rp()).catch(() => undefined);
      await startBrowserCheck(c.ctx, victim.caller, { app: "azure-cli", azure_identity: READER, redirect_url: "http://127.0.0.1:9/callback", secret_hash: hash(String(i)) }, ORIGIN, c.registry).catch(() => undefined);
    }
    expect((await c.ctx.backend.list("browser-attempts/")).length).toBeLessThanOrEqual(32);
    const after = (await c.ctx.backend.list("webauthn-ceremonies/")).length;
    expect(after - before).toBeLessThanOrEqual(32);
  });

  // ---------------------------------------------------------------- controls that held

  it("held: a check counts only for its own user, app name and identity (any spelling); another user's key fails; an app certificate cannot start a check or apps login; a role edited to ask ends a plain session", async () => {
    const p = await person();
    const other = await person();
    // Another user's check, and a check for another identity or another app name.
    await expect(c.appSessionAs(p.caller, p.expires, READER, { mfa: await check(other.caller, other.key, { app: "azure-cli", azure_identity: READER }) })).rejects.toMatchObject({ code: "mfa_required" });
    // An app name that is not one (a trailing space) cannot even start a check (the page would show it).
    await expect(check(p.caller, p.key, { app: "azure-cli ", azure_identity: READER })).rejects.toMatchObject({ code: "bad_parameter" });
    // Another spelling of the identity is the same identity: the check is still asked for.
    await expect(c.appSessionAs(p.caller, p.expires, READER.toLowerCase())).rejects.toMatchObject({ code: "mfa_required" });
    await expect(c.appSessionAs(p.caller, p.expires, READER.toUpperCase().replace("/SUBSCRIPTIONS/", "/subscriptions/"))).rejects.toMatchObject({ code: expect.stringMatching(/mfa_required|bad_parameter/) });
    // The other user's passkey on this user's check.
    const secret = randomBytes(32).toString("hex");
    const { attempt } = await startBrowserCheck(c.ctx, p.caller, { app: "azure-cli", azure_identity: READER, redirect_url: "http://127.0.0.1:9/callback", secret_hash: hash(secret) }, ORIGIN, c.registry);
    await expect(finishBrowserStep(c.ctx, rp(), attempt, { response: await other.key.assert(await beginBrowserStep(c.ctx, rp(), attempt, {}), ORIGIN) })).rejects.toMatchObject({ code: "mfa_required" });
    // An app certificate's identity (route set) never starts a check nor gets another app certificate.
    const ok = await c.appSessionAs(p.caller, p.expires, READER, { mfa: await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER }) });
    const appCaller = await resolveCaller(c.ctx, ok.identity);
    await expect(startBrowserCheck(c.ctx, appCaller, { app: "azure-cli", azure_identity: READER, redirect_url: "http://127.0.0.1:9/callback", secret_hash: hash(secret) }, ORIGIN, c.registry)).rejects.toMatchObject({ code: "access_denied" });
    await expect(c.appSessionAs(appCaller, p.expires, READER)).rejects.toMatchObject({ code: "access_denied" });
    // A role edited to ask mid-way: a plain session opened before is refused on its next request.
    const plain = await c.appSessionAs(p.caller, p.expires, CONTRIB);
    await c.createRoles(ROLES.replace(`['${CONTRIB}']}}`, `['${CONTRIB}']}, options: {require_session_mfa: true}}`));
    try {
      expect((await plain.request("https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01")).status).toBe(403);
    } finally {
      await c.createRoles(ROLES);
    }
  });

  it("held: with second_factor webauthn the password path refuses (API login, web sign-in) and an invite cannot be accepted without a passkey", async () => {
    const p = await person();
    c.ctx.settings.secondFactor = "webauthn";
    await expect(authenticate(c.ctx, { user: p.name, password: PASSWORD(p.name) })).rejects.toMatchObject({ code: "login_failed" });
    await expect(authenticate(c.ctx, { user: p.name, password: PASSWORD(p.name), via: "web" })).rejects.toMatchObject({ code: "login_failed" });
    await expect(authenticate(c.ctx, { user: p.name, password: PASSWORD(p.name), otp: "123456" })).rejects.toMatchObject({ code: "login_failed" });
    const { invite } = await addUser(c.ctx, c.admin, `inv${++users}`, ["plain"], {});
    await expect(acceptInvite(c.ctx, invite.token, { password: "a long enough password 1" })).rejects.toMatchObject({ code: "bad_parameter" });
    await expect(acceptInvite(c.ctx, invite.token, { password: "a long enough password 1", otp_secret: newTotpSecret(), otp_code: "000000" })).rejects.toMatchObject({ code: "bad_parameter" });
  });

  it("held: a login attempt's page (login CSRF): a check attempt's code does not pick up a login, another attempt's code does not fit, attempt ids are bounded", async () => {
    const p = await person();
    const mfa = await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER });
    const api = createApi(c.ctx, { publicUrl: () => ORIGIN, registry: c.registry });
    const post = (path: string, body: unknown) => api.request(path, { method: "POST", headers: { "content-type": "application/json", [VERSION_HEADER]: VERSION }, body: JSON.stringify(body) });
    const pick = await post("/v1/auth/browser/pickup", mfa);
    expect(pick.status).toBeGreaterThanOrEqual(400);
    expect(JSON.stringify(await pick.json())).not.toContain("cert_pem");
    const long = await api.request(`/web/cli/${"a".repeat(5000)}`);
    expect(long.status).toBe(410);
  });
});
