import { Hono, type Context } from "hono";
import { audit } from "../audit/events.ts";
import { auditCommands } from "./audit-commands.ts";
import { exportPage } from "./audit-export/pages.ts";
import { pickUpBrowserLogin, startBrowserCheck, startBrowserLogin } from "./browser-flows.ts";
import { AzgateError, isAzgateError, toErrorBody } from "../errors/index.ts";
import { checkProofBody, verifyProof } from "../auth/proof-verify.ts";
import { parseJsonObject } from "../util/json.ts";
import { BODY_LIMITS, limitBody, requireJson } from "./limits.ts";
import { parseResources } from "../resources/parse.ts";
import { VERSION } from "../version.ts";
import { VERSION_HEADER, versionRefusal } from "../api/version.ts";
import { clusterPins, pemOf } from "./cluster.ts";
import { allowedAzureIdentities } from "../rbac/engine.ts";
import { auditRetired, pingTrust, reissueCert, trustHeader } from "./rotation-trust.ts";
import { TRUST_HEADER } from "../api/client.ts";
import { caType, rotateAuthority, rotateCommand, rotationReport } from "./rotation.ts";
import { caPin } from "../pki/pin.ts";
import type { PingResponse } from "../api/types.ts";
import type { ProxyContext } from "./context.ts";
import { resolveCaller, type Caller } from "./caller.ts";
import { botFields, type Identity } from "../pki/identity.ts";
import { beginWebAuthnLogin, login, loginWithWebAuthn, relyingParty } from "./login.ts";
import { acceptInvite, describeInvite } from "./users.ts";
import * as admin from "./admin.ts";
import { createLock, type LockTarget } from "./locks.ts";
import { probeRoutes, type Readiness } from "../health/probes.ts";
import { KEYS } from "./keys.ts";
import { LoginRateLimiter, remoteAddr } from "./rate-limit.ts";
import { clientAddressMiddleware } from "./client-address.ts";
import { invitePages } from "./web/invite.ts";
import { webUi } from "./web/ui.ts";
import { isAuditedRefusal } from "./refusals.ts";
import { ssoRoutes } from "./sso/routes.ts";
import { join } from "./join.ts";
import { addBot, listBots, removeBot } from "./bots/admin.ts";
import { renewBot } from "./bots/renew.ts";
import { issueAppCert, listApps } from "./apps.ts";
import { servedApps, type AppRegistry } from "./registry.ts";
import { explainRequest, type ExplainRequest } from "./explain.ts";
import * as requests from "./access-requests.ts";
import { takeBackup } from "./backup.ts";
import { knownIdentities } from "./known-identities.ts";
import type { TunnelServer } from "./tunnels.ts";

type Env = { Variables: { caller: Caller; body: string; certExpires: Date; issuerPin: string } };

/**
 * The proxy's HTTP API. Public routes: cluster discovery, login, invites.
 * Everything else needs a proof of possession (see auth/proof.ts) and is
 * authorised by the caller's current roles.
 */
async function auditRefusal(ctx: ProxyContext, c: Context, identity: Identity, e: unknown): Promise<void> {
  if (!isAuditedRefusal(e)) return;
  await ctx.audit
    .emit(audit("API_REQUEST_DENIED", { user: identity.name, ...botFields(identity), session_id: identity.session_id, ...(identity.route ? { app: identity.route.app, azure_identity: identity.route.azure_identity } : {}), method: c.req.method, path: new URL(c.req.url).pathname, error_code: e.code, reason: e.message, success: false }))
    .catch((err) => console.error("[proxy] audit failed:", err));
}

