/**
 * The CLI's steps done in the browser (browser-attempt.ts keeps them): what
 * the API starts, what the page /web/cli/ID asks the passkey, and what the
 * CLI picks up. A login asks the password and then the passkey, and ends in
 * a certificate for the key the CLI named at the start; a fresh check asks
 * the passkey of the user who started it, bound to that attempt.
 */
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import { importPublicKeyPem } from "../pki/keys.ts";
import { requireIdentityId } from "../azure/resource-id.ts";
import { APP_NAME } from "../config/schema.ts";
import type { RelyingParty } from "../auth/webauthn.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import { checkBudget, completeAttempt, pendingAttempt, startAttempt, takeAttempt, type CheckScope } from "./browser-attempt.ts";
import type { AppRegistry } from "./registry.ts";
import { checkAzureIdentity } from "../rbac/engine.ts";
import { grantInForce } from "./grants.ts";
import { getRequest } from "./access-requests.ts";
import { USER_NAME } from "../resources/user.ts";
import { beginWebAuthnLogin, finishWebAuthnLogin, loginCert, type LoginResponse } from "./login.ts";
import { assertionOptions, checkAssertion, pacePerUser } from "./webauthn.ts";
import { userStamp } from "./users.ts";

type Body = Record<string, unknown>;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const str = (v: unknown) => (typeof v === "string" ? v : "");

/** `azgate login --mfa-mode browser`: the attempt, and the page the browser opens. */
export async function startBrowserLogin(ctx: ProxyContext, body: Body, publicUrl: string, remote?: string) {
  await importPublicKeyPem(str(body.public_key_pem)).catch(() => {
    throw new AzgateError("bad_parameter", "public_key_pem must be a PEM-encoded ECDSA P-256 public key");
  });
  // A suggestion the page fills in: a user name or nothing (never text an anonymous caller put on the proxy's page).
  const user = str(body.user);
  if (user && !USER_NAME.test(user)) throw new AzgateError("bad_parameter", "user must be a user name");
  const started = await startAttempt(ctx, {
    purpose: "login",
    public_key_pem: str(body.public_key_pem),
    ...(user ? { user } : {}),
    ...(typeof body.ttl_ms === "number" && body.ttl_ms > 0 ? { ttl_ms: body.ttl_ms } : {}),
    redirect_url: str(body.redirect_url),
    secret_hash: str(body.secret_hash),
    remote_addr: remote,
  });
  return { ...started, url: `${publicUrl}/web/cli/${started.attempt}` };
}

/**
 * A signed-in user's fresh check, for an app session's identity or a review:
 * only for an app an agent serves and an identity the caller's roles (or a
 * grant) allow on it, or a request the caller may see, since the page shows
 * what the check is for.
 */
export async function startBrowserCheck(ctx: ProxyContext, caller: Caller, body: Body, publicUrl: string, registry: AppRegistry) {
  if (caller.identity.kind !== "user" || caller.identity.route || caller.identity.bot || !caller.user) throw new AzgateError("access_denied", "a fresh passkey check is asked by a person's login session (azgate login)");
  // What the page will show the person: an app name or a request ID in their grammar, never text a caller wrote.
  let scope: CheckScope;
  if (body.request !== undefined) {
    if (!UUID.test(str(body.request))) throw new AzgateError("bad_parameter", "request must be an access request ID");
    scope = { request: (await getRequest(ctx, caller, str(body.request).toLowerCase())).metadata.name };
  } else {
    if (!APP_NAME.test(str(body.app))) throw new AzgateError("bad_parameter", "app must be an app name (lowercase letters, digits and '-', at most 63)");
    const app = str(body.app);
    const azure_identity = requireIdentityId(str(body.azure_identity), "azure_identity").id;
    const servers = registry.all(app);
    if (!servers.length) throw new AzgateError("not_found", `no agent serves app "${app}" right now`);
    const allowed = servers.some((s) => checkAzureIdentity(caller.roles, caller.traits, s.app, azure_identity).allowed) || !!(await grantInForce(ctx, caller, { app, azure_identity }));
    if (!allowed) throw new AzgateError("access_denied", `your roles do not allow Azure identity "${azure_identity}" on app "${app}"`);
    scope = { app, azure_identity };
  }
  pacePerUser(ctx, checkBudget(caller.name), ctx.settings.ssoLoginTimeoutMs);
  const started = await startAttempt(ctx, {
    purpose: "check",
    user: caller.name,
    user_id: userStamp(caller.user).id,
    session_id: caller.identity.session_id,
    scope,
    redirect_url: str(body.redirect_url),
    secret_hash: str(body.secret_hash),
  });
  return { ...started, url: `${publicUrl}/web/cli/${started.attempt}` };
}

/** The page's first call: a challenge (after the password, for a login). */
export async function beginBrowserStep(ctx: ProxyContext, rp: RelyingParty, id: string, body: Body, remote?: string) {
  const { value } = await pendingAttempt(ctx, id);
  if (value.purpose === "login") return beginWebAuthnLogin(ctx, rp, { user: str(body.user), password: str(body.password), remote_addr: remote, via: "web", bound: id });
  return assertionOptions(ctx, rp, checkPurpose(value.scope), value.user!, value.user_id!, id);
}

/** The page's second call: the passkey's answer; the browser then goes to the CLI's loopback with the code. */
export async function finishBrowserStep(ctx: ProxyContext, rp: RelyingParty, id: string, body: Body, remote?: string): Promise<{ next: string }> {
  const item = await pendingAttempt(ctx, id);
  const a = item.value;
  if (a.purpose === "login") {
    // The page says who; the CLI's suggestion is a default, not a rule, but a login for another name than it asked is said in the log.
    const { identity, maxTtlMs } = await finishWebAuthnLogin(ctx, rp, { user: str(body.user), webauthn: body.response, remote_addr: remote, via: "web", bound: id, cli_user: a.user });
    const login = await loginCert(ctx, identity, maxTtlMs, await importPublicKeyPem(a.public_key_pem!), a.ttl_ms);
    return { next: await completeAttempt(ctx, item, { login }) };
  }
  const purpose = checkPurpose(a.scope);
  try {
    await checkAssertion(ctx, rp, body.response, purpose, a.user!, a.user_id!, id);
  } catch (e) {
    await ctx.audit.emit(audit("MFA_CHECK_FAILED", { user: a.user, purpose, reason: (e as Error).message, remote_addr: remote, success: false }));
    throw new AzgateError("mfa_required", `the passkey check failed: ${(e as Error).message}`);
  }
  return { next: await completeAttempt(ctx, item, { checked_at: ctx.clock.date().toISOString() }) };
}

/** The CLI's pickup of a browser login's certificate: code and secret together, once. */
export async function pickUpBrowserLogin(ctx: ProxyContext, body: Body): Promise<LoginResponse> {
  const a = await takeAttempt(ctx, str(body.attempt), str(body.code), str(body.secret), "login");
  return a.done!.login!;
}

const checkPurpose = (scope: CheckScope | undefined) => (scope && "request" in scope ? "review" : "session");
