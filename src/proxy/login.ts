import { AzgateError } from "../errors/index.ts";
import { audit } from "../audit/events.ts";
import { verifyPassword } from "../auth/password.ts";
import { freshTotpStep } from "../auth/totp.ts";
import { importPublicKeyPem } from "../pki/keys.ts";
import { issueIdentityCert } from "../pki/certificate.ts";
import type { Identity } from "../pki/identity.ts";
import { allowedAzureIdentities, sessionTtlMs } from "../rbac/engine.ts";
import { KEYS } from "./keys.ts";
import type { ProxyContext } from "./context.ts";
import { getUser, loadRoles, userStamp, type UserAuth } from "./users.ts";
import { isBot, USER_NAME, type User } from "../resources/user.ts";
import type { Role } from "../rbac/types.ts";
import type { SecondFactor } from "../api/types.ts";
import { checkLocks } from "./locks.ts";
import { countAttempt, failed, lockedReason, succeeded, uncount } from "./lockout.ts";
import { pemOf } from "./cluster.ts";
import type { Item } from "../storage/backend.ts";
import { authenticationOptions, type RelyingParty } from "../auth/webauthn.ts";
import { budgetOf, checkAssertion, newCeremony, pacePerUser, releaseOne } from "./webauthn.ts";

export interface LoginRequest {
  user: string;
  password: string;
  otp?: string;
  public_key_pem: string;
  ttl_ms?: number;
  remote_addr?: string;
}

export interface LoginResponse {
  cert_pem: string;
  expires: string;
  identity: Identity;
}

const GENERIC_FAILURE = "invalid user name, password or second factor";
/** A passkey sign-in's every failure: the same words, and what to do with no device left (recovery). */
export const PASSKEY_LOGIN_FAILURE = `${GENERIC_FAILURE}; if you have no passkey or security key left, ask an administrator for a reset (azgate admin users reset NAME), which sends you a new invite`;
const isLoginFailed = (e: unknown) => e instanceof AzgateError && e.code === "login_failed";

/**
 * A signed-in person proving it is them again before a device change when
 * they have no passkey yet: the password, and the TOTP code when they have
 * one; failures count towards the lockout as a login's do.
 */
export async function reauthenticate(ctx: ProxyContext, req: { user: string; password: string; otp?: string; remote_addr?: string }): Promise<void> {
  await checkPassword(ctx, { ...req, via: "web" }, undefined, { otp: String(req.otp ?? ""), reauth: true });
}

export interface Authenticated {
  user: User;
  roles: Role[];
  /** The session's identity, as a certificate or a browser session carries it. */
  identity: Identity;
  /** The longest session the roles allow. */
  maxTtlMs: number;
}

/**
 * Password (and TOTP) authentication, shared by the CLI's login and the web
 * UI's sign-in. Every failure looks the same to the caller, a lockout
 * included; after `maxAttempts` failures in the window the user's password
 * logins are locked for `lockMs`, and an administrator's reset (a new
 * invite) unlocks it early. With a passkey or security key instead of a
 * code, the password is checked here first (beginWebAuthnLogin), and the
 * login is finished by the authenticator's answer (finishWebAuthnLogin).
 */
export async function authenticate(ctx: ProxyContext, req: { user: string; password: string; otp?: string; remote_addr?: string; via?: "web" }, beforeCheck?: () => Promise<void>): Promise<Authenticated> {
  const { name, user, authItem } = await checkPassword(ctx, req, beforeCheck, { otp: String(req.otp ?? "") });
  return finishLogin(ctx, name, user, authItem, { method: "password", via: req.via, remote_addr: req.remote_addr });
}

/**
 * The first factor (and TOTP when `otp` is given): the user's record and its
 * auth record, or login_failed with the reason audited. Counts failures and
 * keeps the lockout.
 */
