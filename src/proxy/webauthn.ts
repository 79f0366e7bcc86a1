/**
 * Passkeys and security keys (auth/webauthn.ts) for the proxy's users: a
 * signed-in user registers and removes devices; a login answers a challenge
 * with one after its password. Each ceremony's challenge is a record of its
 * own (KEYS.webauthnCeremony), bound to its purpose and to one user record
 * (its id: a user deleted and created again under the same name is another),
 * living CEREMONY_MS and taken once: an answer replayed, late, for another
 * purpose or by another user finds none. Every device added, removed or used
 * is audited.
 */
import { randomBytes } from "node:crypto";
import { audit } from "../audit/events.ts";
import { answeredChallenge, authenticationOptions, CEREMONY_MS, registrationOptions, verifyAssertion, verifyRegistration, type RelyingParty, type WebAuthnDevice } from "../auth/webauthn.ts";
import { AzgateError, MfaRequired } from "../errors/index.ts";
import { passwordPathNeeds, reauthenticate } from "./login.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import { KEYS, secretHash } from "./keys.ts";
import { getUser, userStamp, type UserAuth } from "./users.ts";
import { isBot } from "../resources/user.ts";

/**
 * What a challenge is for: adding a device, a check before a device is
 * added or removed (manage), a login, a fresh check for an app session
 * (per-session MFA) or for a review. A challenge of one purpose
 * never answers another.
 */
export type CeremonyPurpose = "register" | "manage" | "login" | "session" | "review";

interface Ceremony {
  purpose: CeremonyPurpose;
  user: string;
  user_id: string;
  /** What else it is bound to: the browser attempt or the access request it was asked for. */
  bound?: string;
}

/** A new challenge for `purpose`, bound to this user record (and to `bound`); base64url, as the browser sends it back. */
export async function newCeremony(ctx: ProxyContext, purpose: CeremonyPurpose, user: string, userId: string, bound?: string): Promise<string> {
  // A login's challenge was paced before its password was checked (beginWebAuthnLogin): a refusal then tells nothing of it.
  if (purpose !== "login") pacePerUser(ctx, budgetOf(purpose, user));
  const challenge = randomBytes(32).toString("base64url");
  await ctx.backend.put<Ceremony>(KEYS.webauthnCeremony(secretHash(challenge)), { purpose, user, user_id: userId, ...(bound ? { bound } : {}) }, { expires: new Date(ctx.clock.now() + CEREMONY_MS) });
  return challenge;
}

/**
 * Takes the ceremony the browser's answer names (its clientDataJSON's
 * challenge), once: throws an Error saying why it cannot (none, expired or
 * used; another purpose; another user's) for the caller to audit.
 */
export async function takeCeremony(ctx: ProxyContext, answer: unknown, purpose: CeremonyPurpose, user: string, userId: string, bound?: string): Promise<string> {
  const challenge = answeredChallenge(answer as never);
  if (!challenge) throw new Error("the answer names no challenge");
  const key = KEYS.webauthnCeremony(secretHash(challenge));
  const item = await ctx.backend.get<Ceremony>(key);
  // Deleted before it is judged: a second answer to the same challenge (a replay, a race) finds nothing.
  if (!item || !(await ctx.backend.delete(key))) throw new Error("the challenge is unknown, expired or already answered");
  const c = item.value;
  releaseOne(ctx, budgetOf(c.purpose, c.user));
  if (c.purpose !== purpose) throw new Error(`the challenge was for ${c.purpose}, not ${purpose}`);
  if (c.user !== user || c.user_id !== userId) throw new Error("the challenge was another user's");
  if ((c.bound ?? "") !== (bound ?? "")) throw new Error("the challenge was asked for something else");
  return challenge;
}

/**
 * The most challenges (and browser steps) one user may have open on one
 * replica, per budget: each is a record until it is answered or expires.
 * Three budgets, so a stolen session filling its own cannot stop the person
 * signing in: `login:` (a sign-in's, paced before its password is checked),
 * `user:` (a signed-in person's: device changes, checks, reviews) and
 * `check:` (the CLI's browser steps).
 */
