/**
 * A second outside review's attacks on passkeys and per-session MFA, after
 * the fixes in f44ce9e (branch passkeys). Each case plays an attack and
 * asserts the secure outcome: a case that fails today is a finding
 * (/work/notes/attack-passkeys-2.md). Cases named "held" are controls.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { useEmulator } from "./helpers/emulator.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { SoftAuthenticator } from "./helpers/soft-authenticator.ts";
import { browserCheck, ORIGIN, PASSKEY_ROLES, PASSWORD, READER } from "./helpers/passkeys.ts";
import { beginWebAuthnLogin, finishWebAuthnLogin, login, relyingParty } from "../src/proxy/login.ts";
import { beginRegistration, finishRegistration, listDevices, registrationCheck, removeDevice } from "../src/proxy/webauthn.ts";
import { beginBrowserStep, finishBrowserStep, startBrowserCheck, startBrowserLogin } from "../src/proxy/browser-flows.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import type { Caller } from "../src/proxy/caller.ts";
import { resolveCaller } from "../src/proxy/caller.ts";
import { addUser, resetUser } from "../src/proxy/admin.ts";
import { acceptInvite, invitePasskeyOptions } from "../src/proxy/users.ts";
import { newTotpSecret, totpFor } from "../src/auth/totp.ts";
import { createRequest, reviewRequest } from "../src/proxy/access-requests.ts";
import { servedApps } from "../src/proxy/registry.ts";
import { createApi } from "../src/proxy/api.ts";
import { VERSION } from "../src/version.ts";
import { VERSION_HEADER } from "../src/api/version.ts";
import type { SecondFactor } from "../src/api/types.ts";

const fx = useEmulator({ projectToken: true });
const ROLES = PASSKEY_ROLES;

describe("second attack on passkeys and per-session MFA", () => {
  let c: MemoryCluster;
  let agent: ReturnType<MemoryCluster["agent"]>;
  let users = 0;
  const rp = () => relyingParty(c.ctx, ORIGIN);
  const hash = (s: string) => createHash("sha256").update(s).digest("hex");
  const wrongCode = (right: string, k = 0) => String((Number(right) + 400_000 + k * 997) % 1_000_000).padStart(6, "0");

  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    await c.createRoles(ROLES);
    agent = c.agent();
  });
  beforeEach(() => {
    // Each case moves the clock past every per-user window (challenges 5 min, browser steps 3 min) of the one before.
    c.clock.advance(10 * 60_000);
    agent.heartbeat();
    c.ctx.settings.secondFactor = "off";
  });
  afterAll(async () => c?.close());

  /** A signed-in user with a passkey. */
  async function person(roles = ["prod-mfa", "plain"], prefix = "b") {
    const mode = c.ctx.settings.secondFactor;
    c.ctx.settings.secondFactor = "off";
    const name = `${prefix}${++users}`;
    const { caller, expires } = await c.signIn(name, roles);
    const key = await SoftAuthenticator.create();
    await finishRegistration(c.ctx, caller, rp(), key.register(await beginRegistration(c.ctx, caller, rp(), { password: PASSWORD(name) }), ORIGIN), "key");
    c.ctx.settings.secondFactor = mode;
    return { name, caller, expires, key };
  }

  /** A signed-in user with a password and a TOTP authenticator (no passkey), on an otp cluster. */
  async function otpPerson(roles: string[]) {
    c.ctx.settings.secondFactor = "otp";
    const name = `t${++users}`;
    const { invite } = await addUser(c.ctx, c.admin, name, roles, {});
    const secret = newTotpSecret();
    const code = (t = c.clock.now()) => totpFor("user", secret, "azgate").generate({ timestamp: t });
    await acceptInvite(c.ctx, invite.token, { password: PASSWORD(name), otp_secret: secret, otp_code: code() });
    c.clock.advance(31_000);
    const key = await generateKeyPair();
    const res = await login(c.ctx, { user: name, password: PASSWORD(name), otp: code(), public_key_pem: await publicKeyToPem(key.publicKey) });
    c.clock.advance(31_000);
    c.ctx.settings.secondFactor = "off";
    agent.heartbeat();
    return { name, code, caller: await resolveCaller(c.ctx, res.identity), expires: new Date(res.expires) };
  }

  const check = (caller: Caller, key: SoftAuthenticator, what: Record<string, string>, origin?: string) => browserCheck(c, caller, key, what, origin);

  const failures = async (user: string) => (await c.ctx.audit.search({ event: "user.login" })).filter((e) => e.user === user && e.success === false);

  // ---------------------------------------------------------------- findings

  it("G1: review_mfa by TOTP counts failed codes: a stolen reviewer session cannot guess codes without limit (maxAttempts wrong, then even the right one is refused)", async () => {
    const asker = await c.signIn(`asker${++users}`, ["requester"]);
    const reviewer = await otpPerson(["careful-reviewer"]);
    const id = (await createRequest(c.ctx, asker.caller, { app: "azure-cli", azure_identity: READER, reason: "x" }, servedApps(c.registry))).metadata.name;
    const { maxAttempts } = c.ctx.settings.lockout;
    // POST /v1/requests/ID/review {state, otp} (or the web form): no per-IP limit, no lockout.
    for (let i = 0; i < maxAttempts * 4; i++) {
      await expect(reviewRequest(c.ctx, reviewer.caller, id, { state: "APPROVED", otp: wrongCode(reviewer.code(), i) })).rejects.toBeDefined();
    }
    // As many wrong codes as lock a login, four times over: the next code, the right one, must not pass.
    await expect(reviewRequest(c.ctx, reviewer.caller, id, { state: "APPROVED", otp: reviewer.code() })).rejects.toBeDefined();
  });

  it("G2: the lockout holds against a burst: parallel re-authentications (POST /web/keys/begin, no per-IP limit) cannot test more than maxAttempts TOTP codes", async () => {
    // A thief with the victim's web session and password, but not the TOTP app: each /web/keys/begin is one guess of the code.
    const victim = await otpPerson(["prod-mfa", "plain"]);
    const { maxAttempts } = c.ctx.settings.lockout;
    const right = victim.code();
    // The burst: 39 wrong codes at once. (The right code goes after them: sent within the burst, the order in which
    // parallel checks finish, their password hashes on the thread pool, decides whether it is judged before the lock,
    // and a right code judged among the first maxAttempts rightly passes.)
    const burst = Array.from({ length: 39 }, (_, i) => wrongCode(right, i));
    await Promise.allSettled(burst.map((otp) => beginRegistration(c.ctx, victim.caller, rp(), { password: PASSWORD(victim.name), otp })));
    const rightCode = await beginRegistration(c.ctx, victim.caller, rp(), { password: PASSWORD(victim.name), otp: right }).then(() => "fulfilled", () => "rejected");
    const judged = (await failures(victim.name)).filter((e) => !String(e.error).startsWith("locked")).length;
    // With the lockout honoured, at most maxAttempts codes of the burst are ever judged, and the right one then finds the
    // account locked (before the fix: every wrong code was judged, and the right one got the registration's options, i.e.
    // the thief's passkey went in).
    expect({ judged: Math.min(judged, maxAttempts + 1), rightCode }).toEqual({ judged: expect.any(Number), rightCode: "rejected" });
    expect(judged).toBeLessThanOrEqual(maxAttempts);
  });

  it("G3: the per-user cap counts open challenges, as documented (16 open): a user who finishes 18 fresh checks in a few minutes (none left open) is refused none of them, nor their own passkey sign-in", async () => {
    const p = await person();
    // Each `azgate az` / `exec` / `proxy azure` under require_session_mfa asks its own check; each one here is finished.
    let done = 0;
    for (let i = 0; i < 18; i++) {
      c.clock.advance(5_000);
      agent.heartbeat();
      await check(p.caller, p.key, { app: "azure-cli", azure_identity: READER })
        .then(() => done++)
        .catch((e) => expect.fail(`check ${i + 1} (after ${done} finished, none open) refused: ${(e as Error).message}`));
    }
    // The same count blocks the user's next login with the passkey (and a thief with a stolen session can keep it full).
    const options = await beginWebAuthnLogin(c.ctx, rp(), { user: p.name, password: PASSWORD(p.name) });
    await expect(finishWebAuthnLogin(c.ctx, rp(), { user: p.name, webauthn: await p.key.assert(options, ORIGIN) })).resolves.toBeDefined();
  });

  it("G4: the passkey begin's pace is decided before the password: a stolen session filling its own budget leaves the sign-in alone, and a full sign-in budget answers right and wrong passwords alike", async () => {
    const victim = await person();
    // A stolen web session fills the signed-in budget: /web/keys/ID/delete/begin makes a manage challenge each time.
    for (let i = 0; i < 32; i++) await registrationCheck(c.ctx, victim.caller, rp()).catch(() => undefined);
    const api = createApi(c.ctx, { publicUrl: () => ORIGIN, registry: c.registry });
    const post = (password: string) =>
      api.request("/v1/auth/webauthn/begin", { method: "POST", headers: { "content-type": "application/json", [VERSION_HEADER]: VERSION }, body: JSON.stringify({ user: victim.name, password }) });
    // The person still signs in (the sign-in has a budget of its own).
    expect((await post(PASSWORD(victim.name))).status).toBe(200);
    // Sign-ins begun and never finished fill that budget: then every begin is refused alike, whatever the password.
    for (let i = 0; i < 32; i++) await post(PASSWORD(victim.name));
    const wrong = await post("not the password 123");
    const right = await post(PASSWORD(victim.name));
    expect(wrong.status).toBe(429);
    expect({ status: right.status, body: await right.json() }).toEqual({ status: wrong.status, body: await wrong.json() });
  });

  it("G5: a fresh check's page names only an app the proxy serves (the app name grammar still lets a caller write a sentence on the proxy's page)", async () => {
    const victim = await person();
    const bait = "it-helpdesk-reverify-then-paste-the-address-your-browser-shows";
    await expect(
      startBrowserCheck(c.ctx, victim.caller, { app: bait, azure_identity: READER, redirect_url: "http://127.0.0.1:9/callback", secret_hash: hash("s") }, ORIGIN, c.registry),
    ).rejects.toMatchObject({ code: expect.stringMatching(/bad_parameter|not_found|access_denied/) });
  });

  it("G6: a browser login attempt's suggested user is a user name: no free text (bidi override, markup, new lines) for the sign-in page and cli_user in the audit log", async () => {
    const pem = await publicKeyToPem((await generateKeyPair()).publicKey);
    const user = "alice\u202e\n<b>IT: sign in, then paste the address</b>";
    await expect(startBrowserLogin(c.ctx, { public_key_pem: pem, user, redirect_url: "http://127.0.0.1:9/callback", secret_hash: hash("s") }, ORIGIN)).rejects.toMatchObject({ code: "bad_parameter" });
  });

  it("G7: on a webauthn cluster the last passkey of a user without TOTP cannot be removed (Teleport refuses deleting the last MFA device): the user would be locked out until a reset", async () => {
    const p = await person();
    c.ctx.settings.secondFactor = "webauthn";
    const challenge = await registrationCheck(c.ctx, p.caller, rp());
    await expect(removeDevice(c.ctx, p.caller, rp(), p.key.id, await p.key.assert(challenge!, ORIGIN))).rejects.toBeDefined();
    expect(await listDevices(c.ctx, p.caller)).toHaveLength(1);
  });

  // ---------------------------------------------------------------- controls that held

  it("held: the device-change proof: none, a wrong password, the password without the TOTP, and a session/review/login answer are refused; a manage check counts once (not for a registration and then a removal)", async () => {
    // The first-device path when the user has TOTP but no passkey: the password alone is not enough.
    const t = await otpPerson(["plain"]);
    await expect(beginRegistration(c.ctx, t.caller, rp())).rejects.toMatchObject({ code: "mfa_required" });
    await expect(beginRegistration(c.ctx, t.caller, rp(), { password: PASSWORD(t.name) })).rejects.toMatchObject({ code: "login_failed" });
    await expect(beginRegistration(c.ctx, t.caller, rp(), { password: "wrong password 1234", otp: t.code() })).rejects.toMatchObject({ code: "login_failed" });
    // A stray `check` on the first-device path does not replace the password.
    await expect(beginRegistration(c.ctx, t.caller, rp(), { check: { id: "x" } })).rejects.toMatchObject({ code: "mfa_required" });

    const p = await person();
    const second = await SoftAuthenticator.create();
    // A check for a session (browser step) answered by the user's own key is no manage check.
    const secret = randomBytes(32).toString("hex");
    const { attempt } = await startBrowserCheck(c.ctx, p.caller, { app: "azure-cli", azure_identity: READER, redirect_url: "http://127.0.0.1:9/callback", secret_hash: hash(secret) }, ORIGIN, c.registry);
    const sessionAnswer = await p.key.assert(await beginBrowserStep(c.ctx, rp(), attempt, {}), ORIGIN);
    await expect(beginRegistration(c.ctx, p.caller, rp(), { check: sessionAnswer })).rejects.toMatchObject({ code: "mfa_required" });
    // A login's answer is no manage check either.
    const loginAnswer = await p.key.assert(await beginWebAuthnLogin(c.ctx, rp(), { user: p.name, password: PASSWORD(p.name) }), ORIGIN);
    await expect(beginRegistration(c.ctx, p.caller, rp(), { check: loginAnswer })).rejects.toMatchObject({ code: "mfa_required" });
    // Having a passkey, the password is not a way around the check.
    await expect(beginRegistration(c.ctx, p.caller, rp(), { password: PASSWORD(p.name) })).rejects.toMatchObject({ code: "mfa_required" });
    // One manage check: one change. Used to register, it does not also remove.
    const manage = await p.key.assert((await registrationCheck(c.ctx, p.caller, rp()))!, ORIGIN);
    await finishRegistration(c.ctx, p.caller, rp(), second.register(await beginRegistration(c.ctx, p.caller, rp(), { check: manage }), ORIGIN), "second");
    await expect(removeDevice(c.ctx, p.caller, rp(), p.key.id, manage)).rejects.toMatchObject({ code: "mfa_required" });
    // Two begins racing on one manage check: one wins.
    const once = await p.key.assert((await registrationCheck(c.ctx, p.caller, rp()))!, ORIGIN);
    const race = await Promise.allSettled([beginRegistration(c.ctx, p.caller, rp(), { check: once }), beginRegistration(c.ctx, p.caller, rp(), { check: once })]);
    expect(race.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    // Another user's session never gets this user's challenge answered.
    const other = await person();
    const forOther = await p.key.assert((await registrationCheck(c.ctx, other.caller, rp()))!, ORIGIN);
    await expect(beginRegistration(c.ctx, other.caller, rp(), { check: forOther })).rejects.toMatchObject({ code: "mfa_required" });
  });

  it("held: a registration begun before an administrator's reset cannot be finished after it (the old session is refused)", async () => {
    // optional cluster, a user with the password only: the thief has session and password.
    c.ctx.settings.secondFactor = "optional";
    const name = `r${++users}`;
    const { caller } = await c.signIn(name, ["plain"]);
    const thief = await SoftAuthenticator.create();
    const options = await beginRegistration(c.ctx, caller, rp(), { password: PASSWORD(name) });
    await resetUser(c.ctx, c.admin, name);
    await expect((async () => finishRegistration(c.ctx, await resolveCaller(c.ctx, caller.identity), rp(), thief.register(options, ORIGIN), "thief"))()).rejects.toBeDefined();
  });

  it("held: recovery on every second_factor mode: a user who lost every device is reset, accepts the new invite and signs in", async () => {
    const modes: SecondFactor[] = ["webauthn", "on", "optional", "otp", "off"];
    for (const mode of modes) {
      const p = await person(["plain"]);
      c.ctx.settings.secondFactor = mode;
      const { token } = await resetUser(c.ctx, c.admin, p.name);
      const newPassword = `a brand new password for ${p.name}`;
      const key = await SoftAuthenticator.create();
      const pemOf = async () => publicKeyToPem((await generateKeyPair()).publicKey);
      if (mode === "webauthn" || mode === "on") {
        const options = await invitePasskeyOptions(c.ctx, rp(), token);
        await acceptInvite(c.ctx, token, { password: newPassword, passkey: { rp: rp(), response: key.register(options, ORIGIN), name: "new key" } });
        const login2 = await beginWebAuthnLogin(c.ctx, rp(), { user: p.name, password: newPassword });
        await expect(finishWebAuthnLogin(c.ctx, rp(), { user: p.name, webauthn: await key.assert(login2, ORIGIN) }), mode).resolves.toBeDefined();
      } else if (mode === "otp") {
        const secret = newTotpSecret();
        const code = () => totpFor("user", secret, "azgate").generate({ timestamp: c.clock.now() });
        await acceptInvite(c.ctx, token, { password: newPassword, otp_secret: secret, otp_code: code() });
        c.clock.advance(31_000);
        await expect(login(c.ctx, { user: p.name, password: newPassword, otp: code(), public_key_pem: await pemOf() }), mode).resolves.toBeDefined();
      } else {
        await acceptInvite(c.ctx, token, { password: newPassword });
        await expect(login(c.ctx, { user: p.name, password: newPassword, public_key_pem: await pemOf() }), mode).resolves.toBeDefined();
      }
    }
  });
});