export function createApi(ctx: ProxyContext, opts: { publicUrl: () => string; registry: AppRegistry; tunnels?: TunnelServer }) {
  const app = new Hono<Env>();
  const limiter = new LoginRateLimiter(ctx.clock);
  // Before anything reads the caller's address.
  app.use("*", clientAddressMiddleware(ctx.settings.trustedProxies));

  app.onError((err, c) => {
    if (isAzgateError(err)) return c.json(toErrorBody(err), err.status as 400);
    console.error(`[proxy] internal error on ${c.req.method} ${new URL(c.req.url).pathname}:`, err);
    return c.json(toErrorBody(new AzgateError("internal", "internal error; see the proxy log")), 500);
  });
  app.notFound((c) => c.json(toErrorBody(new AzgateError("not_found", `no such endpoint: ${c.req.method} ${new URL(c.req.url).pathname}`)), 404));

  // Bodies are bounded before they are read; JSON routes take JSON only (no cross-site form posts).
  app.post("/v1/webapi/saml/acs/*", limitBody(BODY_LIMITS.samlResponse));
  app.on(["POST", "PUT", "PATCH", "DELETE"], "/v1/*", async (c, next) => {
    if (c.req.path.startsWith("/v1/webapi/saml/acs/")) return next();
    return requireJson(c, next);
  });
  for (const route of ["/v1/auth/*", "/v1/invites/*", "/v1/join", "/v1/sso/*"]) app.post(route, limitBody(BODY_LIMITS.public));
  app.post("/web/*", limitBody(BODY_LIMITS.public));

  // A client of a version this proxy no longer serves is refused, naming both (api/version.ts). Not /v1/ping, which
  // says the proxy's version, nor the browser's routes (SSO, SAML), which carry none.
  app.use("/v1/*", async (c, next) => {
    if (c.req.path === "/v1/ping" || c.req.path.startsWith("/v1/sso/") || c.req.path.startsWith("/v1/webapi/") || c.req.path.startsWith("/v1/tunnel/")) return next();
    const tooOld = versionRefusal(c.req.header(VERSION_HEADER), c.req.path === "/v1/join" ? "agent" : "client");
    if (tooOld) throw tooOld;
    return next();
  });

  // ---- public ----
  app.route("/", probeRoutes(() => proxyReadiness(ctx, opts.tunnels)));
  app.get("/v1/ping", async (c) =>
    c.json({
      cluster_name: ctx.cluster.name,
      version: VERSION,
      second_factor: ctx.settings.secondFactor,
      ca_pins: await clusterPins(ctx.cluster),
      // What a CI token must name as its audience to join (bots.audience, else the cluster's name).
      bot_audience: ctx.settings.bots.audience ?? ctx.cluster.name,
      ...(await pingTrust(ctx)),
    } satisfies PingResponse),
  );
  app.post("/v1/auth/login", async (c) => {
    const remote = remoteAddr(c);
    limiter.check(remote);
    const body = await jsonBody<Record<string, unknown>>(c);
    const res = await login(ctx, {
      user: String(body.user ?? ""),
      password: String(body.password ?? ""),
      otp: body.otp === undefined ? undefined : String(body.otp),
      public_key_pem: String(body.public_key_pem ?? ""),
      ttl_ms: typeof body.ttl_ms === "number" ? body.ttl_ms : undefined,
      remote_addr: remote,
    });
    return c.json(res);
  });
  // A login with a passkey or security key: the password, then a challenge; the authenticator's answer, then a certificate.
  app.post("/v1/auth/webauthn/begin", async (c) => {
    const remote = remoteAddr(c);
    limiter.check(remote);
    const body = await jsonBody<Record<string, unknown>>(c);
    return c.json(await beginWebAuthnLogin(ctx, relyingParty(ctx, opts.publicUrl()), { user: String(body.user ?? ""), password: String(body.password ?? ""), remote_addr: remote }));
  });
  app.post("/v1/auth/webauthn/login", async (c) => {
    const remote = remoteAddr(c);
    limiter.check(remote);
    const body = await jsonBody<Record<string, unknown>>(c);
    return c.json(await loginWithWebAuthn(ctx, relyingParty(ctx, opts.publicUrl()), { user: String(body.user ?? ""), webauthn: body.webauthn, public_key_pem: String(body.public_key_pem ?? ""), ttl_ms: typeof body.ttl_ms === "number" ? body.ttl_ms : undefined, remote_addr: remote }));
  });
  // A CLI login done in the browser (browser-flows.ts): started here, finished on /web/cli/ID, the certificate picked up with code and secret.
  app.post("/v1/auth/browser/login", async (c) => {
    const remote = remoteAddr(c);
    limiter.check(remote);
    return c.json(await startBrowserLogin(ctx, await jsonBody<Record<string, unknown>>(c), opts.publicUrl(), remote));
  });
  app.post("/v1/auth/browser/pickup", async (c) => {
    limiter.check(remoteAddr(c));
    return c.json(await pickUpBrowserLogin(ctx, await jsonBody<Record<string, unknown>>(c)));
  });
  app.get("/v1/invites/:token", async (c) => c.json(await describeInvite(ctx, c.req.param("token"))));
  app.post("/v1/invites/:token/accept", async (c) => {
    const remote = remoteAddr(c);
    limiter.check(remote);
    const body = await jsonBody<{ password?: string; otp_secret?: string; otp_code?: string }>(c);
    return c.json(await acceptInvite(ctx, c.req.param("token"), { password: String(body.password ?? ""), otp_secret: body.otp_secret, otp_code: body.otp_code }, remote));
  });
  app.route("/web", invitePages(ctx, limiter, () => relyingParty(ctx, opts.publicUrl())));
  app.route("/web", webUi(ctx, { limiter, registry: opts.registry, publicUrl: opts.publicUrl }));
  app.get("/", (c) => c.redirect("/web", 302));
  app.get("/web/", (c) => c.redirect("/web", 302));
  app.route("/", ssoRoutes(ctx, limiter));
  app.post("/v1/join", async (c) => {
    const remote = remoteAddr(c);
    limiter.check(remote);
    const body = await jsonBody<Record<string, unknown>>(c);
    const str = (v: unknown) => (typeof v === "string" ? v : undefined);
    return c.json(
      await join(
        ctx,
        { token: String(body.token ?? ""), type: String(body.type ?? ""), public_key_pem: String(body.public_key_pem ?? ""), host_name: str(body.host_name), join_method: str(body.join_method), id_token: str(body.id_token), ttl_ms: typeof body.ttl_ms === "number" ? body.ttl_ms : undefined },
        remote,
      ),
    );
  });
  // WebSocket tunnels are not routes here: the server answers their upgrades (tunnels.ts upgrade, runtime/serve.ts).

  // ---- authenticated ----
  const authed = new Hono<Env>();
  // The proof is checked before a byte of the body is read; then the body, bounded, against the proof's digest.
  authed.use("*", async (c, next) => {
    const url = new URL(c.req.url);
    const { identity, cert, claims, issuer } = await verifyProof({
      authorization: c.req.header("authorization"),
      method: c.req.method,
      pathAndQuery: url.pathname + url.search,
      bodyFollows: true,
      cas: ctx.cluster.views.user.trusted,
      retired: { retired: ctx.cluster.views.user.retired, current: ctx.cluster.views.user.pins },
      replay: ctx.replay,
      now: ctx.clock.now(),
    }).catch(async (e) => {
      await auditRetired(ctx, e, `${c.req.method} ${url.pathname}`);
      throw e;
    });
    // From here the caller is known (a valid proof for a certificate of ours): a refusal is audited.
    // (An invalid proof is not: anyone on the network could fill the log with those.)
    // Every answer says the cluster's trust now: a client follows a rotation at its next call (client/rotation.ts).
    const issuerPin = await caPin(issuer);
    c.header(TRUST_HEADER, trustHeader(ctx, issuerPin));
    try {
      // App certificates open tunnels; they never call the user API.
      if (identity.route) throw new AzgateError("access_denied", "an app certificate cannot call the user API; it only opens app tunnels");
      c.set("caller", await resolveCaller(ctx, identity));
      c.set("certExpires", cert.notAfter);
      c.set("issuerPin", issuerPin);
      await limitBody(BODY_LIMITS.authenticated)(c, async () => {
        const body = await c.req.text();
        await checkProofBody(claims, body);
        c.set("body", body);
        await next();
      });
    } catch (e) {
      await auditRefusal(ctx, c, identity, e);
      throw e;
    }
    // A route's own refusal (onError answered it already).
    if (c.error) await auditRefusal(ctx, c, identity, c.error);
  });

  // What applies now (the backend's roles and traits, not the certificate's): `azgate status` shows it.
  authed.get("/whoami", (c) => {
    const caller = c.get("caller");
    return c.json({ name: caller.name, kind: caller.identity.kind, roles: caller.roles.map((r) => r.metadata.name), traits: caller.traits, azure_identities: allowedAzureIdentities(caller.roles, caller.traits) });
  });
  authed.get("/cluster/status", async (c) => c.json({ cluster_name: ctx.cluster.name, version: VERSION, ca_pins: await clusterPins(ctx.cluster), public_url: opts.publicUrl() }));
  // CA rotation (docs/rotation.md): each CA's phase and who has not moved yet; one step, or a scheduled rotation.
  authed.get("/admin/rotation", async (c) => c.json(await rotationReport(ctx, c.get("caller"), opts.tunnels)));
  authed.post("/admin/rotation", async (c) => {
    const body = parseJson<{ type?: string; manual?: boolean; phase?: string; grace_period?: string }>(c.get("body"));
    return c.json(await rotateAuthority(ctx, c.get("caller"), caType(body.type), rotateCommand(body)));
  });
  // A signed-in user's certificate again, from the user CA that signs now (while a rotation runs): the same identity and end.
  authed.post("/certs/reissue", async (c) => {
    const body = parseJson<{ public_key_pem?: string }>(c.get("body"));
    return c.json(await reissueCert(ctx, c.get("caller").identity, c.get("certExpires"), c.get("issuerPin"), String(body.public_key_pem ?? "")));
  });

  authed.post("/admin/resources", async (c) => {
    const body = parseJson<{ text?: string; source?: string; force?: boolean }>(c.get("body"));
    const parsed = parseResources(String(body.text ?? ""), String(body.source ?? "request"));
    const messages = await admin.createResources(ctx, c.get("caller"), parsed.resources, body.force === true);
    return c.json({ messages, warnings: parsed.warnings });
  });
  authed.get("/admin/resources/:kind/:name?", async (c) =>
    c.json({ items: await admin.getResources(ctx, c.get("caller"), admin.parseKind(c.req.param("kind")), c.req.param("name"), c.req.query("with_secrets") === "true") }),
  );
  authed.delete("/admin/resources/:kind/:name", async (c) =>
    c.json({ message: await admin.removeResource(ctx, c.get("caller"), admin.parseKind(c.req.param("kind")), c.req.param("name")) }),
  );
  authed.post("/admin/users", async (c) => {
    const body = parseJson<{ name?: string; roles?: string[]; traits?: Record<string, string[]> }>(c.get("body"));
    const { user, invite } = await admin.addUser(ctx, c.get("caller"), String(body.name ?? ""), body.roles ?? [], body.traits ?? {});
    return c.json({ user, invite_token: invite.token, invite_expires: invite.expires.toISOString(), public_url: opts.publicUrl(), ca_pin: (await clusterPins(ctx.cluster))[0] });
  });
  authed.patch("/admin/users/:name", async (c) => c.json({ user: await admin.updateUser(ctx, c.get("caller"), c.req.param("name"), parseJson(c.get("body"))) }));
  authed.post("/admin/users/:name/reset", async (c) => {
    const invite = await admin.resetUser(ctx, c.get("caller"), c.req.param("name"));
    return c.json({ invite_token: invite.token, invite_expires: invite.expires.toISOString(), public_url: opts.publicUrl(), ca_pin: (await clusterPins(ctx.cluster))[0] });
  });
  authed.post("/admin/locks", async (c) => {
    const body = parseJson<{ target?: LockTarget; ttl?: string; message?: string }>(c.get("body"));
    const warnings: string[] = [];
    const lock = await createLock(ctx, c.get("caller"), body, warnings);
    // This replica's open tunnels are rechecked by the backend watch (tunnels.ts), as every replica's are.
    return c.json(warnings.length ? { ...lock, warnings } : lock);
  });
  authed.post("/admin/tokens", async (c) => {
    const body = parseJson<{ type?: string; ttl?: string; uses?: number }>(c.get("body"));
    return c.json(await admin.addToken(ctx, c.get("caller"), String(body.type ?? "app"), String(body.ttl ?? "30m"), body.uses));
  });
  authed.post("/admin/bots", async (c) => {
    const body = parseJson<{ name?: string; roles?: string[]; traits?: Record<string, string[]> }>(c.get("body"));
    return c.json(await addBot(ctx, c.get("caller"), String(body.name ?? ""), Array.isArray(body.roles) ? body.roles.map(String) : [], body.traits ?? {}));
  });
  authed.get("/admin/bots", async (c) => c.json({ items: await listBots(ctx, c.get("caller")) }));
  authed.delete("/admin/bots/:name", async (c) => c.json({ message: await removeBot(ctx, c.get("caller"), c.req.param("name")) }));
  authed.post("/bots/renew", async (c) => c.json(await renewBot(ctx, c.get("caller"), parseJson<Record<string, unknown>>(c.get("body")))));
    authed.get("/admin/audit", async (c) => c.json({ items: await admin.searchAudit(ctx, c.get("caller"), c.req.query()), ...(await admin.auditReach(ctx, c.get("caller"))) }));
  // A fresh passkey check (per-session MFA, a review) the CLI has the browser do (browser-flows.ts).
  authed.post("/mfa/browser", async (c) => c.json(await startBrowserCheck(ctx, c.get("caller"), parseJson<Record<string, unknown>>(c.get("body")), opts.publicUrl(), opts.registry)));
  authed.get("/admin/audit/export", async (c) => c.json(await exportPage(ctx, c.get("caller"), c.req.query())));
  authed.get("/admin/audit/commands", async (c) => c.json({ items: await auditCommands(ctx, c.get("caller"), c.req.query()) }));
  // Every record, secrets included: the `backup` rule only (not the editor preset's), audited (proxy/backup.ts).
  authed.get("/admin/backup", async (c) => c.json(await takeBackup(ctx, c.get("caller"))));
  authed.get("/apps", async (c) => c.json({ items: await listApps(ctx, opts.registry, c.get("caller")) }));
  // Access requests (proxy/access-requests.ts).
  // A short name or a glob's matches: the identities azgate knows of (proxy/known-identities.ts).
  const known = (caller: Caller) => () => knownIdentities(ctx, opts.registry, caller);
  authed.post("/requests", async (c) => c.json(await requests.createRequest(ctx, c.get("caller"), parseJson<requests.CreateRequestInput>(c.get("body")), servedApps(opts.registry), known(c.get("caller")))));
  authed.get("/requests/terms", async (c) => c.json(await requests.requestableTerms(ctx, c.get("caller"), c.req.query("azure_identity") ?? "", known(c.get("caller")))));
  authed.get("/requests", async (c) => c.json({ items: await requests.listRequests(ctx, c.get("caller"), c.req.query("filter")) }));
  authed.get("/requests/:id", async (c) => c.json(await requests.getRequest(ctx, c.get("caller"), c.req.param("id"))));
  authed.post("/requests/:id/review", async (c) => {
    // Named fields only: a review's passkey answer comes from the web page's own route, never from an API body.
    const { state, reason, otp, mfa } = parseJson<{ state?: string; reason?: string; otp?: string; mfa?: unknown }>(c.get("body"));
    return c.json(await requests.reviewRequest(ctx, c.get("caller"), c.req.param("id"), { state, reason, otp, mfa }));
  });
  authed.post("/requests/:id/cancel", async (c) => c.json(await requests.cancelRequest(ctx, c.get("caller"), c.req.param("id"))));
  authed.post("/requests/:id/revoke", async (c) => c.json(await requests.revokeRequest(ctx, c.get("caller"), c.req.param("id"), parseJson<{ reason?: string }>(c.get("body")))));
  authed.post("/roles/explain", async (c) => {
    const body = parseJson<ExplainRequest>(c.get("body"));
    const str = (v: unknown) => (typeof v === "string" ? v : undefined);
    return c.json(await explainRequest(ctx, opts.registry, c.get("caller"), { user: str(body.user), app: str(body.app), azure_identity: str(body.azure_identity), method: str(body.method), url: str(body.url) }));
  });
  authed.post("/apps/login", async (c) => {
    const body = parseJson<{ app?: string; azure_identity?: string; public_key_pem?: string; mfa?: { attempt: string; code: string; secret: string }; in_memory?: boolean }>(c.get("body"));
    return c.json(
      await issueAppCert(ctx, opts.registry, c.get("caller"), c.get("certExpires"), {
        app: String(body.app ?? ""),
        azure_identity: String(body.azure_identity ?? ""),
        public_key_pem: String(body.public_key_pem ?? ""),
        ...(body.mfa ? { mfa: body.mfa } : {}),
        in_memory: body.in_memory === true,
      }),
    );
  });
  app.route("/v1", authed);
  return app;
}

/** Ready: not shutting down, and the backend answers a read (the API port's /readyz and the diagnostics port's). */
export async function proxyReadiness(ctx: ProxyContext, tunnels?: TunnelServer): Promise<Readiness> {
  if (tunnels?.isDraining()) return { ready: false, reason: "shutting down" };
  try {
    await ctx.backend.get(KEYS.role("access"));
    return { ready: true };
  } catch (e) {
    return { ready: false, reason: `backend: ${(e as Error).message}` };
  }
}

async function jsonBody<T>(c: Context): Promise<T> {
  return parseJson<T>(await c.req.text());
}

const parseJson = parseJsonObject;
