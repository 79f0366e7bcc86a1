/**
 * Browser sessions. A sign-in stores a session record server-side (by the
 * hash of a random token, as invites and join tokens are) holding the same
 * identity a certificate would carry; the browser holds the token in a
 * `__Host-` cookie: HttpOnly, Secure, SameSite=Strict, path /. Every page
 * resolves the caller through `resolveCaller`, as the API does for a
 * certificate: a deleted or reset user, a lock, or a deleted role acts on
 * the next click. Each session has its own CSRF token for forms.
 */
import { audit } from "../../audit/events.ts";
import { timingSafeEqual } from "node:crypto";
import type { Context } from "hono";
import { getCookie, setCookie, deleteCookie } from "hono/cookie";
import { AzgateError } from "../../errors/index.ts";
import type { Identity } from "../../pki/identity.ts";
import { resolveCaller, type Caller } from "../caller.ts";
import type { ProxyContext } from "../context.ts";
import { KEYS, newSecret, secretHash } from "../keys.ts";
import { errorFlash, type ErrorFlash } from "./flash.ts";

export const COOKIE = "__Host-azgate_session";
/** Browser sessions are short: at most this, and never longer than the roles' max_session_ttl. */
export const WEB_SESSION_MAX_MS = 8 * 3_600_000;

export interface WebSession {
  identity: Identity;
  csrf: string;
  created: string;
  expires: string;
}

export async function startWebSession(ctx: ProxyContext, c: Context, identity: Identity, maxTtlMs: number): Promise<WebSession> {
  const token = newSecret(32);
  const ttl = Math.min(maxTtlMs, WEB_SESSION_MAX_MS);
  const session: WebSession = { identity, csrf: newSecret(24), created: ctx.clock.date().toISOString(), expires: new Date(ctx.clock.now() + ttl).toISOString() };
  await ctx.backend.put(KEYS.webSession(secretHash(token)), session, { expires: new Date(session.expires) });
  setCookie(c, COOKIE, token, { path: "/", secure: true, httpOnly: true, sameSite: "Strict", maxAge: Math.floor(ttl / 1000) });
  await ctx.audit.emit(audit("WEB_SESSION_START", { user: identity.name, session_id: identity.session_id, expires: session.expires }));
  return session;
}

/**
 * The session and its caller, resolved now; null when there is none; when it ended (the cookie is then
 * cleared), why, as the sign-in page's flash code (the audit event has the full reason).
 */
export async function currentSession(ctx: ProxyContext, c: Context): Promise<{ session: WebSession; caller: Caller } | { ended: ErrorFlash } | null> {
  const token = getCookie(c, COOKIE);
  if (!token || !/^[0-9a-f]{64}$/.test(token)) return null;
  const key = KEYS.webSession(secretHash(token));
  const item = await ctx.backend.get<WebSession>(key);
  if (!item) {
    deleteCookie(c, COOKIE, { path: "/", secure: true });
    return { ended: "session_ended" };
  }
  try {
    return { session: item.value, caller: await resolveCaller(ctx, item.value.identity) };
  } catch (e) {
    if (!(e instanceof AzgateError)) throw e;
    // Locked, deleted, reset: the session is over, not merely refused.
    await ctx.backend.delete(key);
    deleteCookie(c, COOKIE, { path: "/", secure: true });
    await ctx.audit.emit(audit("WEB_SESSION_CUT", { user: item.value.identity.name, session_id: item.value.identity.session_id, why: e.message, error_code: e.code }));
    return { ended: errorFlash(e, "session_ended") };
  }
}

export async function endWebSession(ctx: ProxyContext, c: Context, session: WebSession): Promise<void> {
  const token = getCookie(c, COOKIE);
  if (token) await ctx.backend.delete(KEYS.webSession(secretHash(token)));
  deleteCookie(c, COOKIE, { path: "/", secure: true });
  await ctx.audit.emit(audit("WEB_SESSION_END", { user: session.identity.name, session_id: session.identity.session_id, why: "signed out" }));
}

/**
 * A state-changing request must come from our own pages: the browser says
 * so (Sec-Fetch-Site, or Origin equal to ours), and the form carries this
 * session's token. SameSite=Strict already keeps the cookie off other sites'
 * requests; this holds even where a browser does not honour it.
 */
export function checkCsrf(c: Context, session: WebSession | null, formToken: unknown): void {
  const site = c.req.header("sec-fetch-site");
  const origin = c.req.header("origin");
  // The pages are only ever served over HTTPS (by the proxy, or a TLS front passing Host through).
  const own = `https://${c.req.header("host") ?? ""}`;
  if (site && site !== "same-origin") throw new AzgateError("access_denied", "refused: this form was sent from another site");
  if (origin && origin !== own) throw new AzgateError("access_denied", "refused: this form was sent from another origin");
  // Without a session there is no token to check, so the browser must say where the post came from: every
  // browser azgate's pages support sends Origin on a POST (and Sec-Fetch-Site); a post that says neither could
  // be a login CSRF from a browser that does not, and is refused.
  if (!session && !site && !origin) throw new AzgateError("access_denied", "refused: this form did not say where it was sent from (no Origin); sign in from azgate's own page");
  if (!session) return;
  const given = Buffer.from(typeof formToken === "string" ? formToken : "");
  const want = Buffer.from(session.csrf);
  if (given.length !== want.length || !timingSafeEqual(given, want)) throw new AzgateError("access_denied", "refused: the form's security token is missing or stale; reload the page");
}