export const MAX_OPEN_PER_USER = 16;
const opened = new WeakMap<ProxyContext, Map<string, number[]>>();

export const budgetOf = (purpose: CeremonyPurpose, user: string) => `${purpose === "login" ? "login" : "user"}:${user}`;

/** Refuses the budget's next challenge while MAX_OPEN_PER_USER of it are open (rate_limited). */
export function pacePerUser(ctx: ProxyContext, budget: string, windowMs = CEREMONY_MS): void {
  let byUser = opened.get(ctx);
  if (!byUser) opened.set(ctx, (byUser = new Map()));
  const now = ctx.clock.now();
  const live = (byUser.get(budget) ?? []).filter((t) => t > now - windowMs);
  if (live.length >= MAX_OPEN_PER_USER) throw new AzgateError("rate_limited", `too many passkey challenges open for ${budget.slice(budget.indexOf(":") + 1)}; finish one or wait a few minutes`);
  live.push(now);
  byUser.set(budget, live);
  // Bounded by forgetting what has expired, never what is open (dropping a live budget would reopen its cap).
  if (byUser.size > MAX_BUDGETS) for (const [k, times] of byUser) if (!times.some((t) => t > now - windowMs)) byUser.delete(k);
  if (byUser.size > MAX_BUDGETS) {
    byUser.delete(budget);
    throw new AzgateError("rate_limited", "too many passkey challenges open on this proxy; try again in a few minutes");
  }
}

/** Budgets kept at once on one replica (each a user's, with a challenge open in the last minutes). */
const MAX_BUDGETS = 10_000;

/** One of the budget's challenges was answered (or taken and refused): it is open no more. */
export function releaseOne(ctx: ProxyContext, budget: string): void {
  opened.get(ctx)?.get(budget)?.shift();
}

/** A challenge for the user's devices, for a fresh check (`session`, `review`) or a login's second half. */
export async function assertionOptions(ctx: ProxyContext, rp: RelyingParty, purpose: CeremonyPurpose, user: string, userId: string, bound?: string) {
  const devices = (await ctx.backend.get<UserAuth>(KEYS.userAuth(user)))?.value.webauthn ?? [];
  if (!devices.length) throw new AzgateError("mfa_required", NO_DEVICE);
  return authenticationOptions(rp, devices, await newCeremony(ctx, purpose, user, userId, bound));
}

/** What a person with no device left is told (recovery: an administrator's reset and a new invite). */
export const NO_DEVICE = "you have no passkey or security key registered with azgate: add one on the web UI's Passkeys page, or, if you lost them all, ask an administrator for a reset (azgate admin users reset NAME), which sends you a new invite";

/**
 * The authenticator's answer to a challenge of `purpose` for this user
 * record: the challenge taken once, the assertion checked (origin, RP ID,
 * signature, user verification, a counter that went up), the device's
 * counter moved with it (a clone racing it loses), the use audited.
 * Throws an Error saying why not, for the caller to refuse and audit.
 */
export async function checkAssertion(ctx: ProxyContext, rp: RelyingParty, answer: unknown, purpose: CeremonyPurpose, user: string, userId: string, bound?: string): Promise<WebAuthnDevice> {
  const challenge = await takeCeremony(ctx, answer, purpose, user, userId, bound);
  for (let attempt = 0; ; attempt++) {
    const authItem = await ctx.backend.get<UserAuth>(KEYS.userAuth(user));
    const used = await verifyAssertion(rp, answer as never, challenge, authItem?.value.webauthn ?? []);
    const devices = (authItem!.value.webauthn ?? []).map((d) => (d.id === used.device.id ? { ...d, counter: used.counter, last_used: ctx.clock.date().toISOString() } : d));
    try {
      await ctx.backend.compareAndSwap<UserAuth>(authItem!.key, authItem!.revision, { ...authItem!.value, webauthn: devices });
    } catch (e) {
      if ((e as AzgateError).code !== "compare_failed" || attempt >= 4) throw e;
      continue;
    }
    await ctx.audit.emit(audit("MFA_DEVICE_USED", { user, device: used.device.name, device_id: used.device.id, purpose, success: true }));
    return used.device;
  }
}

