import { Hono } from "hono";
import { html, raw } from "hono/html";
import { isAzgateError } from "../../errors/index.ts";
import { newTotpSecret, totpFor } from "../../auth/totp.ts";
import type { ProxyContext } from "../context.ts";
import { acceptInvite, describeInvite } from "../users.ts";
import { remoteAddr, type LoginRateLimiter } from "../rate-limit.ts";

/**
 * The small web page where an invited user sets a password and registers an
 * authenticator. The invite token is in the URL, so the page sends no
 * Referer and loads nothing from elsewhere.
 */
export function invitePages(ctx: ProxyContext, limiter: LoginRateLimiter) {
  const web = new Hono();
  // Only the invite pages: the rest of /web is the web UI's, with its own headers (web/ui.ts).
  web.use("/invite/*", async (c, next) => {
    await next();
    c.header("Referrer-Policy", "no-referrer");
    c.header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
    c.header("Cache-Control", "no-store");
  });

  web.get("/invite/:token", async (c) => {
    try {
      const invite = await describeInvite(ctx, c.req.param("token"));
      const secret = invite.second_factor === "otp" ? newTotpSecret() : undefined;
      return c.html(page(form(invite.user, secret, ctx.cluster.name)));
    } catch (e) {
      if (isAzgateError(e)) return c.html(page(html`<p class="error">${e.message}</p>`), e.status as 403);
      throw e;
    }
  });

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
      if (!invite) return c.html(page(html`<p class="error">${message}</p>`), 400);
      return c.html(page(html`<p class="error">${message}</p>${form(invite.user, get("otp_secret") || undefined, ctx.cluster.name)}`), 400);
    }
  });
  return web;
}

function form(user: string, secret: string | undefined, cluster: string) {
  const uri = secret ? totpFor(user, secret, `azgate ${cluster}`).toString() : "";
  return html`<form method="post">
    <p>Set up the account <b>${user}</b> on cluster <b>${cluster}</b>.</p>
    <label>Password (12 characters or more)<input type="password" name="password" autocomplete="new-password" required minlength="12"></label>
    <label>Repeat the password<input type="password" name="password_confirm" autocomplete="new-password" required minlength="12"></label>
    ${secret
      ? html`<p>Add this key to your authenticator app (TOTP, 6 digits, 30 s):</p>
        <pre>${secret}</pre><p class="small">${uri}</p>
        <input type="hidden" name="otp_secret" value="${secret}">
        <label>Code shown by the app<input name="otp_code" inputmode="numeric" pattern="[0-9]{6}" required></label>`
      : raw("")}
    <button type="submit">Create account</button>
  </form>`;
}

function page(body: unknown) {
  return html`<!doctype html><html><head><meta charset="utf-8"><title>azgate: set up your account</title>
  <style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}label{display:block;margin:.8rem 0}
  input{display:block;width:100%;padding:.4rem;font-size:1rem}button{margin-top:1rem;padding:.5rem 1rem}.error{color:#b00020}
  pre{background:#f3f3f3;padding:.5rem;overflow-x:auto}.small{font-size:.75rem;word-break:break-all;color:#555}</style></head>
  <body><h1>azgate</h1>${body}</body></html>`;
}
