/**
 * Flash messages after a redirect. The redirect names a message by a code
 * (`/web/admin?ok=lock_lifted`, `/web/login?error=locked`) and the page shows
 * that code's text from the tables below. Text in the query string is never
 * shown: a link anyone can send would otherwise put their own words on our
 * page, in our frame ("your session expired: call ..."). An unknown code
 * shows nothing. What a refusal said in full is in the audit log.
 */
import { isAzgateError } from "../../errors/index.ts";

const OK = {
  signed_out: "Signed out.",
  passkey_added: "Passkey added: sign in with it next time.",
  passkey_removed: "Passkey removed.",
  account_ready: "Your account is ready: sign in with your password and your passkey.",
  request_created: "Request created.",
  reviewed: "Review recorded.",
  revoked: "Revoked: the next request under it is refused.",
  cancelled: "Cancelled.",
  lock_created: "Lock created: matching sessions end on their next request.",
  lock_lifted: "Lock lifted.",
} as const;

const ERROR = {
  session_ended: "Your session has ended. Sign in again.",
  locked: "Your session has ended: a lock is in force for you. Sign in again once an administrator lifts it.",
  unauthenticated: "Your session has ended: your account was deleted, reset or re-created since you signed in. Sign in again.",
  sso_failed: "The sign-in with your identity provider did not go through. Try again, or ask an administrator: the audit log says why.",
  sso_attempt_invalid: "This sign-in was started in another browser, or it expired or was already used: start it again here.",
  sso_no_roles: "You signed in at your identity provider, but nothing you have there maps to an azgate role. Ask an administrator.",
  already_exists: "This user name belongs to another account, so the sign-in was refused. Ask an administrator: the audit log says which.",
  not_found: "That sign-in method no longer exists. Choose another.",
  rate_limited: "Too many sign-in attempts from this address. Wait a minute and try again.",
} as const;

export type OkFlash = keyof typeof OK;
export type ErrorFlash = keyof typeof ERROR;

/** A page of ours with a flash code: only codes of the tables can be named. */
export function withFlash(path: string, flash: { ok: OkFlash } | { error: ErrorFlash }): string {
  return "ok" in flash ? `${path}?ok=${flash.ok}` : `${path}?error=${flash.error}`;
}

/** The flash code for a refusal that ends at the sign-in page: its error code when the table has one, else `fallback`. */
export function errorFlash(e: unknown, fallback: ErrorFlash): ErrorFlash {
  return isAzgateError(e) && Object.hasOwn(ERROR, e.code) ? (e.code as ErrorFlash) : fallback;
}

/** The message a page shows for its query string's `ok` or `error` code; nothing for a code the tables do not hold. */
export function flashFrom(query: { ok?: string; error?: string }): { text: string; error?: boolean } | undefined {
  if (query.error !== undefined) return Object.hasOwn(ERROR, query.error) ? { text: ERROR[query.error as ErrorFlash], error: true } : undefined;
  if (query.ok !== undefined) return Object.hasOwn(OK, query.ok) ? { text: OK[query.ok as OkFlash] } : undefined;
  return undefined;
}

/**
 * What the Refused page says for a refusal of a GET: a fixed text for its
 * code, never its message. A GET is a link anyone can send, and messages may
 * quote the link (`access request "..." not found`, an audit filter's
 * value). A refused form post shows its message: the post carries this
 * session's token, so its words are the person's own.
 */
const REFUSED = {
  not_found: "Not found: the link may be mistyped, or what it named is gone.",
  bad_parameter: "This address holds a value azgate cannot read: check the link, or use the page's own form.",
  access_denied: "Your roles do not open this page.",
  mfa_required: "This needs a check with your passkey first.",
} as const;

export function refusedText(code: string): string {
  return Object.hasOwn(REFUSED, code) ? REFUSED[code as keyof typeof REFUSED] : "This page cannot be shown. The audit log says why.";
}
