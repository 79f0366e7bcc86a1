/**
 * Apps as users see them: the list their roles allow, and app certificates
 * (one app and, for Azure, one Azure identity) issued only when the user's
 * current roles allow both.
 */
import { APP_NAME } from "../config/schema.ts";
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import { openRequestsOf } from "./access-requests.ts";
import { grantInForce } from "./grants.ts";
import { checkLocks } from "./locks.ts";
import { withEndedGrant } from "./authorize-request.ts";
import { allowedAzureIdentities, checkAppAccess, checkAzureIdentity } from "../rbac/engine.ts";
import { importPublicKeyPem } from "../pki/keys.ts";
import { issueIdentityCert } from "../pki/certificate.ts";
import { botFields, type Identity } from "../pki/identity.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import { pemOf } from "./cluster.ts";
import type { AppRegistry } from "./registry.ts";
import { askIdentityFacts } from "./identity-facts.ts";
import type { AppView } from "../api/types.ts";
import { refusedIdentityForAudit, requireIdentityId, sameIdentity } from "../azure/resource-id.ts";
import { sessionMfaRule } from "../rbac/session-mfa.ts";
import { takeSessionCheck } from "./session-check.ts";

/**
 * The app servers the caller's roles allow, each judged on its own labels;
 * servers of one name with the same labels are one row. An identity with an
 * approved access request of the caller's is listed too: apps login takes it.
 */
export async function listApps(ctx: ProxyContext, registry: AppRegistry, caller: Caller): Promise<AppView[]> {
  const rows = new Map<string, AppView>();
  const requested = caller.identity.kind === "user" ? await openRequestsOf(ctx, caller) : [];
  for (const { app } of registry.all()) {
    if (!checkAppAccess(caller.roles, caller.traits, app).allowed) continue;
    const key = JSON.stringify([app.name, Object.entries(app.labels).sort()]);
    const row = rows.get(key);
    if (row) {
      row.servers++;
      continue;
    }
    const allowed = allowedAzureIdentities(caller.roles, caller.traits).filter((id) => checkAzureIdentity(caller.roles, caller.traits, app, id).allowed);
    const viaRequests = requested.filter((r) => r.spec.app === app.name && !allowed.some((id) => sameIdentity(id, r.spec.azure_identity))).map((r) => r.spec.azure_identity);
    rows.set(key, { ...app, servers: 1, azure_identities: [...new Set([...allowed, ...viaRequests])] });
  }
  return [...rows.values()].sort((a, b) => a.name.localeCompare(b.name));
}

export interface AppLoginRequest {
  app: string;
  azure_identity: string;
  public_key_pem: string;
  /** Per-session MFA: the browser check this login asked for (browser-attempt.ts), taken once. */
  mfa?: { attempt: string; code: string; secret: string };
  /** The key and certificate stay in the process's memory (proxy azure, exec): an MFA session's certificate may then live as long as the login's. */
  in_memory?: boolean;
}

/** How long an MFA-checked app certificate lives when it is written to disk (Teleport's one minute). */
export const MFA_DISK_CERT_MS = 60_000;