async function checkPassword(ctx: ProxyContext, req: { user: string; password: string; remote_addr?: string; via?: "web" }, beforeCheck: (() => Promise<void>) | undefined, path: { otp: string; reauth?: true } | "passkey"): Promise<{ name: string; user: User; authItem: Item<UserAuth> }> {
  const name = String(req.user ?? "");
  const via = req.via ? { via: req.via } : {};
  // Refused before any lookup: such a name cannot exist, and it never reaches the backend or the audit log.
  if (!USER_NAME.test(name)) {
    await ctx.audit.emit(audit("USER_LOGIN_FAILED", { success: false, method: "password", ...via, error: "malformed user name", remote_addr: req.remote_addr }));
    throw new AzgateError("login_failed", GENERIC_FAILURE);
  }
  // Before the lockout is read: an answer that differs by it (a malformed key refused only when not locked) would tell.
  await beforeCheck?.();
  const user = name ? await getUser(ctx, name) : null;
  // Counted before it is judged (lockout.ts): attempts sent all at once cannot outrun the count. Only a user's
  // (a name nobody has fills nothing); a bot's never (it is refused below whatever it sends).
  const counted = user && !isBot(user) ? await countAttempt(ctx, name) : { locked: 0, locking: false, at: 0 };
  if (counted.locked) {
    // The caller gets what every failure gets: that the account exists and is locked, and for how long, is
    // no business of an anonymous caller's. The password is still hashed, so the time does not tell either.
    // The audit log keeps the reason.
    await verifyPassword(String(req.password ?? ""), undefined);
    await ctx.audit.emit(audit("USER_LOGIN_FAILED", { user: name, success: false, method: "password", ...via, error: lockedReason(counted.locked), remote_addr: req.remote_addr }));
    throw new AzgateError("login_failed", GENERIC_FAILURE);
  }
  const authItem = user ? await ctx.backend.get<UserAuth>(KEYS.userAuth(name)) : null;
  const auth = authItem?.value;
  // Always hash, even for an unknown user, so timing does not reveal which users exist.
  const passwordOk = await verifyPassword(String(req.password ?? ""), auth?.password_hash);
  let step: number | null = null;
  let otpOk = true;
  const needs = path === "passkey" ? "passkey" : "reauth" in path ? (auth?.totp_secret ? "otp" : "none") : passwordPathNeeds(ctx.settings.secondFactor, auth);
  if (needs === "otp" && path !== "passkey") {
    step = auth?.totp_secret ? freshTotpStep(auth.totp_secret, path.otp, auth.totp_last_step, ctx.clock.now()) : null;
    otpOk = step !== null;
  }
  // A code instead of the passkey this cluster (or this user's own device, with optional) asks for: refused, the reason audited.
  if (needs === "passkey" && path !== "passkey" && passwordOk && user && !isBot(user)) {
    await failed(ctx, name, counted, req.remote_addr);
    await ctx.audit.emit(audit("USER_LOGIN_FAILED", { user: name, success: false, method: "password", ...via, error: "this user signs in with a passkey or security key (azgate login --mfa-mode browser, or the web UI's passkey sign-in)", remote_addr: req.remote_addr }));
    throw new AzgateError("login_failed", GENERIC_FAILURE);
  }
  // A bot never signs in with a password (it joins with its CI's token): the same answer as any failure, the reason in the log.
  if (isBot(user)) {
    await ctx.audit.emit(audit("USER_LOGIN_FAILED", { user: name, success: false, method: "password", ...via, error: "a bot cannot sign in with a password; bots join with their CI's token (azgate bot exec)", remote_addr: req.remote_addr }));
    throw new AzgateError("login_failed", GENERIC_FAILURE);
  }
  if (!user || !authItem || !auth || !passwordOk || !otpOk) {
    await failed(ctx, name, counted, req.remote_addr);
    await ctx.audit.emit(audit("USER_LOGIN_FAILED", { user: name, success: false, method: "password", ...via, error: GENERIC_FAILURE, remote_addr: req.remote_addr }));
    throw new AzgateError("login_failed", GENERIC_FAILURE);
  }
  if (step !== null) await ctx.backend.compareAndSwap<UserAuth>(authItem.key, authItem.revision, { ...auth, totp_last_step: step });
  // The password alone (a passkey login's first half) proves one factor of two: this attempt is taken out of
  // the count again, the failures before it stay until the second factor (finishWebAuthnLogin).
  if (path === "passkey") await uncount(ctx, name, counted);
  else await succeeded(ctx, name);
  return { name, user, authItem };
}