/** The signed-in person's own account, for device changes: not a bot's, not the local admin's. */
async function ownAccount(ctx: ProxyContext, caller: Caller) {
  if (caller.identity.kind !== "user" || !caller.user || isBot(caller.user)) throw new AzgateError("access_denied", "only a signed-in person registers passkeys and security keys, for their own account");
  const user = await getUser(ctx, caller.name);
  if (!user || userStamp(user).id !== userStamp(caller.user).id) throw new AzgateError("unauthenticated", "this session's account no longer exists; sign in again");
  return { user, id: userStamp(user).id };
}

export async function listDevices(ctx: ProxyContext, caller: Caller): Promise<Omit<WebAuthnDevice, "public_key">[]> {
  await ownAccount(ctx, caller);
  const auth = (await ctx.backend.get<UserAuth>(KEYS.userAuth(caller.name)))?.value;
  return (auth?.webauthn ?? []).map(({ public_key: _k, ...d }) => d);
}

/**
 * How a device change is proven to be the person's, not a stolen session's:
 * an answer from a passkey they have (`check`, to registrationCheck's
 * challenge), or, before their first one, their password (and TOTP code
 * when they have one) again.
 */
export interface DeviceProof {
  check?: unknown;
  password?: string;
  otp?: string;
}

/** The challenge a device change is proven with, when the user has a passkey: null when they have none (the password then). */
export async function registrationCheck(ctx: ProxyContext, caller: Caller, rp: RelyingParty) {
  const { id } = await ownAccount(ctx, caller);
  const devices = (await ctx.backend.get<UserAuth>(KEYS.userAuth(caller.name)))?.value.webauthn ?? [];
  return devices.length ? authenticationOptions(rp, devices, await newCeremony(ctx, "manage", caller.name, id)) : null;
}

/** Checks a device change's proof (DeviceProof); mfa_required (audited) when it does not hold. */
async function proveDeviceChange(ctx: ProxyContext, caller: Caller, rp: RelyingParty, id: string, proof: DeviceProof): Promise<void> {
  const devices = (await ctx.backend.get<UserAuth>(KEYS.userAuth(caller.name)))?.value.webauthn ?? [];
  if (devices.length) {
    if (!proof.check) throw new MfaRequired("adding or removing a passkey needs a check with one you have (the page asks it)");
    try {
      await checkAssertion(ctx, rp, proof.check, "manage", caller.name, id);
    } catch (e) {
      await ctx.audit.emit(audit("MFA_CHECK_FAILED", { user: caller.name, purpose: "manage", reason: (e as Error).message, success: false }));
      throw new MfaRequired(`the passkey check failed: ${(e as Error).message}`);
    }
    return;
  }
  if (proof.password === undefined) throw new MfaRequired("adding your first passkey needs your password (and your authenticator code, when you have one) again");
  await reauthenticate(ctx, { user: caller.name, password: proof.password, otp: proof.otp });
}

export async function beginRegistration(ctx: ProxyContext, caller: Caller, rp: RelyingParty, proof: DeviceProof = {}) {
  const { id } = await ownAccount(ctx, caller);
  await proveDeviceChange(ctx, caller, rp, id, proof);
  const auth = (await ctx.backend.get<UserAuth>(KEYS.userAuth(caller.name)))?.value;
  const challenge = await newCeremony(ctx, "register", caller.name, id);
  return registrationOptions(rp, { name: caller.name, id }, auth?.webauthn ?? [], challenge);
}

