/**
 * The SSO endpoints. The client starts an attempt (POST /v1/sso/login) and
 * sends the browser to the identity provider; the provider sends it back to
 * the callback Teleport's connectors name (/v1/webapi/{oidc,github}/callback,
 * /v1/webapi/saml/acs/NAME); the proxy sends it on to the client's loopback
 * with a one-time code, and the client picks the certificate up
 * (POST /v1/sso/pickup) with that code and its secret.
 */
import { audit } from "../../audit/events.ts";
import { Hono, type Context } from "hono";
import { getCookie, deleteCookie } from "hono/cookie";
import { startWebSession } from "../web/session.ts";
import { errorFlash, withFlash } from "../web/flash.ts";
import { parseJsonObject } from "../../util/json.ts";
import { html } from "hono/html";
import { AzgateError, isAzgateError, toErrorBody } from "../../errors/index.ts";
import { importPublicKeyPem } from "../../pki/keys.ts";
import { CONNECTOR_KINDS, type Connector, type ConnectorKind, type GithubConnector, type OidcConnector, type SamlConnector } from "../../resources/connector.ts";
import type { ProxyContext } from "../context.ts";
import { KEYS, secretHash } from "../keys.ts";
import { LoginRateLimiter, remoteAddr } from "../rate-limit.ts";
import { checkClientRedirect, newAttemptId, pendingAttempt, pickUp, sameHash, saveAttempt, type SsoAttempt } from "./attempt.ts";
import { auditedByFinish, finishSsoLogin, type SsoIdentity } from "./finish.ts";
import { githubCallback, githubStart } from "./github.ts";
import { oidcCallback, oidcStart } from "./oidc.ts";
import { samlAcs, samlStart } from "./saml.ts";

/** The connector `name`, of any kind (names are unique enough in practice; `kind` settles a clash). */
async function findConnector(ctx: ProxyContext, name: string, kind?: string): Promise<Connector> {
  const kinds = kind ? CONNECTOR_KINDS.filter((k) => k === kind) : CONNECTOR_KINDS;
  for (const k of kinds) {
    const item = await ctx.backend.get<Connector>(KEYS.connector(k, name));
    if (item) return item.value;
  }
  const known = (await Promise.all(CONNECTOR_KINDS.map((k) => ctx.backend.list<Connector>(KEYS.connectors(k))))).flat().map((i) => i.value.metadata.name);
  throw new AzgateError("not_found", `no SSO connector named "${name}"${known.length ? `; this cluster has: ${known.join(", ")}` : "; this cluster has none"}`);
}

/** Starts an attempt at `connector`: its id is the OAuth state (SAML RelayState), which the IdP sends back with the answer. */
export async function beginSso(ctx: ProxyContext, connector: Connector, fields: Omit<SsoAttempt, "kind" | "connector" | "protocol" | "done">): Promise<{ id: string; url: string; expires: Date }> {
  const id = newAttemptId();
  const start = connector.kind === "oidc" ? await oidcStart(connector, id) : connector.kind === "saml" ? await samlStart(ctx, connector, id) : githubStart(connector, id);
  const expires = await saveAttempt(ctx, id, { kind: connector.kind, connector: connector.metadata.name, protocol: start.protocol, ...fields });
  return { id, url: start.url, expires };
}

export { findConnector };

/** The cookie that binds a web sign-in to the browser that started it (SameSite=None: SAML answers arrive by a cross-site POST). */
export const SSO_BROWSER_COOKIE = "__Host-azgate_sso";

export function ssoRoutes(ctx: ProxyContext, limiter: LoginRateLimiter) {
  const app = new Hono();

  app.post("/v1/sso/login", async (c) => {
    const remote = remoteAddr(c);
    limiter.check(remote);
    const body = parseJsonObject<Record<string, unknown>>(await c.req.text());
    const connector = await findConnector(ctx, String(body.connector ?? ""), typeof body.kind === "string" ? body.kind : undefined);
    const publicKeyPem = String(body.public_key_pem ?? "");
    await importPublicKeyPem(publicKeyPem).catch(() => {
      throw new AzgateError("bad_parameter", "public_key_pem must be a PEM-encoded ECDSA P-256 public key");
    });
    const secretHash = String(body.secret_hash ?? "");
    if (!/^[0-9a-f]{64}$/.test(secretHash)) throw new AzgateError("bad_parameter", "secret_hash must be the hex SHA-256 of the client's secret");
    const client_redirect = checkClientRedirect(String(body.redirect_url ?? ""));
    const { id, url, expires } = await beginSso(ctx, connector, {
      public_key_pem: publicKeyPem,
      client_redirect,
      secret_hash: secretHash,
      ttl_ms: typeof body.ttl_ms === "number" ? body.ttl_ms : undefined,
      remote_addr: remote,
    });
    return c.json({ attempt: id, auth_url: url, kind: connector.kind, display: connector.spec.display ?? connector.metadata.name, expires: expires.toISOString() });
  });

  app.post("/v1/sso/pickup", async (c) => {
    limiter.check(remoteAddr(c));
    const body = parseJsonObject<Record<string, unknown>>(await c.req.text());
    return c.json(await pickUp(ctx, String(body.attempt ?? ""), String(body.code ?? ""), String(body.secret ?? "")));
  });

  // The callbacks cost the proxy a round trip to the IdP (or an XML signature check): rate-limited like logins.
  const callbacks = new LoginRateLimiter(ctx.clock, 60);
  app.use("/v1/webapi/*", async (c, next) => {
    callbacks.check(remoteAddr(c));
    await next();
  });
  app.get("/v1/webapi/oidc/callback", (c) =>
    callback(c, ctx, "oidc", c.req.query("state") ?? "", (connector, attempt) =>
      oidcCallback(connector as OidcConnector, new URL(c.req.url).searchParams, {
        state: c.req.query("state") ?? "",
        pkce_verifier: attempt.protocol.pkce_verifier ?? "",
        nonce: attempt.protocol.nonce ?? "",
      }, ctx.clock.now()),
    ),
  );
  app.get("/v1/webapi/github/callback", (c) =>
    callback(c, ctx, "github", c.req.query("state") ?? "", (connector) => {
      const error = c.req.query("error");
      if (error) throw new AzgateError("sso_failed", `GitHub: ${c.req.query("error_description") ?? error}`);
      return githubCallback(connector as GithubConnector, c.req.query("code") ?? "");
    }),
  );
  app.post("/v1/webapi/saml/acs/:name", async (c) => {
    const form = await c.req.parseBody();
    const relayState = typeof form.RelayState === "string" ? form.RelayState : "";
    return callback(c, ctx, "saml", relayState, (connector, attempt) => {
      if (connector.metadata.name !== c.req.param("name")) throw new AzgateError("sso_failed", "this SAML response was posted to another connector's ACS");
      return samlAcs(ctx, connector as SamlConnector, typeof form.SAMLResponse === "string" ? form.SAMLResponse : "", attempt.protocol.saml_request_id ?? "");
    });
  });
  return app;
}

