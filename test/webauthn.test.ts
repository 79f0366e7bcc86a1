/**
 * Passkeys and security keys (issue 36 part 1, the server half): a signed-in
 * user registers an authenticator (a software one that answers as a
 * security key does: test/helpers/soft-authenticator.ts), then logs in with
 * the password and the authenticator's answer instead of a code. Refused,
 * each as login_failed (what every failure gets) with the reason in the
 * audit log: a replayed answer, another origin (a phisher's page), another RP
 * ID, a counter that goes back (a cloned key), an expired challenge, a
 * challenge begun for another user, a device another user registered.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser, resetUser } from "../src/proxy/admin.ts";
import { acceptInvite, invitePasskeyOptions } from "../src/proxy/users.ts";
import { authenticate, beginWebAuthnLogin, finishWebAuthnLogin, PASSKEY_LOGIN_FAILURE, passwordPathNeeds, relyingParty } from "../src/proxy/login.ts";
import { beginRegistration, finishRegistration, listDevices, registrationCheck, removeDevice } from "../src/proxy/webauthn.ts";
import { CEREMONY_MS, type RelyingParty } from "../src/auth/webauthn.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import { SoftAuthenticator } from "./helpers/soft-authenticator.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const ORIGIN = "https://proxy.example:3080";
const PASSWORD = (user: string) => `correct horse battery ${user}`;

let ctx: ProxyContext;
let close: () => Promise<void>;
let clock: FakeClock;
let admin: Caller;
let rp: RelyingParty;
let users = 0;

beforeAll(async () => {
  clock = new FakeClock();
  ({ ctx, close } = await openState(tempDir("azgate-webauthn-"), { clusterName: "keys", settings: settingsFrom(configSchema.parse({ auth: { second_factor: "off" } })), purpose: "webauthn tests", clock }));
  admin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
  rp = relyingParty(ctx, ORIGIN);
});
afterAll(async () => close?.());

/** A user with a password, signed in (as the API resolves a session's caller). */
async function newUser(): Promise<{ name: string; caller: Caller }> {
  const name = `user${++users}`;
  const { invite } = await addUser(ctx, admin, name, ["access"], {});
  await acceptInvite(ctx, invite.token, { password: PASSWORD(name) });
  const { identity } = await import("../src/proxy/login.ts").then((m) => m.authenticate(ctx, { user: name, password: PASSWORD(name) }));
  return { name, caller: await resolveCaller(ctx, identity) };
}

/** A user with a registered authenticator. */
async function withKey(): Promise<{ name: string; caller: Caller; key: SoftAuthenticator }> {
  const u = await newUser();
  const key = await SoftAuthenticator.create();
  const options = await beginRegistration(ctx, u.caller, rp, { password: PASSWORD(u.name) });
  await finishRegistration(ctx, u.caller, rp, key.register(options, ORIGIN), "yubikey");
  return { ...u, key };
}

/** A check with a passkey the user has, before a device change (as the Passkeys page asks it). */
async function manageCheck(caller: Caller, key: SoftAuthenticator) {
  return key.assert((await registrationCheck(ctx, caller, rp))!, ORIGIN);
}

const failures = async (user: string): Promise<string[]> => (await ctx.audit.search({ event: "user.login", user })).filter((e: AuditEvent) => e.success === false).map((e) => String(e.error));