/** A device's name, as the person gave it: 1-40 letters, digits, spaces and . _ ' - (it is shown in pages and the audit log). */
export function deviceLabel(name: unknown): string {
  const label = String(name ?? "").trim();
  if (!/^[\p{L}\p{N} ._'-]{1,40}$/u.test(label)) throw new AzgateError("bad_parameter", "name: 1-40 letters, digits, spaces and . _ ' -");
  return label;
}

/** The most devices one user keeps. */
export const MAX_DEVICES = 16;

export async function finishRegistration(ctx: ProxyContext, caller: Caller, rp: RelyingParty, response: unknown, name: string): Promise<Omit<WebAuthnDevice, "public_key">> {
  const { id } = await ownAccount(ctx, caller);
  const label = deviceLabel(name);
  let device: WebAuthnDevice;
  try {
    const challenge = await takeCeremony(ctx, response, "register", caller.name, id);
    device = await verifyRegistration(rp, response as never, challenge, label, ctx.clock.date());
  } catch (e) {
    const reason = (e as Error).message;
    await ctx.audit.emit(audit("MFA_DEVICE_ADD_FAILED", { user: caller.name, session_id: caller.identity.session_id, reason, success: false }));
    throw new AzgateError("bad_parameter", `the passkey was not added: ${reason}`);
  }
  for (let attempt = 0; ; attempt++) {
    const item = await ctx.backend.get<UserAuth>(KEYS.userAuth(caller.name));
    const devices = item?.value.webauthn ?? [];
    if (devices.some((d) => d.id === device.id)) throw new AzgateError("already_exists", "this authenticator is registered already");
    if (devices.length >= MAX_DEVICES) throw new AzgateError("bad_parameter", `at most ${MAX_DEVICES} passkeys and security keys; remove one first`);
    try {
      await ctx.backend.compareAndSwap<UserAuth>(KEYS.userAuth(caller.name), item?.revision ?? null, { ...(item?.value ?? {}), webauthn: [...devices, device] });
      break;
    } catch (e) {
      if ((e as AzgateError).code !== "compare_failed" || attempt >= 4) throw e;
    }
  }
  await ctx.audit.emit(audit("MFA_DEVICE_ADDED", { user: caller.name, session_id: caller.identity.session_id, device: device.name, device_id: device.id, success: true }));
  const { public_key: _k, ...shown } = device;
  return shown;
}

/** Removes a device, proven with a check by one of the user's passkeys (that one included): a stolen session cannot lock the person out. */
export async function removeDevice(ctx: ProxyContext, caller: Caller, rp: RelyingParty, deviceId: string, check: unknown): Promise<string> {
  const { id } = await ownAccount(ctx, caller);
  await proveDeviceChange(ctx, caller, rp, id, { check });
  for (let attempt = 0; ; attempt++) {
    const item = await ctx.backend.get<UserAuth>(KEYS.userAuth(caller.name));
    const devices = item?.value.webauthn ?? [];
    const gone = devices.find((d) => d.id === deviceId);
    if (!item || !gone) throw new AzgateError("not_found", "no such passkey or security key of yours");
    // The last one, where signing in needs one: refused, as the person would be locked out (Teleport refuses it too).
    const left = { ...item.value, webauthn: devices.filter((d) => d !== gone) };
    if (devices.length === 1 && passwordPathNeeds(ctx.settings.secondFactor, left) === "passkey") {
      throw new AzgateError("bad_parameter", "this is your last passkey or security key, and you sign in with one: add another first");
    }
    try {
      await ctx.backend.compareAndSwap<UserAuth>(item.key, item.revision, { ...item.value, webauthn: devices.filter((d) => d !== gone) });
      await ctx.audit.emit(audit("MFA_DEVICE_DELETED", { user: caller.name, session_id: caller.identity.session_id, device: gone.name, device_id: gone.id, success: true }));
      return `removed "${gone.name}"`;
    } catch (e) {
      if ((e as AzgateError).code !== "compare_failed" || attempt >= 4) throw e;
    }
  }
}