export async function issueAppCert(ctx: ProxyContext, registry: AppRegistry, caller: Caller, callerCertExpires: Date, asked: AppLoginRequest) {
  if (caller.identity.kind !== "user" || caller.identity.route) throw new AzgateError("access_denied", "app certificates are issued to a user session; run azgate login");
  // An app is named as agents name it (config APP_NAME): anything else names no app, and goes into no audit event as it came (up to a body's size).
  if (typeof asked.app !== "string" || !APP_NAME.test(asked.app)) throw new AzgateError("bad_parameter", "app must be an app's name: lowercase letters, digits and '-', at most 63 (azgate apps ls)");
  // The identity in the one grammar (azure/resource-id.ts), in Azure's spelling from here on: the route, the audit, the agent.
  let req: AppLoginRequest;
  try {
    req = { ...asked, azure_identity: requireIdentityId(asked.azure_identity, "azure_identity").id };
  } catch (e) {
    await ctx.audit.emit(audit("APP_SESSION_DENIED", { user: caller.name, ...botFields(caller.identity), app: asked.app, azure_identity: refusedIdentityForAudit(asked.azure_identity), error_code: (e as AzgateError).code, reason: (e as Error).message, success: false }));
    throw e;
  }
  // A lock on the identity (or the user, a role, the login session) refuses before anything is issued or
  // any agent is asked for the identity's facts: the lock works at login as it does on each request.
  try {
    await checkLocks(ctx, { user: caller.name, roles: caller.roles.map((r) => r.metadata.name), azure_identity: req.azure_identity, session_ids: [caller.identity.session_id].filter((s): s is string => !!s) });
  } catch (e) {
    await ctx.audit.emit(audit("APP_SESSION_DENIED", { user: caller.name, ...botFields(caller.identity), app: req.app, azure_identity: req.azure_identity, error_code: (e as AzgateError).code, reason: (e as Error).message, success: false }));
    throw e;
  }
  // Without a live agent the app's labels are unknown, so access cannot be decided. Each server is judged on its own labels.
  const servers = registry.all(req.app);
  const visible = servers.filter((s) => checkAppAccess(caller.roles, caller.traits, s.app).allowed);
  const decisions = visible.map((s) => ({ app: s.app, decision: checkAzureIdentity(caller.roles, caller.traits, s.app, req.azure_identity) }));
  let found = decisions.find((d) => d.decision.allowed) ?? decisions[0];
  // No role allows it: a grant in force may (grants.ts: the requested roles as they are now, locks with them included).
  // Its requests go through while it lasts (authorize-request.ts); later grants reach the same session without a new apps login.
  const inForce = found?.decision.allowed ? null : await grantInForce(ctx, caller, { app: req.app, azure_identity: req.azure_identity });
  if (inForce) {
    const judged = servers.map((s) => ({ app: s.app, decision: inForce.permits(s.app) }));
    found = judged.find((d) => d.decision.allowed) ?? judged[0] ?? found;
  }
  if (!found) {
    // The caller is told only "not found" (an app a role hides is not named to them); the log says why.
    const why = servers.length === 0 ? `no agent serves app "${req.app}"` : checkAppAccess(caller.roles, caller.traits, servers[0].app).reason;
    await ctx.audit.emit(audit("APP_SESSION_DENIED", { user: caller.name, ...botFields(caller.identity), app: req.app, azure_identity: req.azure_identity, error_code: "not_found", reason: why, success: false }));
    throw new AzgateError("not_found", `app "${req.app}" not found; azgate apps ls shows the apps you can use`);
  }
  const { app, decision } = found;
  const request = inForce ? { metadata: { name: inForce.grant.spec.request_id } } : undefined;
  if (!decision.allowed) {
    const reason = inForce ? decision.reason : await withEndedGrant(ctx, registry, caller, { app: app.name, azure_identity: req.azure_identity }, decision.reason);
    await ctx.audit.emit(audit("APP_SESSION_DENIED", { user: caller.name, ...botFields(caller.identity), app: app.name, azure_identity: req.azure_identity, reason, success: false }));
    throw new AzgateError("access_denied", `access to Azure identity "${req.azure_identity}" on app "${app.name}" denied: ${reason}`);
  }
  // Per-session MFA: a role that opens the route (or the cluster) asks for a fresh passkey check, taken here once.
  const opened = inForce ? servers.map((s) => ({ roles: inForce.permits(s.app).roles ?? caller.roles, app: s.app })) : visible.map((s) => ({ roles: caller.roles, app: s.app }));
  const mfaRule = sessionMfaRule(ctx.settings.requireSessionMfa, opened, caller.traits, req.azure_identity, inForce ? [...caller.roles, ...inForce.granted] : undefined);
  let mfaVerified: string | undefined;
  if (mfaRule) {
    try {
      mfaVerified = await takeSessionCheck(ctx, caller, asked.mfa, { app: app.name, azure_identity: req.azure_identity }, mfaRule);
    } catch (e) {
      await ctx.audit.emit(audit("APP_SESSION_DENIED", { user: caller.name, ...botFields(caller.identity), app: app.name, azure_identity: req.azure_identity, error_code: (e as AzgateError).code, reason: (e as Error).message, success: false }));
      throw e;
    }
  }
  let publicKey: CryptoKey;
  try {
    publicKey = await importPublicKeyPem(req.public_key_pem);
  } catch {
    throw new AzgateError("bad_parameter", "public_key_pem must be an ECDSA P-256 public key in PEM");
  }
  const identity: Identity = {
    ...caller.identity,
    roles: caller.roles.map((r) => r.metadata.name),
    traits: caller.traits,
    azure_identities: allowedAzureIdentities(caller.roles, caller.traits),
    session_id: crypto.randomUUID(),
    login_session_id: caller.identity.session_id,
    route: { app: app.name, azure_identity: req.azure_identity },
    ...(mfaVerified ? { mfa_verified: mfaVerified } : {}),
  };
  // An app certificate never outlives the user's session; an MFA-checked one lives a minute on disk (in memory, the session's life).
  const notAfter = mfaVerified && !asked.in_memory ? new Date(Math.min(callerCertExpires.getTime(), ctx.clock.now() + MFA_DISK_CERT_MS)) : callerCertExpires;
  const cert = await issueIdentityCert({ ca: ctx.cluster.user, publicKey, identity, now: ctx.clock.date(), notAfter });
  const { facts, problem } = await askIdentityFacts(registry, app.name, (s) => (inForce ? inForce.permits(s.app).allowed : checkAzureIdentity(caller.roles, caller.traits, s.app, req.azure_identity).allowed), req.azure_identity);
  await ctx.audit.emit(audit("APP_SESSION_START", {
    user: caller.name,
    ...botFields(caller.identity),
    app: app.name,
    azure_identity: req.azure_identity,
    session_id: identity.session_id,
    expires: cert.notAfter.toISOString(),
    ...(mfaVerified ? { mfa_verified: mfaVerified, in_memory: asked.in_memory === true } : {}),
    ...(request ? { access_request_id: request.metadata.name } : {}),
    ...(facts ? { client_id: facts.client_id, principal_id: facts.principal_id } : { identity_facts: problem }),
  }));
  return {
    cert_pem: pemOf(cert),
    expires: cert.notAfter.toISOString(),
    /** The login's end: what a local CA for this session may live to (an MFA certificate on disk ends sooner). */
    session_expires: callerCertExpires.toISOString(),
    session_mfa: !!mfaVerified,
    app: app.name,
    azure_identity: req.azure_identity,
    tenant_id: facts?.tenant_id ?? app.tenant_id ?? null,
    client_id: facts?.client_id ?? null,
    principal_id: facts?.principal_id ?? null,
  };
}