/**
 * What a password login without a passkey needs besides the password, by
 * auth.second_factor: a TOTP code (otp; on and optional when the user has
 * one), nothing (off; optional for a user with no device), or a passkey
 * instead (webauthn; on and optional when the user registered only passkeys).
 */
export function passwordPathNeeds(mode: SecondFactor, auth: UserAuth | undefined): "otp" | "none" | "passkey" {
  const hasOtp = !!auth?.totp_secret;
  const hasPasskey = !!auth?.webauthn?.length;
  switch (mode) {
    case "off":
      return "none";
    case "otp":
      return "otp";
    case "webauthn":
      return "passkey";
    case "on":
      return hasOtp ? "otp" : "passkey";
    case "optional":
      return hasOtp ? "otp" : hasPasskey ? "passkey" : "none";
  }
}

/** After the factors: the locks, then the session's identity, audited. */
async function finishLogin(ctx: ProxyContext, name: string, user: User, _authItem: Item<UserAuth>, how: { method: string; via?: "web"; remote_addr?: string; second_factor?: string; extra?: Record<string, string> }): Promise<Authenticated> {
  const via = how.via ? { via: how.via } : {};
  const roles = await loadRoles(ctx, user.spec.roles);
  try {
    await checkLocks(ctx, { user: name, roles: roles.map((r) => r.metadata.name), session_ids: [] });
  } catch (e) {
    await ctx.audit.emit(audit("USER_LOGIN_FAILED", { user: name, success: false, method: how.method, ...via, error: (e as Error).message, remote_addr: how.remote_addr }));
    throw e;
  }
  const identity: Identity = {
    kind: "user",
    name,
    roles: roles.map((r) => r.metadata.name),
    traits: user.spec.traits,
    azure_identities: allowedAzureIdentities(roles, user.spec.traits),
    login_method: "password",
    session_id: crypto.randomUUID(),
    user_id: userStamp(user).id,
    generation: userStamp(user).generation,
  };
  await ctx.audit.emit(audit("USER_LOGIN", { user: name, success: true, method: how.method, ...via, ...(how.second_factor ? { second_factor: how.second_factor } : {}), ...how.extra, session_id: identity.session_id, remote_addr: how.remote_addr }));
  return { user, roles, identity, maxTtlMs: sessionTtlMs(roles) };
}

/**
 * A login with a passkey or security key, first half: the password (no
 * code), then a challenge for the user's devices. A user without one gets
 * what every failure gets (the log says why).
 */
export async function beginWebAuthnLogin(ctx: ProxyContext, rp: RelyingParty, req: { user: string; password: string; remote_addr?: string; via?: "web"; bound?: string }) {
  // Paced before the password is checked, so a full budget is refused whatever the password (no oracle in it);
  // only a user's (made-up names take no place), and a begin that makes no challenge gives its place back.
  const budget = USER_NAME.test(String(req.user ?? "")) && (await getUser(ctx, String(req.user))) ? budgetOf("login", String(req.user)) : null;
  if (budget) pacePerUser(ctx, budget);
  try {
    // Every failure gets one answer, which says what to do when no device is left: whether the password was right is told to nobody.
    const { name, user, authItem } = await checkPassword(ctx, req, undefined, "passkey").catch((e) => {
      throw isLoginFailed(e) ? new AzgateError("login_failed", PASSKEY_LOGIN_FAILURE) : e;
    });
    const devices = authItem.value.webauthn ?? [];
    if (!devices.length) {
      await ctx.audit.emit(audit("USER_LOGIN_FAILED", { user: name, success: false, method: "password", ...(req.via ? { via: req.via } : {}), error: "no passkey or security key is registered for this user", remote_addr: req.remote_addr }));
      throw new AzgateError("login_failed", PASSKEY_LOGIN_FAILURE);
    }
    const challenge = await newCeremony(ctx, "login", name, userStamp(user).id, req.bound);
    return authenticationOptions(rp, devices, challenge);
  } catch (e) {
    if (budget) releaseOne(ctx, budget);
    throw e;
  }
}

/**
 * The second half: the authenticator's answer to that challenge. Refused
 * (login_failed, the reason audited): no such challenge, or one expired,
 * already answered, or another user's; a device not this user's; another
 * origin or RP ID; a bad signature; a counter that did not go up.
 */