/**
 * A browser arriving from the identity provider. Unknown attempts get an
 * error page; a known attempt ends at the client's loopback either way, with
 * the code or with the error, so the terminal says what happened.
 */
async function callback(c: Context, ctx: ProxyContext, kind: ConnectorKind, state: string, verify: (connector: Connector, attempt: SsoAttempt) => Promise<SsoIdentity>) {
  noStore(c);
  let item;
  try {
    item = await pendingAttempt(ctx, state, kind);
  } catch (e) {
    await ctx.audit.emit(audit("USER_SSO_LOGIN_FAILED", { method: kind, success: false, error: (e as Error).message, remote_addr: remoteAddr(c) }));
    return errorPage(c, e);
  }
  const web = item.value.web;
  try {
    if (web && !sameBrowser(c, web.browser_hash)) throw new AzgateError("sso_attempt_invalid", "this sign-in was started in another browser; start it again here");
    const connector = await findConnector(ctx, item.value.connector, kind);
    const who = await verify(connector, item.value);
    const end = await finishSsoLogin(ctx, connector, item, who);
    if ("redirect" in end) {
      // A CLI's attempt signs in the CLI only. Nothing ties it to this browser (it started in a terminal), and its
      // callback link works in any browser: signing that one in would let an attacker's own link plant the
      // attacker's session in a victim's browser (login CSRF). The web UI has its own sign-in.
      return c.redirect(end.redirect, 302);
    }
    deleteCookie(c, SSO_BROWSER_COOKIE, { path: "/", secure: true });
    await startWebSession(ctx, c, end.web, end.ttlMs);
    // Through a page of ours (web/ui.ts /continue): this request came from the identity provider's site,
    // and a browser does not send a SameSite=Strict cookie on a navigation another site started.
    return c.redirect("/web/continue", 303);
  } catch (e) {
    await ctx.backend.delete(item.key);
    const message = isAzgateError(e) ? e.message : "internal error; see the proxy log";
    if (!isAzgateError(e)) console.error("[proxy] SSO callback failed:", e);
    else if (!auditedByFinish(e)) await ctx.audit.emit(audit("USER_SSO_LOGIN_FAILED", { method: kind, connector: item.value.connector, ...(web ? { via: "web" } : {}), success: false, error: message, remote_addr: remoteAddr(c) }));
    // The page shows a fixed text for the code (web/flash.ts), never words from the URL; the audit event has the message.
    if (web) return c.redirect(withFlash("/web/login", { error: errorFlash(e, "sso_failed") }), 303);
    const back = new URL(item.value.client_redirect);
    back.searchParams.set("error", message);
    return c.redirect(back.toString(), 302);
  }
}

function sameBrowser(c: Context, hash: string): boolean {
  const nonce = getCookie(c, SSO_BROWSER_COOKIE) ?? "";
  return nonce.length > 0 && sameHash(secretHash(nonce), hash);
}

function noStore(c: Context) {
  c.header("Cache-Control", "no-store");
  c.header("Referrer-Policy", "no-referrer");
}

function errorPage(c: Context, e: unknown) {
  const err = isAzgateError(e) ? e : new AzgateError("internal", "internal error; see the proxy log");
  c.header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
  return c.html(
    html`<!doctype html><html><head><meta charset="utf-8"><title>azgate: login failed</title>
    <style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}.error{color:#b00020}</style></head>
    <body><h1>azgate</h1><p class="error" id="error">Login failed: ${toErrorBody(err).error.message}</p></body></html>`,
    err.status as 403,
  );
}
