/**
 * One SSO login attempt, from `login --auth` to certificate pickup.
 *
 * The client sends the hash of a secret only its process holds. When the
 * identity provider's answer checks out, the proxy issues the certificate,
 * stores it with the hash of a one-time code, and sends the browser to the
 * client's loopback address with that code. Only a caller with both the code
 * and the secret gets the certificate, once, before the attempt expires: a
 * browser sent to another client's loopback, or a code seen in a URL, is not
 * enough. The attempt id doubles as the OAuth `state` / SAML `RelayState`.
 */
import { timingSafeEqual } from "node:crypto";
import { AzgateError } from "../../errors/index.ts";
import type { ConnectorKind } from "../../resources/connector.ts";
import { KEYS, newSecret, secretHash } from "../keys.ts";
import type { ProxyContext } from "../context.ts";

export interface SsoResult {
  cert_pem: string;
  expires: string;
  user: string;
  roles: string[];
}

export interface SsoAttempt {
  kind: ConnectorKind;
  connector: string;
  public_key_pem: string;
  /** Where the browser goes at the end: the client's loopback listener. */
  client_redirect: string;
  secret_hash: string;
  ttl_ms?: number;
  /** Protocol state kept between the redirect and the callback. */
  protocol: { pkce_verifier?: string; nonce?: string; saml_request_id?: string };
  remote_addr?: string;
  /**
   * A web UI sign-in: it ends in a browser session, not a certificate, and
   * only in the browser that started it (the hash of a nonce in a cookie
   * set at the start), so nobody can sign a victim's browser into their own
   * account by sending it a callback URL.
   */
  web?: { browser_hash: string };
  /** Set by the callback; the certificate waits here for its pickup. */
  done?: { code_hash: string; result: SsoResult };
}

const itemKey = (id: string) => KEYS.ssoAttempt(secretHash(id));

/** The path the CLI's loopback listener serves: the only place the browser is sent at the end. */
export const CLIENT_CALLBACK_PATH = "/callback";

/**
 * Only the CLI's own loopback callback may receive the browser at the end:
 * http, a loopback address with a port, the callback path, nothing else (no
 * open redirect to another local service's path).
 */
export function checkClientRedirect(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AzgateError("bad_parameter", "redirect_url must be a URL");
  }
  const loopback = ["127.0.0.1", "[::1]"].includes(url.hostname);
  if (url.protocol !== "http:" || !loopback || !url.port || url.pathname !== CLIENT_CALLBACK_PATH || url.search || url.hash || url.username || url.password) {
    throw new AzgateError("bad_parameter", `redirect_url must be http://127.0.0.1:PORT${CLIENT_CALLBACK_PATH} (the azgate CLI's loopback listener)`);
  }
  return url.toString();
}

/** The id of a new attempt: secret enough to serve as OAuth state. */
export const newAttemptId = () => newSecret(24);

export async function saveAttempt(ctx: ProxyContext, id: string, attempt: SsoAttempt): Promise<Date> {
  const expires = new Date(ctx.clock.now() + ctx.settings.ssoLoginTimeoutMs);
  await ctx.backend.put<SsoAttempt>(itemKey(id), attempt, { expires });
  return expires;
}

const EXPIRED = "this login attempt is unknown, used or expired; run azgate login --auth again";

/** The attempt a callback belongs to, still waiting for the identity provider. */
export async function pendingAttempt(ctx: ProxyContext, id: string, kind: ConnectorKind) {
  const item = id ? await ctx.backend.get<SsoAttempt>(itemKey(id)) : null;
  if (!item || item.value.kind !== kind) throw new AzgateError("sso_attempt_invalid", EXPIRED);
  if (item.value.done) throw new AzgateError("sso_attempt_invalid", "this login attempt has already been completed");
  return item;
}

/** Stores the certificate for pickup; returns the one-time code for the client's loopback. */
export async function completeAttempt(ctx: ProxyContext, item: { key: string; revision: string; value: SsoAttempt; expires?: string }, result: SsoResult): Promise<string> {
  const code = newSecret(16);
  const opts = item.expires ? { expires: new Date(item.expires) } : {};
  try {
    await ctx.backend.compareAndSwap<SsoAttempt>(item.key, item.revision, { ...item.value, done: { code_hash: secretHash(code), result } }, opts);
  } catch (e) {
    // The same IdP answer delivered twice: only the first completes the attempt.
    if ((e as AzgateError).code === "compare_failed") throw new AzgateError("sso_attempt_invalid", "this login attempt has already been completed");
    throw e;
  }
  return code;
}

/**
 * The certificate, for the process that started the attempt. Single use: the
 * attempt is deleted before answering, and a wrong code or secret deletes it
 * too, so neither can be guessed by trying.
 */
export async function pickUp(ctx: ProxyContext, id: string, code: string, secret: string): Promise<SsoResult> {
  const item = id ? await ctx.backend.get<SsoAttempt>(itemKey(id)) : null;
  if (!item) throw new AzgateError("sso_attempt_invalid", EXPIRED);
  const done = item.value.done;
  if (!done) throw new AzgateError("sso_attempt_invalid", "this login has not been completed in the browser");
  const matches = sameHash(done.code_hash, secretHash(code)) && sameHash(item.value.secret_hash, secretHash(secret));
  if (!(await ctx.backend.delete(item.key))) throw new AzgateError("sso_attempt_invalid", EXPIRED);
  if (!matches) throw new AzgateError("sso_attempt_invalid", "this login was started by another client; the attempt has been cancelled");
  return done.result;
}

/** Two hex digests compared in constant time. */
export function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && timingSafeEqual(x, y);
}
