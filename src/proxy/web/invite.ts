import { Hono } from "hono";
import { html, raw } from "hono/html";
import { AzgateError, isAzgateError } from "../../errors/index.ts";
import type { RelyingParty } from "../../auth/webauthn.ts";
import { answerOf, anonymousJsonForm } from "./json-form.ts";
import { withFlash } from "./flash.ts";
import { newTotpSecret, totpFor } from "../../auth/totp.ts";
import type { ProxyContext } from "../context.ts";
import { acceptInvite, describeInvite, invitePasskeyOptions } from "../users.ts";
import { remoteAddr, type LoginRateLimiter } from "../rate-limit.ts";
import { layout, securityHeaders, type Frame } from "./layout.ts";

/**
 * The small web page where an invited user sets a password and registers an
 * authenticator: in the web UI's frame, with its stylesheet and its security
 * headers (nothing inline, nothing from elsewhere, no framing). The invite
 * token is in the URL, so the page also sends no Referer at all.
 */
export function invitePages(ctx: ProxyContext, limiter: LoginRateLimiter, rp: () => RelyingParty) {
  const web = new Hono();
  // Only the invite pages: the rest of /web is the web UI's, which sets the same headers (web/ui.ts).
  web.use("/invite/*", securityHeaders({ "Referrer-Policy": "no-referrer" }));
  const page = (body: unknown, flash?: Frame["flash"]) => layout({ title: "Set up your account", cluster: ctx.cluster.name, flash }, html`<h1>Set up your account</h1>${body}`);

  web.get("/invite/:token", async (c) => {
    try {
      const invite = await describeInvite(ctx, c.req.param("token"));
      if (invite.second_factor === "webauthn" || invite.second_factor === "on") return c.html(page(passkeyForm(invite.user, c.req.param("token"), ctx.cluster.name)));
      const secret = invite.second_factor === "otp" ? newTotpSecret() : undefined;
      return c.html(page(form(invite.user, secret, ctx.cluster.name)));
    } catch (e) {
      if (isAzgateError(e)) return c.html(page("", { text: e.message, error: true }), e.status as 403);
      throw e;
    }
  });

  // With a passkey (auth.second_factor webauthn or on): the page's script registers it, then sends it with the password.
  web.post("/invite/:token/passkey/begin", anonymousJsonForm(limiter, (c) => invitePasskeyOptions(ctx, rp(), (c.req.param("token") ?? ""))));
  web.post(
    "/invite/:token/passkey",
    anonymousJsonForm(limiter, async (c, f, remote) => {
      const get = (k: string) => (typeof f[k] === "string" ? (f[k] as string) : "");
      if (get("password") !== get("password_confirm")) throw new AzgateError("bad_parameter", "the two passwords differ");
      await acceptInvite(ctx, (c.req.param("token") ?? ""), { password: get("password"), passkey: { rp: rp(), response: answerOf(f, "response"), name: get("name") } }, remote);
      return { next: withFlash("/web/login/passkey", { ok: "account_ready" }) };
    }),
  );

  web.post("/invite/:token", async (c) => {
    const f = await c.req.parseBody();
    const get = (k: string) => (typeof f[k] === "string" ? (f[k] as string) : "");
    try {
      limiter.check(remoteAddr(c));
      if (get("password") !== get("password_confirm")) throw Object.assign(new Error("the two passwords differ"), { retry: true });
      const { user } = await acceptInvite(ctx, c.req.param("token"), { password: get("password"), otp_secret: get("otp_secret") || undefined, otp_code: get("otp_code") });
      return c.html(page(html`<p>Welcome, ${user}. Your account is ready. <a href="/web/login">Sign in to the web UI</a>, or from a terminal:</p><pre>azgate login --proxy ${c.req.header("host") ?? new URL(c.req.url).host} --user ${user}</pre>`));
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      const invite = await describeInvite(ctx, c.req.param("token")).catch(() => null);
      if (!invite) return c.html(page("", { text: message, error: true }), 400);
      return c.html(page(form(invite.user, get("otp_secret") || undefined, ctx.cluster.name), { text: message, error: true }), 400);
    }
  });
  return web;
}

function passkeyForm(user: string, token: string, cluster: string) {
  const base = `/web/invite/${encodeURIComponent(token)}/passkey`;
  return html`<form method="post" action="${base}" data-passkey-register data-begin="${base}/begin" data-finish="${base}">
    <p>Set up the account <b>${user}</b> on cluster <b>${cluster}</b>: a password, and a passkey or security key to sign in with.</p>
    <label>Password (12 characters or more)<input type="password" name="password" autocomplete="new-password" required minlength="12"></label>
    <label>Repeat the password<input type="password" name="password_confirm" autocomplete="new-password" required minlength="12"></label>
    <label>A name for the passkey<input name="name" required maxlength="40" value="passkey"></label>
    <button type="submit">Create account with a passkey</button>
    <noscript><p class="error">Registering a passkey needs this page's script (the browser's WebAuthn).</p></noscript>
  </form>`;
}

function form(user: string, secret: string | undefined, cluster: string) {
  const uri = secret ? totpFor(user, secret, `azgate ${cluster}`).toString() : "";
  return html`<form method="post">
    <p>Set up the account <b>${user}</b> on cluster <b>${cluster}</b>.</p>
    <label>Password (12 characters or more)<input type="password" name="password" autocomplete="new-password" required minlength="12"></label>
    <label>Repeat the password<input type="password" name="password_confirm" autocomplete="new-password" required minlength="12"></label>
    ${secret
      ? html`<p>Add this key to your authenticator app (TOTP, 6 digits, 30 s):</p>
        <pre>${secret}</pre><p class="muted">${uri}</p>
        <input type="hidden" name="otp_secret" value="${secret}">
        <label>Code shown by the app<input name="otp_code" inputmode="numeric" pattern="[0-9]{6}" required></label>`
      : raw("")}
    <button type="submit">Create account</button>
  </form>`;
}
