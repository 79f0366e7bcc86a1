/**
 * A CLI's step done in the browser with a passkey (WebAuthn needs one): a
 * login (`azgate login --mfa-mode browser`, what Teleport calls browser MFA)
 * or a fresh check for an app session (per-session MFA) or a review.
 *
 * As with SSO (sso/attempt.ts), the CLI keeps a secret and sends its hash;
 * the browser ends at the CLI's loopback with a one-time code; only code and
 * secret together take the result, once, before the attempt expires. A login
 * attempt names the CLI's public key, so its certificate is good for that
 * process only. A check names the user record and the login session that
 * asked, and what it is for (an app and identity, or a request): it counts
 * for nothing else.
 */
import { AzgateError } from "../errors/index.ts";
import { KEYS, newSecret, secretHash } from "./keys.ts";
import type { ProxyContext } from "./context.ts";
import { checkClientRedirect, sameHash } from "./sso/attempt.ts";
import type { LoginResponse } from "./login.ts";
import { releaseOne } from "./webauthn.ts";

/** What a fresh check is for: one app session's identity, or one review. */
export type CheckScope = { app: string; azure_identity: string } | { request: string };

export interface BrowserAttempt {
  purpose: "login" | "check";
  /** login: the CLI's key, the user name it may suggest, the longest certificate it asked for. */
  public_key_pem?: string;
  user?: string;
  ttl_ms?: number;
  /** check: who asked (the user record and the login session) and for what. */
  user_id?: string;
  session_id?: string;
  scope?: CheckScope;
  client_redirect: string;
  secret_hash: string;
  remote_addr?: string;
  /** Set when the browser finished: the login's certificate, or the check's time. */
  done?: { code_hash: string; login?: LoginResponse; checked_at?: string };
}

/** An attempt lives as long as an SSO login may take. */
const key = (id: string) => KEYS.browserAttempt(secretHash(id));
const EXPIRED = "this browser step is unknown, used or expired; run the command again";

export function scopeText(scope: CheckScope | undefined): string {
  if (!scope) return "";
  return "request" in scope ? `review access request ${scope.request}` : `use Azure identity ${scope.azure_identity} on app ${scope.app}`;
}

/** Starts an attempt; the browser is sent to /web/cli/ID. */
export async function startAttempt(ctx: ProxyContext, attempt: Omit<BrowserAttempt, "client_redirect" | "done"> & { redirect_url: string }): Promise<{ attempt: string; expires: string }> {
  const { redirect_url, ...rest } = attempt;
  if (!/^[0-9a-f]{64}$/.test(String(rest.secret_hash ?? ""))) throw new AzgateError("bad_parameter", "secret_hash must be the hex SHA-256 of the client's secret");
  const id = newSecret(24);
  const expires = new Date(ctx.clock.now() + ctx.settings.ssoLoginTimeoutMs);
  await ctx.backend.put<BrowserAttempt>(key(id), { ...rest, client_redirect: checkClientRedirect(redirect_url) }, { expires });
  return { attempt: id, expires: expires.toISOString() };
}

/** The attempt a browser page serves, not yet finished. */
export async function pendingAttempt(ctx: ProxyContext, id: string) {
  const item = id && id.length <= 64 ? await ctx.backend.get<BrowserAttempt>(key(id)) : null;
  if (!item) throw new AzgateError("sso_attempt_invalid", EXPIRED);
  if (item.value.done) throw new AzgateError("sso_attempt_invalid", "this browser step has already been completed");
  return item;
}

/** Marks the attempt done (once: a second finish loses) and returns where the browser goes: the CLI's loopback with the code. */
export async function completeAttempt(ctx: ProxyContext, item: { key: string; revision: string; value: BrowserAttempt; expires?: string }, result: { login?: LoginResponse; checked_at?: string }): Promise<string> {
  const code = newSecret(16);
  try {
    await ctx.backend.compareAndSwap<BrowserAttempt>(item.key, item.revision, { ...item.value, done: { code_hash: secretHash(code), ...result } }, item.expires ? { expires: new Date(item.expires) } : {});
  } catch (e) {
    if ((e as AzgateError).code === "compare_failed") throw new AzgateError("sso_attempt_invalid", "this browser step has already been completed");
    throw e;
  }
  if (item.value.purpose === "check" && item.value.user) releaseOne(ctx, checkBudget(item.value.user));
  const url = new URL(item.value.client_redirect);
  url.searchParams.set("code", code);
  return url.toString();
}

/**
 * The finished attempt, for the process that started it: deleted before it
 * is judged, so a wrong code or secret (or a second try) gets nothing ever.
 */
export async function takeAttempt(ctx: ProxyContext, id: string, code: string, secret: string, purpose: BrowserAttempt["purpose"]): Promise<BrowserAttempt> {
  const item = id && id.length <= 64 ? await ctx.backend.get<BrowserAttempt>(key(String(id))) : null;
  if (!item) throw new AzgateError("sso_attempt_invalid", EXPIRED);
  if (!(await ctx.backend.delete(item.key))) throw new AzgateError("sso_attempt_invalid", EXPIRED);
  // Open until the browser finished it (completeAttempt), or until it is taken unfinished.
  if (item.value.purpose === "check" && item.value.user && !item.value.done) releaseOne(ctx, checkBudget(item.value.user));
  const done = item.value.done;
  if (!done) throw new AzgateError("sso_attempt_invalid", "this step has not been completed in the browser; the attempt has been cancelled");
  if (!sameHash(done.code_hash, secretHash(String(code ?? ""))) || !sameHash(item.value.secret_hash, secretHash(String(secret ?? "")))) {
    throw new AzgateError("sso_attempt_invalid", "this browser step was started by another client; the attempt has been cancelled");
  }
  if (item.value.purpose !== purpose) throw new AzgateError("sso_attempt_invalid", `this browser step was a ${item.value.purpose}, not a ${purpose}`);
  return item.value;
}

/** The budget a user's browser checks are paced in (webauthn.ts pacePerUser). */
export const checkBudget = (user: string) => `check:${user}`;
