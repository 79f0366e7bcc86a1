import { AzgateError } from "../errors/index.ts";
import { registrationOptions, verifyRegistration, type RelyingParty, type WebAuthnDevice } from "../auth/webauthn.ts";
import { deviceLabel, newCeremony, takeCeremony } from "./webauthn.ts";
import { audit } from "../audit/events.ts";
import type { Role } from "../rbac/types.ts";
import { isBot, USER_NAME, type User, type UserStatus } from "../resources/user.ts";
import { checkPasswordStrength, hashPassword } from "../auth/password.ts";
import { checkTotp } from "../auth/totp.ts";
import { formatDuration } from "../util/duration.ts";
import { clearAll } from "./lockout.ts";
import { KEYS, newSecret, secretHash } from "./keys.ts";
import type { ProxyContext } from "./context.ts";

export interface UserAuth {
  password_hash?: string;
  totp_secret?: string;
  /** The last TOTP time step accepted; a code is never accepted twice. */
  totp_last_step?: number;
  /** Passkeys and security keys (proxy/webauthn.ts). */
  webauthn?: WebAuthnDevice[];
}

/** An invite is bound to one user record (its id) and one credential generation. */
interface InviteRecord {
  user: string;
  user_id: string;
  generation: number;
  created: string;
}

/** A fresh record's id and first generation. */
export const newUserStatus = (): UserStatus => ({ id: crypto.randomUUID(), generation: 1 });

/**
 * The record's id and generation. Records written before ids existed have
 * neither and read as ("", 0): certificates issued then carry neither, so
 * they keep working until the first reset gives the record a real id.
 */
export function userStamp(user: User): UserStatus {
  return { id: user.status?.id ?? "", generation: user.status?.generation ?? 0 };
}

export async function getUser(ctx: ProxyContext, name: string): Promise<User | null> {
  return (await ctx.backend.get<User>(KEYS.user(name)))?.value ?? null;
}

/** The user's current roles; roles deleted since are skipped (deleting a role takes effect at once). */
export async function loadRoles(ctx: ProxyContext, names: string[]): Promise<Role[]> {
  const roles: Role[] = [];
  for (const name of names) {
    const item = await ctx.backend.get<Role>(KEYS.role(name));
    if (item) roles.push(item.value);
  }
  return roles;
}

export async function requireRolesExist(ctx: ProxyContext, names: string[]): Promise<void> {
  for (const name of names) {
    if (!(await ctx.backend.get(KEYS.role(name)))) throw new AzgateError("not_found", `role "${name}" is not found`);
  }
}

export function checkUserName(name: string): void {
  // The refused name is quoted as JSON: escapes and newlines in it are shown, never obeyed.
  if (!USER_NAME.test(name)) throw new AzgateError("bad_parameter", `user name ${JSON.stringify(name.slice(0, 200))} must be 1-128 letters, digits, '.', '_', '@', '+' or '-'`);
}

/**
 * A new person's name: a user name that is not a bot's (bot-NAME, made only
 * by admin bots add), so no person holds a name a bot needs or that
 * admin lock --bot would lock. Checked wherever a person's record is made:
 * admin users add, a user file, an SSO login's first sign-in.
 */
export function checkPersonName(name: string): void {
  checkUserName(name);
  if (/^bot-/i.test(name)) throw new AzgateError("bad_parameter", `user name ${JSON.stringify(name.slice(0, 200))} starts with bot-, which names bots (azgate admin bots add ${name.slice(4, 68)}); a person takes another name`);
}

/**
 * Creates an invite for `user` (new user or password reset) and voids every
 * other invite of that name: a user has at most one live invite. Returns the
 * secret token.
 */
export async function createInvite(ctx: ProxyContext, user: User): Promise<{ token: string; expires: Date }> {
  const name = user.metadata.name;
  if (isBot(user)) throw new AzgateError("bad_parameter", `"${name}" is a bot: bots have no password and no invite; they join with their CI's token`);
  await deleteInvitesOf(ctx, name);
  const token = newSecret(24);
  const expires = new Date(ctx.clock.now() + ctx.settings.inviteTtlMs);
  const stamp = userStamp(user);
  await ctx.backend.put<InviteRecord>(KEYS.invite(secretHash(token)), { user: name, user_id: stamp.id, generation: stamp.generation, created: ctx.clock.date().toISOString() }, { expires });
  return { token, expires };
}

/** Deletes every invite issued to the user name (another invite, acceptance, deletion). */
export async function deleteInvitesOf(ctx: ProxyContext, name: string): Promise<number> {
  let n = 0;
  for (const item of await ctx.backend.list<InviteRecord>(KEYS.invites)) {
    if (item.value.user === name && (await ctx.backend.delete(item.key))) n++;
  }
  return n;
}

async function findInvite(ctx: ProxyContext, token: string) {
  const item = typeof token === "string" && token.length > 0 ? await ctx.backend.get<InviteRecord>(KEYS.invite(secretHash(token))) : null;
  if (!item) throw new AzgateError("token_invalid", "this invite is invalid, used or expired; ask an administrator for a new one");
  return item;
}

export async function describeInvite(ctx: ProxyContext, token: string) {
  const item = await findInvite(ctx, token);
  return { user: item.value.user, second_factor: ctx.settings.secondFactor, expires: item.expires };
}

/**
 * Sets the password (and TOTP secret, when second factor is on) and uses the
 * invite up. The invite is deleted before the credentials are written, so two
 * concurrent accepts cannot both succeed.
 */
