/**
 * The frame every page shares: header, navigation by what the caller may
 * see, a flash message, and the sign-out form. hono/html escapes every
 * value interpolated into a template; `raw` is never given user data.
 */
import type { MiddlewareHandler } from "hono";
import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";
import { checkRule } from "../../rbac/engine.ts";
import type { Caller } from "../caller.ts";
import { relativeTime } from "../../util/relative-time.ts";

export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

export interface Frame {
  title: string;
  caller?: Caller;
  csrf?: string;
  /** The nav entry to mark as current. */
  current?: "access" | "requests" | "audit" | "admin" | "keys";
  flash?: { text: string; error?: boolean };
  cluster: string;
  /** The proxy's now (ctx.clock): the page's relative times and countdowns run from it, not the browser's clock. */
  now?: number;
}

/**
 * Every page of /web answers with these (the web UI and the invite page alike): nothing inline, nothing
 * from elsewhere, no framing, no sniffing, no caching.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  // Not no-referrer: with it, browsers send "Origin: null" on our own form posts, and the CSRF check needs the origin.
  "Referrer-Policy": "same-origin",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Cache-Control": "no-store",
  "Cross-Origin-Opener-Policy": "same-origin",
};

/** Sets SECURITY_HEADERS (with `overrides`, which may only be stricter) on every answer. */
export const securityHeaders =
  (overrides: Record<string, string> = {}): MiddlewareHandler =>
  async (c, next) => {
    await next();
    for (const [k, v] of Object.entries({ ...SECURITY_HEADERS, ...overrides })) c.header(k, v);
  };

export const mayReadAudit = (caller: Caller) => checkRule(caller.roles, "event", "list").allowed;
export const mayAdmin = (caller: Caller) => checkRule(caller.roles, "user", "list").allowed || checkRule(caller.roles, "role", "list").allowed;

export function layout(f: Frame, body: Html): Html {
  const nav = (href: string, name: Frame["current"], label: string) => html`<a href="${href}" ${f.current === name ? html`aria-current="page"` : ""}>${label}</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${f.title} · azgate</title>
<link rel="stylesheet" href="/web/assets/app.css">
<script src="/web/assets/app.js" defer></script>
</head>
<body${f.now === undefined ? "" : html` data-now="${new Date(f.now).toISOString()}"`}>
<header>
  <span class="brand">azgate <span class="muted">${f.cluster}</span></span>
  ${f.caller
    ? html`<nav>
        ${nav("/web", "access", "My access")}
        ${nav("/web/requests", "requests", "Requests")}
        ${mayReadAudit(f.caller) ? nav("/web/audit", "audit", "Audit") : ""}
        ${mayAdmin(f.caller) ? nav("/web/admin", "admin", "Admin") : ""}
        ${f.caller.identity.kind === "user" && !f.caller.identity.bot ? nav("/web/keys", "keys", "Passkeys") : ""}
      </nav>
      <form method="post" action="/web/logout" class="inline">
        <span class="muted">${f.caller.name}</span>
        <input type="hidden" name="_csrf" value="${f.csrf ?? ""}">
        <button type="submit" class="secondary">Sign out</button>
      </form>`
    : ""}
</header>
<main>
  ${f.flash ? html`<p class="flash ${f.flash.error ? "error" : ""}" role="${f.flash.error ? "alert" : "status"}">${f.flash.text}</p>` : ""}
  ${body}
</main>
</body>
</html>`;
}

/** A hidden CSRF field for a form. */
export const csrfField = (token: string) => html`<input type="hidden" name="_csrf" value="${token}">`;

/**
 * A time in a table (class `grid`): one line, in the column's fixed width:
 * month, day and time of day in UTC, then how long ago or ahead by the
 * proxy's clock ("in 58 min"); the full ISO time on hover.
 */
export const timeCell = (iso: string, now: number, cls = "") => {
  const at = Date.parse(iso);
  return Number.isNaN(at)
    ? html`<td class="time ${cls}" title="${iso}">${iso}</td>`
    : html`<td class="time ${cls}" title="${iso}"><time datetime="${iso}">${iso.slice(5, 10)} ${iso.slice(11, 19)}</time> <span class="rel">${relativeTime(at, now)}</span></td>`;
};

/** A cell of a `grid` table: one line, cut to its column with an ellipsis, its whole text on hover. */
export const cell = (text: string, cls = "") => html`<td class="${cls}" title="${text}">${text}</td>`;

/** A command shown in full, with a copy button when scripts run. */
export const command = (text: string) => html`<pre><code data-copy="${text}">${text}</code></pre>`;
