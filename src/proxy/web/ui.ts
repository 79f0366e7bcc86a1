/**
 * The web UI, served by the proxy on its own port under /web. Server-rendered
 * pages (hono/html), one stylesheet and one small script from the binary.
 * Every response forbids framing, inline script and anything from elsewhere;
 * every page resolves the session's caller afresh (web/session.ts); every
 * form post needs the session's CSRF token and a same-origin browser.
 */
import { audit } from "../../audit/events.ts";
import { Hono, type Context } from "hono";
import { html } from "hono/html";
import { AzgateError, isAzgateError } from "../../errors/index.ts";
import type { ProxyContext } from "../context.ts";
import { servedApps, type AppRegistry } from "../registry.ts";
import type { Caller } from "../caller.ts";
import { authenticate } from "../login.ts";
import { setCookie } from "hono/cookie";
import { CONNECTOR_KINDS, type Connector } from "../../resources/connector.ts";
import { KEYS, newSecret, secretHash } from "../keys.ts";
import { beginSso, findConnector, SSO_BROWSER_COOKIE } from "../sso/routes.ts";
import { remoteAddr, type LoginRateLimiter } from "../rate-limit.ts";
import * as requests from "../access-requests.ts";
import { isAuditedRefusal } from "../refusals.ts";
import { checkCsrf, currentSession, endWebSession, startWebSession, type WebSession } from "./session.ts";
import { layout, securityHeaders, type Frame, type Html } from "./layout.ts";
import { errorFlash, flashFrom, refusedText, withFlash } from "./flash.ts";
import { SCRIPT, STYLE } from "./assets.ts";
import { accessPage } from "./pages/access.ts";
import { newRequestPage, requestDetail, requestsPage } from "./pages/requests.ts";
import { auditExport, auditPage, filtersFrom } from "./pages/audit.ts";
import { commandFiltersFrom, commandsPage } from "./pages/commands.ts";
import { adminPage } from "./pages/admin.ts";
import { createLock, removeLock } from "../locks.ts";
import { beginWebAuthnLogin, finishWebAuthnLogin, relyingParty } from "../login.ts";
import { assertionOptions, beginRegistration, finishRegistration, listDevices, registrationCheck, removeDevice } from "../webauthn.ts";
import { cliStepPage, keysPage, passkeySignIn } from "./pages/keys.ts";
import { answerOf, anonymousJsonForm, jsonForm } from "./json-form.ts";
import { pendingAttempt, scopeText } from "../browser-attempt.ts";
import { userStamp, type UserAuth } from "../users.ts";
import { beginBrowserStep, finishBrowserStep } from "../browser-flows.ts";
import { knownIdentities } from "../known-identities.ts";

type Env = { Variables: { session: WebSession; caller: Caller } };