describe("passkeys and security keys", () => {
  it("registers an authenticator for a signed-in user (audited, listed without its key), logs in with the password and its answer, and removes it", async () => {
    const { name, caller, key } = await withKey();
    expect(await listDevices(ctx, caller)).toEqual([expect.objectContaining({ id: key.id, name: "yubikey", counter: 0 })]);
    expect(JSON.stringify(await listDevices(ctx, caller))).not.toContain("public_key");
    const options = await beginWebAuthnLogin(ctx, rp, { user: name, password: PASSWORD(name) });
    expect(options.allowCredentials).toEqual([expect.objectContaining({ id: key.id })]);
    expect(options.rpId).toBe("proxy.example");
    const done = await finishWebAuthnLogin(ctx, rp, { user: name, webauthn: await key.assert(options, ORIGIN) });
    expect(done.identity.name).toBe(name);
    const login = (await ctx.audit.search({ event: "user.login", user: name })).at(-1)!;
    expect(login).toMatchObject({ success: true, second_factor: "webauthn" });
    expect(await ctx.audit.search({ event: "mfa.used", user: name })).toEqual([expect.objectContaining({ device: "yubikey", device_id: key.id })]);
    expect((await listDevices(ctx, caller))[0]).toMatchObject({ counter: 1, last_used: clock.date().toISOString() });
    expect(await removeDevice(ctx, caller, rp, key.id, await manageCheck(caller, key))).toBe('removed "yubikey"');
    expect(await ctx.audit.search({ event: "mfa.delete", user: name })).toEqual([expect.objectContaining({ device: "yubikey" })]);
    // No device left: a WebAuthn login is refused as every failure is, the log says why.
    await expect(beginWebAuthnLogin(ctx, rp, { user: name, password: PASSWORD(name) })).rejects.toMatchObject({ code: "login_failed" });
    expect((await failures(name)).at(-1)).toMatch(/no passkey or security key is registered/);
  });

  it("the begin needs the password: a wrong one is a failure that counts towards the lockout, and no challenge is made", async () => {
    const { name } = await withKey();
    const before = (await ctx.backend.list("webauthn-ceremonies/")).length;
    await expect(beginWebAuthnLogin(ctx, rp, { user: name, password: "wrong password 123" })).rejects.toMatchObject({ code: "login_failed" });
    expect(await failures(name)).toHaveLength(1);
    expect((await ctx.backend.list("webauthn-ceremonies/")).length).toBe(before);
  });

  it.each([
    ["a replayed answer (the challenge was answered already)", async (k: SoftAuthenticator, o: { challenge: string; rpId?: string }, name: string) => {
      const answer = await k.assert(o, ORIGIN);
      await finishWebAuthnLogin(ctx, rp, { user: name, webauthn: answer });
      return answer;
    }, /unknown, expired or already answered/],
    ["an answer made on another origin (a phisher's page)", (k: SoftAuthenticator, o: { challenge: string; rpId?: string }) => k.assert(o, "https://proxy.example.evil.test"), /origin/i],
    ["an answer scoped to another RP ID", (k: SoftAuthenticator, o: { challenge: string; rpId?: string }) => k.assert(o, ORIGIN, { rpId: "evil.test" }), /RP ID/i],
    ["a counter that goes back (a cloned key)", async (k: SoftAuthenticator, o: { challenge: string; rpId?: string }) => {
      k.counter = 10;
      return k.assert(o, ORIGIN, { counter: 3 });
    }, /counter/i],
    ["an expired challenge", async (k: SoftAuthenticator, o: { challenge: string; rpId?: string }) => {
      clock.advance(CEREMONY_MS + 1);
      return k.assert(o, ORIGIN);
    }, /unknown, expired or already answered/],
  ])("refuses %s: login_failed, the reason audited", async (_what, answer, reason) => {
    const { name, key } = await withKey();
    if (String(_what).startsWith("a counter")) {
      // The stored counter is 10 (a login with it counted up), the answer says 3.
      key.counter = 9;
      const first = await beginWebAuthnLogin(ctx, rp, { user: name, password: PASSWORD(name) });
      await finishWebAuthnLogin(ctx, rp, { user: name, webauthn: await key.assert(first, ORIGIN) });
    }
    const options = await beginWebAuthnLogin(ctx, rp, { user: name, password: PASSWORD(name) });
    const a = await answer(key, options, name);
    await expect(finishWebAuthnLogin(ctx, rp, { user: name, webauthn: a })).rejects.toMatchObject({ code: "login_failed", message: "invalid user name, password or second factor" });
    expect((await failures(name)).at(-1)).toMatch(reason);
  });

  it("refuses a challenge begun for another user, and a device another user registered", async () => {
    const alice = await withKey();
    const mallory = await withKey();
    // Mallory begins her own login, and answers it for alice's account.
    const hers = await beginWebAuthnLogin(ctx, rp, { user: mallory.name, password: PASSWORD(mallory.name) });
    await expect(finishWebAuthnLogin(ctx, rp, { user: alice.name, webauthn: await mallory.key.assert(hers, ORIGIN) })).rejects.toMatchObject({ code: "login_failed" });
    expect((await failures(alice.name)).at(-1)).toMatch(/another user's/);
    // Alice's password (phished) and challenge, answered by mallory's key: not alice's device.
    const alices = await beginWebAuthnLogin(ctx, rp, { user: alice.name, password: PASSWORD(alice.name) });
    await expect(finishWebAuthnLogin(ctx, rp, { user: alice.name, webauthn: await mallory.key.assert(alices, ORIGIN) })).rejects.toMatchObject({ code: "login_failed" });
    expect((await failures(alice.name)).at(-1)).toMatch(/not registered/);
  });

  it("registration: refused from another origin or for a used challenge (audited), twice the same key, and for a bot or the local admin", async () => {
    const { name, caller } = await newUser();
    const key = await SoftAuthenticator.create();
    const options = await beginRegistration(ctx, caller, rp, { password: PASSWORD(name) });
    await expect(finishRegistration(ctx, caller, rp, key.register(options, "https://evil.test"), "k")).rejects.toMatchObject({ code: "bad_parameter" });
    // That challenge is gone with the failed answer; a fresh one registers.
    await expect(finishRegistration(ctx, caller, rp, key.register(options, ORIGIN), "k")).rejects.toThrow(/unknown, expired or already answered/);
    const again = await beginRegistration(ctx, caller, rp, { password: PASSWORD(name) });
    await finishRegistration(ctx, caller, rp, key.register(again, ORIGIN), "k");
    const third = await beginRegistration(ctx, caller, rp, { check: await manageCheck(caller, key) });
    expect(third.excludeCredentials).toEqual([expect.objectContaining({ id: key.id })]);
    await expect(finishRegistration(ctx, caller, rp, key.register(third, ORIGIN), "k2")).rejects.toMatchObject({ code: "already_exists" });
    const refused = await ctx.audit.search({ event: "mfa.add.failed", user: name });
    expect(refused.map((e) => e.reason)).toEqual([expect.stringMatching(/origin/i), expect.stringMatching(/unknown, expired or already answered/)]);
    await expect(beginRegistration(ctx, admin, rp)).rejects.toMatchObject({ code: "access_denied" });
  });
});

describe("auth.second_factor: what a password login needs besides the password", () => {
  const withMode = async <T>(mode: typeof ctx.settings.secondFactor, fn: () => Promise<T>): Promise<T> => {
    const before = ctx.settings.secondFactor;
    ctx.settings.secondFactor = mode;
    try {
      return await fn();
    } finally {
      ctx.settings.secondFactor = before;
    }
  };
  const passwordOnly = (name: string) => authenticate(ctx, { user: name, password: PASSWORD(name) });

  it("the table: otp asks a code, webauthn a passkey, on either, optional the user's own device if any, off nothing", () => {
    const none = {};
    const otp = { totp_secret: "A".repeat(32) };
    const key = { webauthn: [{} as never] };
    const table = (["off", "otp", "webauthn", "on", "optional"] as const).map((m) => [m, passwordPathNeeds(m, none), passwordPathNeeds(m, otp), passwordPathNeeds(m, key)]);
    expect(table).toEqual([
      ["off", "none", "none", "none"],
      ["otp", "otp", "otp", "otp"],
      ["webauthn", "passkey", "passkey", "passkey"],
      ["on", "passkey", "otp", "passkey"],
      ["optional", "none", "otp", "passkey"],
    ]);
  });

  it("webauthn: a right password alone is refused (login_failed as every failure, the reason audited); the passkey login goes through", async () => {
    const { name, key } = await withKey();
    await withMode("webauthn", async () => {
      await expect(passwordOnly(name)).rejects.toMatchObject({ code: "login_failed", message: "invalid user name, password or second factor" });
      expect((await failures(name)).at(-1)).toMatch(/this user signs in with a passkey or security key/);
      const options = await beginWebAuthnLogin(ctx, rp, { user: name, password: PASSWORD(name) });
      expect((await finishWebAuthnLogin(ctx, rp, { user: name, webauthn: await key.assert(options, ORIGIN) })).identity.name).toBe(name);
    });
  });

  it("optional: a user with no device signs in with the password; one with a passkey must use it", async () => {
    const plain = await newUser();
    const keyed = await withKey();
    await withMode("optional", async () => {
      expect((await passwordOnly(plain.name)).identity.name).toBe(plain.name);
      await expect(passwordOnly(keyed.name)).rejects.toMatchObject({ code: "login_failed" });
    });
  });

  it("an invite on a webauthn cluster registers a passkey (audited) or is refused: the API's accept cannot skip it", async () => {
    await withMode("webauthn", async () => {
      const { invite } = await addUser(ctx, admin, "invited1", ["access"], {});
      await expect(acceptInvite(ctx, invite.token, { password: PASSWORD("invited1") })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining("open the invite link in a browser") });
      const key = await SoftAuthenticator.create();
      // A registration answered on another origin: refused, audited, nothing set.
      await expect(acceptInvite(ctx, invite.token, { password: PASSWORD("invited1"), passkey: { rp, response: key.register(await invitePasskeyOptions(ctx, rp, invite.token), "https://evil.test"), name: "k" } })).rejects.toMatchObject({ code: "bad_parameter" });
      expect((await ctx.audit.search({ event: "mfa.add.failed", user: "invited1" })).at(-1)).toMatchObject({ reason: expect.stringMatching(/origin/i) });
      // A challenge made for another invite does not register on this one.
      const other = await addUser(ctx, admin, "invited2", ["access"], {});
      await expect(acceptInvite(ctx, invite.token, { password: PASSWORD("invited1"), passkey: { rp, response: key.register(await invitePasskeyOptions(ctx, rp, other.invite.token), ORIGIN), name: "k" } })).rejects.toThrow(/another user's|something else/);
      await acceptInvite(ctx, invite.token, { password: PASSWORD("invited1"), passkey: { rp, response: key.register(await invitePasskeyOptions(ctx, rp, invite.token), ORIGIN), name: "laptop" } });
      expect((await ctx.audit.search({ event: "mfa.add", user: "invited1" })).filter((e) => e.event === "mfa.add")).toEqual([expect.objectContaining({ device: "laptop", device_id: key.id })]);
      const options = await beginWebAuthnLogin(ctx, rp, { user: "invited1", password: PASSWORD("invited1") });
      expect((await finishWebAuthnLogin(ctx, rp, { user: "invited1", webauthn: await key.assert(options, ORIGIN) })).identity.name).toBe("invited1");
    });
  });

  it("recovery: a user with no device left is told what to do (after the right password); an administrator's reset removes every device, audited, and the new invite registers a new one", async () => {
    const { name, caller, key } = await withKey();
    await removeDevice(ctx, caller, rp, key.id, await manageCheck(caller, key));
    // The passkey sign-in's one answer to every failure says what to do with no device left; a wrong password gets the same words.
    await expect(beginWebAuthnLogin(ctx, rp, { user: name, password: PASSWORD(name) })).rejects.toMatchObject({ code: "login_failed", message: PASSKEY_LOGIN_FAILURE });
    expect(PASSKEY_LOGIN_FAILURE).toContain("ask an administrator for a reset (azgate admin users reset NAME)");
    await expect(beginWebAuthnLogin(ctx, rp, { user: name, password: "wrong password 123" })).rejects.toMatchObject({ message: PASSKEY_LOGIN_FAILURE });

    const again = await withKey();
    const invite = await resetUser(ctx, admin, again.name);
    expect((await ctx.audit.search({ event: "user.reset" })).at(-1)).toMatchObject({ name: again.name, devices_removed: ["yubikey"] });
    expect((await ctx.audit.search({ event: "mfa.delete" })).at(-1)).toMatchObject({ name: again.name, device_id: again.key.id, reason: "reset" });
    await expect(beginWebAuthnLogin(ctx, rp, { user: again.name, password: PASSWORD(again.name) })).rejects.toMatchObject({ code: "login_failed" });
    await withMode("webauthn", async () => {
      const fresh = await SoftAuthenticator.create();
      await acceptInvite(ctx, invite.token, { password: PASSWORD(again.name), passkey: { rp, response: fresh.register(await invitePasskeyOptions(ctx, rp, invite.token), ORIGIN), name: "new" } });
      const options = await beginWebAuthnLogin(ctx, rp, { user: again.name, password: PASSWORD(again.name) });
      // The old key is not this user's any more; the new one is.
      expect(options.allowCredentials).toEqual([expect.objectContaining({ id: fresh.id })]);
      expect((await finishWebAuthnLogin(ctx, rp, { user: again.name, webauthn: await fresh.assert(options, ORIGIN) })).identity.name).toBe(again.name);
    });
  });
});