export async function acceptInvite(
  ctx: ProxyContext,
  token: string,
  input: { password: string; otp_secret?: string; otp_code?: string; passkey?: { rp: RelyingParty; response: unknown; name: string } },
  remoteAddr?: string,
): Promise<{ user: string }> {
  const invite = await findInvite(ctx, token).catch(async (e) => {
    await ctx.audit.emit(audit("INVITE_REFUSED", { success: false, error: "unknown, used, voided or expired invite", remote_addr: remoteAddr }));
    throw e;
  });
  const user = invite.value.user;
  // Bound to the record it was made for: not a later user of the same name, not after a newer invite or reset.
  const record = await getUser(ctx, user);
  const stamp = record ? userStamp(record) : null;
  if (!stamp || stamp.id !== (invite.value.user_id ?? "") || stamp.generation !== (invite.value.generation ?? 0)) {
    await ctx.backend.delete(invite.key);
    await ctx.audit.emit(audit("INVITE_REFUSED", { user, success: false, error: record ? "invite issued before the latest reset" : "user no longer exists", remote_addr: remoteAddr }));
    throw new AzgateError("token_invalid", "this invite is invalid, used or expired; ask an administrator for a new one");
  }
  checkPasswordStrength(input.password ?? "");
  const auth: UserAuth = {};
  const mode = ctx.settings.secondFactor;
  // webauthn: a passkey, registered here (the web page's); on: a passkey or a TOTP code; optional: either, or neither.
  if (input.passkey) {
    const label = deviceLabel(input.passkey.name || "passkey");
    try {
      const challenge = await takeCeremony(ctx, input.passkey.response, "register", user, stamp.id, inviteBinding(token));
      auth.webauthn = [await verifyRegistration(input.passkey.rp, input.passkey.response as never, challenge, label, ctx.clock.date())];
    } catch (e) {
      await ctx.audit.emit(audit("MFA_DEVICE_ADD_FAILED", { user, reason: (e as Error).message, success: false }));
      throw new AzgateError("bad_parameter", `the passkey was not added: ${(e as Error).message}`);
    }
  } else if (mode === "webauthn") {
    throw new AzgateError("bad_parameter", "this cluster signs in with a passkey or security key: open the invite link in a browser to register one");
  }
  if (mode === "otp" || (mode === "on" && !auth.webauthn) || ((mode === "optional" || mode === "on") && input.otp_secret)) {
    if (!input.otp_secret || !/^[A-Z2-7]{16,}=*$/.test(input.otp_secret)) throw new AzgateError("bad_parameter", "an OTP secret (base32) is required: this cluster requires a second factor");
    const step = checkTotp(input.otp_secret, input.otp_code ?? "", ctx.clock.now());
    if (step === null) throw new AzgateError("bad_parameter", "the OTP code does not match the secret; check the authenticator app's clock and try again");
    auth.totp_secret = input.otp_secret;
    auth.totp_last_step = step;
  }
  auth.password_hash = await hashPassword(input.password);
  if (!(await ctx.backend.delete(invite.key))) throw new AzgateError("token_invalid", "this invite was just used");
  // The record may have been reset or replaced while the password was hashed.
  const now = await getUser(ctx, user);
  if (!now || userStamp(now).id !== stamp.id || userStamp(now).generation !== stamp.generation) {
    throw new AzgateError("token_invalid", "this invite was voided while it was being accepted; ask an administrator for a new one");
  }
  await ctx.backend.put<UserAuth>(KEYS.userAuth(user), auth);
  await deleteInvitesOf(ctx, user);
  await clearAll(ctx, user);
  await ctx.audit.emit(audit("USER_PASSWORD_SET", { user, success: true }));
  for (const d of auth.webauthn ?? []) await ctx.audit.emit(audit("MFA_DEVICE_ADDED", { user, device: d.name, device_id: d.id, success: true }));
  return { user };
}

/** What an invite's passkey challenge is bound to: that invite (by its hash: the token itself is never stored). */
export const inviteBinding = (token: string) => `invite:${secretHash(token)}`;

/** The registration options for an invite's passkey (the invite page's script). */
export async function invitePasskeyOptions(ctx: ProxyContext, rp: RelyingParty, token: string) {
  const invite = await findInvite(ctx, token);
  const record = await getUser(ctx, invite.value.user);
  if (!record || userStamp(record).id !== (invite.value.user_id ?? "")) throw new AzgateError("token_invalid", "this invite is invalid, used or expired; ask an administrator for a new one");
  const challenge = await newCeremony(ctx, "register", invite.value.user, userStamp(record).id, inviteBinding(token));
  return registrationOptions(rp, { name: invite.value.user, id: userStamp(record).id }, [], challenge);
}

/**
 * What `admin users add` and `reset` print. The CLI line carries the cluster's CA pin (when the proxy said
 * it), so the user's first contact is authenticated instead of a trust-on-first-use prompt.
 */
export function inviteMessage(user: string, token: string, expires: Date, proxyUrl: string, now: number, caPin?: string): string {
  const ttl = formatDuration(expires.getTime() - now + 500);
  return [
    `User "${user}" has been created but requires a password. Share this URL with the user to complete user setup, link is valid for ${ttl}:`,
    `${proxyUrl}/web/invite/${token}`,
    ``,
    `Or, on the user's machine: azgate users accept-invite --proxy ${new URL(proxyUrl).host}${caPin ? ` --ca-pin ${caPin}` : ""} ${token}`,
  ].join("\n");
}