export function webUi(ctx: ProxyContext, opts: { limiter: LoginRateLimiter; registry: AppRegistry; publicUrl: () => string }) {
  const web = new Hono<Env>();
  web.use("*", securityHeaders());
  web.get("/assets/app.css", (c) => c.body(STYLE, 200, { "content-type": "text/css; charset=utf-8" }));
  web.get("/assets/app.js", (c) => c.body(SCRIPT, 200, { "content-type": "text/javascript; charset=utf-8" }));

  // What a glob in request.azure_identities offers, and what a short name may mean (proxy/known-identities.ts).
  const known = (c: Context<Env>) => () => knownIdentities(ctx, opts.registry, c.get("caller"));
  const frame = (c: Context<Env>, title: string, current?: Frame["current"], flash?: Frame["flash"]): Frame => ({ title, current, flash, caller: c.get("caller"), csrf: c.get("session")?.csrf, cluster: ctx.cluster.name, now: ctx.clock.now() });
  const flashOf = (c: Context) => flashFrom({ ok: c.req.query("ok"), error: c.req.query("error") });
  const signInPage = async (c: Context, flash?: Frame["flash"], status: 200 | 400 | 401 | 403 | 404 | 429 = 200, next = "") => {
    const connectors = (await Promise.all(CONNECTOR_KINDS.map((k) => ctx.backend.list<Connector>(KEYS.connectors(k))))).flat().map((i) => i.value);
    const mode = ctx.settings.secondFactor;
    return c.html(
      layout(
        { title: "Sign in", cluster: ctx.cluster.name, flash },
        html`<h1>Sign in</h1>
          ${mode === "webauthn"
            ? html`<p>This cluster signs in with a passkey or security key.</p>
              <p><a class="button" href="/web/login/passkey${next ? `?next=${encodeURIComponent(next)}` : ""}">Sign in with a passkey or security key</a></p>`
            : html`<form method="post" action="/web/login">
                ${next ? html`<input type="hidden" name="next" value="${next}">` : ""}
                <label>User <input name="user" autocomplete="username" required autofocus></label>
                <label>Password <input type="password" name="password" autocomplete="current-password" required></label>
                ${mode === "otp" || mode === "on" ? html`<label>Authenticator code <input name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" required></label>` : ""}
                ${mode === "optional" ? html`<label>Authenticator code, if you set one up <input name="otp" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}"></label>` : ""}
                <button type="submit">Sign in</button>
              </form>`}
          ${connectors.length
            ? html`<h2>Or sign in with</h2>
              <p>${connectors.map((k) => html`<a class="button secondary sso" href="/web/sso/${k.kind}/${encodeURIComponent(k.metadata.name)}">${k.spec.display ?? k.metadata.name}</a> `)}</p>`
            : ""}
          ${mode === "webauthn" ? "" : html`<p><a href="/web/login/passkey${next ? `?next=${encodeURIComponent(next)}` : ""}">Sign in with a passkey or security key</a></p>`}
          <p class="muted">New here? Open the invite link your administrator sent you.</p>`,
      ),
      status,
    );
  };

  // Arriving from another site (the CLI's loopback page, a mail client), a browser does not send the
  // SameSite=Strict session cookie; this page of ours moves on, same-site, and then it does.
  web.get("/continue", (c) => {
    const next = safeNext(c.req.query("next"));
    const to = next ? `${next}?hop=1` : "/web";
    return c.html(html`<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=${to}"><title>azgate</title></head><body><p><a href="${to}">Continue to azgate</a></p></body></html>`);
  });

  // ---- sign in and out ----
  web.get("/login", (c) => signInPage(c, flashOf(c), 200, safeNext(c.req.query("next"))));
  web.post("/login", async (c) => {
    const form = await c.req.parseBody();
    const get = (k: string) => (typeof form[k] === "string" ? (form[k] as string) : "");
    try {
      checkCsrf(c, null, undefined);
      const remote = remoteAddr(c);
      opts.limiter.check(remote);
      const { identity, maxTtlMs } = await authenticate(ctx, { user: get("user"), password: get("password"), otp: get("otp") || undefined, remote_addr: remote, via: "web" });
      await startWebSession(ctx, c, identity, maxTtlMs);
      return c.redirect(safeNext(get("next")) || "/web", 303);
    } catch (e) {
      if (!isAzgateError(e)) throw e;
      return signInPage(c, { text: e.message, error: true }, e.status as 401, safeNext(get("next")));
    }
  });

  // Passkeys (proxy/webauthn.ts): the password, then the browser's WebAuthn, then a session. The page's script posts forms and reads JSON.
  const rp = () => relyingParty(ctx, opts.publicUrl());
  web.get("/login/passkey", (c) => c.html(layout({ title: "Sign in with a passkey", cluster: ctx.cluster.name, flash: flashOf(c) }, passkeySignIn(safeNext(c.req.query("next")), ctx.settings.secondFactor === "webauthn"))));
  const anonymous = (handler: Parameters<typeof anonymousJsonForm>[1]) => anonymousJsonForm(opts.limiter, handler);
  web.post("/login/passkey/begin", anonymous((_c, f, remote) => beginWebAuthnLogin(ctx, rp(), { user: String(f.user ?? ""), password: String(f.password ?? ""), remote_addr: remote, via: "web" })));
  web.post(
    "/login/passkey",
    anonymous(async (c, f, remote) => {
      const { identity, maxTtlMs } = await finishWebAuthnLogin(ctx, rp(), { user: String(f.user ?? ""), webauthn: answerOf(f, "response"), remote_addr: remote, via: "web" });
      await startWebSession(ctx, c, identity, maxTtlMs);
      return { next: safeNext(String(f.next ?? "")) || "/web" };
    }),
  );

  // A CLI's login or fresh check in the browser (proxy/browser-flows.ts): no web session needed, the attempt says who and what.
  web.get("/cli/:id", async (c) => {
    try {
      const { value } = await pendingAttempt(ctx, c.req.param("id"));
      return c.html(layout({ title: "azgate CLI", cluster: ctx.cluster.name }, cliStepPage(c.req.param("id"), { purpose: value.purpose, user: value.user, what: scopeText(value.scope) })));
    } catch (e) {
      if (!isAzgateError(e)) throw e;
      return c.html(layout({ title: "azgate CLI", cluster: ctx.cluster.name }, html`<h1>azgate CLI</h1><p class="error">${e.message}</p>`), 410);
    }
  });
  web.post("/cli/:id/begin", anonymous((c, f, remote) => beginBrowserStep(ctx, rp(), (c.req.param("id") ?? ""), f, remote)));
  web.post("/cli/:id", anonymous((c, f, remote) => finishBrowserStep(ctx, rp(), (c.req.param("id") ?? ""), { ...f, response: answerOf(f, "response") }, remote)));

  // A link, not a form: the browser leaves for the identity provider, which a form's CSP (form-action 'self') would stop.
  // Starting an attempt changes nothing for anyone; it is bound to this browser by a cookie (sso/routes.ts).
  web.get("/sso/:kind/:name", async (c) => {
    try {
      const remote = remoteAddr(c);
      opts.limiter.check(remote);
      const connector = await findConnector(ctx, c.req.param("name"), c.req.param("kind"));
      const nonce = newSecret(24);
      const { url, expires } = await beginSso(ctx, connector, { public_key_pem: "", client_redirect: "", secret_hash: "", remote_addr: remote, web: { browser_hash: secretHash(nonce) } });
      setCookie(c, SSO_BROWSER_COOKIE, nonce, { path: "/", secure: true, httpOnly: true, sameSite: "None", expires });
      return c.redirect(url, 303);
    } catch (e) {
      if (!isAzgateError(e)) throw e;
      // The connector's name is the link's: the page names the refusal by its code (web/flash.ts), never the words.
      return signInPage(c, flashFrom({ error: errorFlash(e, "sso_failed") }), e.status as 404);
    }
  });

  // ---- everything else needs a live session ----
  const authed = new Hono<Env>();
  authed.use("*", async (c, next) => {
    const now = await currentSession(ctx, c);
    if (!now) {
      // A link from elsewhere (a notification in chat or mail) arrives without the Strict cookie: one hop
      // through a page of ours, and if there is still no session, sign-in, then back to where it pointed.
      if (c.req.method === "GET" && c.req.path !== "/web" && c.req.header("sec-fetch-site") !== "same-origin" && !c.req.query("hop")) return c.redirect(`/web/continue?next=${encodeURIComponent(c.req.path)}`, 303);
      return c.redirect(c.req.method === "GET" && c.req.path !== "/web" ? `/web/login?next=${encodeURIComponent(c.req.path)}` : "/web/login", 303);
    }
    if ("ended" in now) return c.redirect(withFlash("/web/login", { error: now.ended }), 303);
    c.set("session", now.session);
    c.set("caller", now.caller);
    if (c.req.method === "POST") {
      const form = await c.req.parseBody();
      checkCsrf(c, now.session, form._csrf);
    }
    await next();
  });
  // A refused page or form (a forged post, a page the roles do not open, an admin form without the rule) is an access decision: audited.
  authed.onError(async (err, c) => {
    if (!isAzgateError(err)) throw err;
    const caller = c.get("caller");
    const session = c.get("session");
    if (isAuditedRefusal(err) && caller && session) {
      await ctx.audit
        .emit(audit("WEB_REQUEST_DENIED", { user: caller.name, session_id: session.identity.session_id, method: c.req.method, path: c.req.path, error_code: err.code, reason: err.message, success: false }))
        .catch((e) => console.error("[proxy] audit failed:", e));
    }
    const text = c.req.method === "GET" ? refusedText(err.code) : err.message;
    return c.html(layout({ title: "Refused", cluster: ctx.cluster.name, caller, csrf: session?.csrf, flash: { text, error: true } }, html`<p><a href="/web">Back to my access</a></p>`), err.status as 403);
  });

  authed.post("/logout", async (c) => {
    await endWebSession(ctx, c, c.get("session"));
    return c.redirect(withFlash("/web/login", { ok: "signed_out" }), 303);
  });

  authed.get("/", async (c) => c.html(layout(frame(c, "My access", "access", flashOf(c)), await accessPage(ctx, opts.registry, c.get("caller"), proxyHost(c, opts.publicUrl()), known(c)))));

  authed.get("/requests", async (c) => c.html(layout(frame(c, "Requests", "requests", flashOf(c)), await requestsPage(ctx, c.get("caller"), known(c)))));
  authed.get("/requests/new", async (c) => c.html(layout(frame(c, "New request", "requests"), await newRequestPage(ctx, c.get("caller"), c.get("session").csrf, { app: c.req.query("app"), azure_identity: c.req.query("azure_identity") }, known(c)))));
  authed.post("/requests", async (c) => {
    const f = await c.req.parseBody();
    const s = (k: string) => (typeof f[k] === "string" && f[k] !== "" ? (f[k] as string) : undefined);
    try {
      const r = await requests.createRequest(ctx, c.get("caller"), { app: s("app"), azure_identity: s("azure_identity"), duration: s("duration"), reason: s("reason"), ticket: s("ticket") }, servedApps(opts.registry), known(c));
      return c.redirect(withFlash(`/web/requests/${r.metadata.name}`, { ok: "request_created" }), 303);
    } catch (e) {
      if (!isAzgateError(e) || e.code !== "bad_parameter") throw e;
      return c.html(layout(frame(c, "New request", "requests", { text: e.message, error: true }), await newRequestPage(ctx, c.get("caller"), c.get("session").csrf, { app: s("app"), azure_identity: s("azure_identity") }, known(c))), 400);
    }
  });
  authed.get("/requests/:id", async (c) => {
    const r = await requests.getRequest(ctx, c.get("caller"), c.req.param("id"));
    // The lifecycle's answer, as for the API: the page offers exactly the actions that would succeed.
    const actions = await requests.requestActions(ctx, c.get("caller"), r);
    const reviewNeedsCode = c.get("caller").roles.some((role) => role.spec.options?.review_mfa);
    const reviewWithPasskey = reviewNeedsCode && (await listDevices(ctx, c.get("caller")).catch(() => [])).length > 0;
    const may = { review: actions.review.allowed, revoke: actions.revoke.allowed, cancel: actions.cancel.allowed, reviewNeedsCode, reviewWithPasskey };
    return c.html(layout(frame(c, "Request", "requests", flashOf(c)), requestDetail(r, c.get("session").csrf, may, ctx.clock.now())));
  });
  authed.post("/requests/:id/review", async (c) => {
    const f = await c.req.parseBody();
    // A reason is optional, as in the API and the CLI (one rule: the lifecycle's).
    const reason = typeof f.reason === "string" ? f.reason.trim() : "";
    const r = await requests.reviewRequest(ctx, c.get("caller"), c.req.param("id"), { state: String(f.state ?? ""), reason, otp: typeof f.otp === "string" ? f.otp : undefined });
    return c.redirect(withFlash(`/web/requests/${r.metadata.name}`, { ok: "reviewed" }), 303);
  });
  // review_mfa with a passkey: a challenge bound to this request, then the review with the answer (the page's script).
  authed.post(
    "/requests/:id/review/begin",
    jsonForm<Context<Env>>(async (c) => {
      const caller = c.get("caller");
      if (!caller.user) throw new AzgateError("access_denied", "this session cannot give a passkey check");
      // A challenge only for a request the reviewer may see (getRequest refuses others): no records for made-up IDs.
      await requests.getRequest(ctx, caller, (c.req.param("id") ?? ""));
      return assertionOptions(ctx, rp(), "review", caller.name, userStamp(caller.user).id, c.req.param("id"));
    }),
  );
  authed.post(
    "/requests/:id/review/passkey",
    jsonForm<Context<Env>>(async (c, f) => {
      const reason = typeof f.reason === "string" ? f.reason.trim() : "";
      const r = await requests.reviewRequest(ctx, c.get("caller"), (c.req.param("id") ?? ""), { state: String(f.state ?? ""), reason, passkey: { rp: rp(), answer: answerOf(f, "response") } });
      return { next: withFlash(`/web/requests/${r.metadata.name}`, { ok: "reviewed" }) };
    }),
  );
  authed.post("/requests/:id/revoke", async (c) => {
    const f = await c.req.parseBody();
    const r = await requests.revokeRequest(ctx, c.get("caller"), c.req.param("id"), { reason: typeof f.reason === "string" ? f.reason : "" });
    return c.redirect(withFlash(`/web/requests/${r.metadata.name}`, { ok: "revoked" }), 303);
  });
  authed.post("/requests/:id/cancel", async (c) => {
    const r = await requests.cancelRequest(ctx, c.get("caller"), c.req.param("id"));
    return c.redirect(withFlash(`/web/requests/${r.metadata.name}`, { ok: "cancelled" }), 303);
  });

  // Passkeys: a change is proven with one the person has (or, before the first, the password again): web/pages/keys.ts's script.
  authed.get("/keys", async (c) => {
    const caller = c.get("caller");
    const devices = await listDevices(ctx, caller);
    const auth = (await ctx.backend.get<UserAuth>(KEYS.userAuth(caller.name)))?.value;
    return c.html(layout(frame(c, "Passkeys", "keys", flashOf(c)), keysPage(devices, c.get("session").csrf, { password: !!auth?.password_hash, otp: !!auth?.totp_secret })));
  });
  // The first call: the check's challenge when the person has a passkey; with the check's answer (or the password), the registration's.
  authed.post(
    "/keys/begin",
    jsonForm<Context<Env>>(async (c, f) => {
      const check = answerOf(f, "check");
      if (!check && typeof f.password !== "string") {
        const challenge = await registrationCheck(ctx, c.get("caller"), rp());
        if (challenge) return { check: challenge };
      }
      return beginRegistration(ctx, c.get("caller"), rp(), { check, password: typeof f.password === "string" ? f.password : undefined, otp: typeof f.otp === "string" ? f.otp : undefined });
    }),
  );
  authed.post(
    "/keys",
    jsonForm<Context<Env>>(async (c, f) => {
      await finishRegistration(ctx, c.get("caller"), rp(), answerOf(f, "response"), String(f.name ?? ""));
      return { next: withFlash("/web/keys", { ok: "passkey_added" }) };
    }),
  );
  authed.post("/keys/:id/delete/begin", jsonForm<Context<Env>>((c) => registrationCheck(ctx, c.get("caller"), rp())));
  authed.post(
    "/keys/:id/delete",
    jsonForm<Context<Env>>(async (c, f) => {
      await removeDevice(ctx, c.get("caller"), rp(), (c.req.param("id") ?? ""), answerOf(f, "response"));
      return { next: withFlash("/web/keys", { ok: "passkey_removed" }) };
    }),
  );

  authed.get("/audit", async (c) => c.html(layout(frame(c, "Audit", "audit"), await auditPage(ctx, c.get("caller"), filtersFrom(c.req.query()), Number(c.req.query("page") ?? 1)))));
  authed.get("/audit/commands", async (c) => c.html(layout(frame(c, "Commands", "audit"), await commandsPage(ctx, c.get("caller"), commandFiltersFrom(c.req.query())))));
  authed.get("/audit/export", async (c) => {
    const out = await auditExport(ctx, c.get("caller"), filtersFrom(c.req.query()), c.req.query("format") ?? "jsonl");
    await ctx.audit.emit(audit("AUDIT_EXPORTED", { user: c.get("caller").name, filters: filtersFrom(c.req.query()), format: out.ext }));
    return c.body(out.body, 200, { "content-type": out.type, "content-disposition": `attachment; filename="azgate-audit.${out.ext}"` });
  });

  authed.get("/admin", async (c) => c.html(layout(frame(c, "Admin", "admin", flashOf(c)), await adminPage(ctx, opts.registry, c.get("caller"), c.get("session").csrf))));
  authed.post("/admin/locks", async (c) => {
    const f = await c.req.parseBody();
    const kind = String(f.kind ?? "");
    if (!["user", "session_id", "role", "azure_identity"].includes(kind)) throw new AzgateError("bad_parameter", "choose what to lock: a user, a session ID, a role or an Azure identity");
    await createLock(ctx, c.get("caller"), { target: { [kind]: String(f.value ?? "").trim() }, message: typeof f.message === "string" && f.message ? f.message : undefined, ttl: typeof f.ttl === "string" && f.ttl ? f.ttl : undefined });
    return c.redirect(withFlash("/web/admin", { ok: "lock_created" }), 303);
  });
  authed.post("/admin/locks/:name/delete", async (c) => {
    await removeLock(ctx, c.get("caller"), c.req.param("name"));
    return c.redirect(withFlash("/web/admin", { ok: "lock_lifted" }), 303);
  });

  web.route("/", authed);
  return web;
}

/** Only a page of ours: a path under /web/, never another host (//evil.example) or a scheme. */
function safeNext(next: string | undefined): string {
  return next && /^\/web\/[A-Za-z0-9/_-]*$/.test(next) ? next : "";
}

/** host:port for `azgate login --proxy`: as the browser reached us (through a TLS front, its public name), else the configured one. */
function proxyHost(c: Context, publicUrl: string): string {
  return c.req.header("host") ?? new URL(publicUrl).host;
}