export async function finishWebAuthnLogin(ctx: ProxyContext, rp: RelyingParty, req: { user: string; webauthn: unknown; remote_addr?: string; via?: "web"; bound?: string; cli_user?: string }): Promise<Authenticated> {
  const name = String(req.user ?? "");
  const via = req.via ? { via: req.via } : {};
  const fail = async (error: string): Promise<never> => {
    await ctx.audit.emit(audit("USER_LOGIN_FAILED", { ...(USER_NAME.test(name) ? { user: name } : {}), success: false, method: "webauthn", ...via, error, remote_addr: req.remote_addr }));
    throw new AzgateError("login_failed", GENERIC_FAILURE);
  };
  const user = USER_NAME.test(name) ? await getUser(ctx, name) : null;
  if (!user || isBot(user)) return fail("no such user");
  const id = userStamp(user).id;
  try {
    await checkAssertion(ctx, rp, req.webauthn, "login", name, id, req.bound);
  } catch (e) {
    return fail((e as Error).message);
  }
  // Both factors given: the failed-login count starts again (never at the begin, which checked the password alone).
  await succeeded(ctx, name);
  const authItem = await ctx.backend.get<UserAuth>(KEYS.userAuth(name));
  const other: Record<string, string> = req.cli_user && req.cli_user !== name ? { cli_user: req.cli_user } : {};
  return finishLogin(ctx, name, user, authItem!, { method: "password", second_factor: "webauthn", via: req.via, remote_addr: req.remote_addr, extra: other });
}

/** The relying party of the cluster's public URL: its host is the RP ID, its origin the web UI's. */
export function relyingParty(ctx: ProxyContext, publicUrl: string): RelyingParty {
  const u = new URL(publicUrl);
  return { id: u.hostname, origin: u.origin, name: `azgate ${ctx.cluster.name}` };
}

/** The CLI's login with a passkey or security key (finishWebAuthnLogin), then a certificate for the client's key. */
export async function loginWithWebAuthn(ctx: ProxyContext, rp: RelyingParty, req: { user: string; webauthn: unknown; public_key_pem: string; ttl_ms?: number; remote_addr?: string }): Promise<LoginResponse> {
  const publicKey = await importPublicKeyPem(String(req.public_key_pem ?? "")).catch(() => {
    throw new AzgateError("bad_parameter", "public_key_pem must be a PEM-encoded ECDSA P-256 public key");
  });
  const { identity, maxTtlMs } = await finishWebAuthnLogin(ctx, rp, req);
  return loginCert(ctx, identity, maxTtlMs, publicKey, req.ttl_ms);
}

/** The CLI's login: authenticate, then a certificate for the client's key. */
export async function login(ctx: ProxyContext, req: LoginRequest): Promise<LoginResponse> {
  let publicKey: CryptoKey | undefined;
  const { identity, maxTtlMs } = await authenticate(ctx, req, async () => {
    publicKey = await importPublicKeyPem(String(req.public_key_pem ?? "")).catch(() => {
      throw new AzgateError("bad_parameter", "public_key_pem must be a PEM-encoded ECDSA P-256 public key");
    });
  });
  return loginCert(ctx, identity, maxTtlMs, publicKey!, req.ttl_ms);
}

export async function loginCert(ctx: ProxyContext, identity: Identity, maxTtlMs: number, publicKey: CryptoKey, ttlMs: number | undefined): Promise<LoginResponse> {
  const req = { ttl_ms: ttlMs };
  const ttl = req.ttl_ms && req.ttl_ms > 0 ? Math.min(req.ttl_ms, maxTtlMs) : maxTtlMs;
  const cert = await issueIdentityCert({ ca: ctx.cluster.user, publicKey, identity, now: ctx.clock.date(), notAfter: new Date(ctx.clock.now() + ttl) });
  await ctx.audit.emit(audit("CERT_CREATED", { user: identity.name, cert_type: "user", session_id: identity.session_id, expires: cert.notAfter.toISOString() }));
  return { cert_pem: pemOf(cert), expires: cert.notAfter.toISOString(), identity };
}

