/**
 * May this app session send this request? Every check of the proxy's request
 * path, in order, each refusal an AzgateError with its registered code:
 * the session's identity, the account as it is now (deleted, reset, locked),
 * a server of the app the caller's roles allow on that server's own labels,
 * then the method and the target (the rules of azure/forwarding.ts) in that
 * app's cloud: a request is routed only to servers of the cloud it targets;
 * last the Azure operation, against the roles' azure_api rules
 * (rbac/azure-api.ts).
 */
import { checkAzureMethod, checkAzureTarget } from "../azure/forwarding.ts";
import { decidedRequest, readRequest, type AzureOperation, type DecidedRequest } from "../azure/operation.ts";
import { AccessDenied, AppUnavailable, MfaRequired, PolicyDenied } from "../errors/index.ts";
import { sessionMfaRule } from "../rbac/session-mfa.ts";
import type { Identity } from "../pki/identity.ts";
import { checkAzureIdentity } from "../rbac/engine.ts";
import { decideAzureApi, identityPolicy, type AzureApiDecision, type IdentityPolicy } from "../rbac/azure-api.ts";
import type { HeaderList } from "../tunnel/http.ts";
import { resolveCaller, type Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import type { AppRegistry, AppServer } from "./registry.ts";
import type { AccessGrant } from "../resources/access-request.ts";
import { grantInForce } from "./grants.ts";
import { endedGrantHint } from "./access-requests.ts";
import { knownIdentities } from "./known-identities.ts";
import type { App, Role } from "../rbac/types.ts";

export interface Authorized {
  caller: Caller;
  app: string;
  azureIdentity: string;
  /** The servers of the app this caller may be routed to. */
  allowedOn: (s: AppServer) => boolean;
  /** The azure_api decision (an audit-mode "would deny" is forwarded, and recorded). */
  policy: AzureApiDecision;
  /** The Azure operation, when it can be named (recorded in the audit log even where no policy applies). */
  operation: AzureOperation | null;
  /** Where a policy applied, the request it decided on (canonical), for the agent to check it forwards that (forward.ts). */
  decided: DecidedRequest | null;
  /** The access request whose grant allows this request, when no role does. */
  accessRequestId?: string;
}

/** Who may use the session's route now, and on which servers: its roles, or a grant in force with its roles. */
export interface RouteAccess {
  caller: Caller;
  azureIdentity: string;
  known: AppServer[];
  /** The servers the caller may be routed to (before the request's own checks). */
  permitted: (s: AppServer) => boolean;
  first: AppServer;
  /** The roles a request on this server is decided on: the caller's, with the granted ones that count when a grant opens the route. */
  rolesOn: (s: AppServer) => Role[];
  grant?: AccessGrant;
}

/**
 * May this app session use its route (app and Azure identity) now: the
 * account as it is now, then a role that allows the identity on a server's
 * labels or, failing that, a grant in force. Used on every request and when
 * the proxy rechecks open tunnels after a change (tunnels.ts).
 */
export async function authorizeRoute(ctx: ProxyContext, registry: AppRegistry, identity: Identity): Promise<RouteAccess> {
  const route = identity.route;
  if (!route?.azure_identity) throw new AccessDenied("this session has no Azure identity; run azgate apps login APP --azure-identity NAME");
  const azureIdentity = route.azure_identity;
  const caller = await resolveCaller(ctx, identity);
  const known = registry.all(route.app);
  if (known.length === 0) throw new AppUnavailable(`no agent serves app "${route.app}" right now; azgate apps ls shows the apps that are up`);
  const permitted = (s: AppServer) => onServer(caller, s.app, azureIdentity).allowed;
  const first = known.find(permitted);
  if (first) return withSessionCheck(ctx, identity, { caller, azureIdentity, known, permitted, first, rolesOn: () => caller.roles });
  // No role allows it: an approved access request may (a grant, read on every request: a revoke or the window's end acts on the next one).
  // grants.ts: found for this user record, locks checked with the granted roles, throws `locked`.
  const inForce = await grantInForce(ctx, caller, { app: route.app, azure_identity: azureIdentity });
  if (!inForce) throw new AccessDenied(await withEndedGrant(ctx, registry, caller, { app: route.app, azure_identity: azureIdentity }, checkAzureIdentity(caller.roles, caller.traits, known[0].app, azureIdentity).reason));
  // The requested roles come with the grant, with their azure_api rules; the grant opens only the servers
  // they still allow the identity on (a role edited or deleted since ends it), never around a deny.
  const byGrant = (s: AppServer) => s.app.name === route.app && inForce.permits(s.app).allowed;
  const granted = known.find(byGrant);
  if (!granted) throw new AccessDenied(inForce.permits(known[0].app).reason);
  // Per server, the roles grantPermits says count: a granted role no longer requestable keeps only its denies.
  const rolesOn = (s: AppServer) => inForce.permits(s.app).roles ?? caller.roles;
  return withSessionCheck(ctx, identity, { caller, azureIdentity, known, permitted: byGrant, first: granted, rolesOn, grant: inForce.grant }, [...caller.roles, ...inForce.granted]);
}

/**
 * What the caller's roles decide for an Azure identity on one server (its
 * app spec): allowed there, and which roles' azure_api rules concern it
 * (templates expanded, labels matched). Worked out once per caller and app
 * spec, not per request: a caller is resolved once per tunnel and access
 * snapshot (caller.ts), so any write (a role edited, a lock, a user changed)
 * brings a new caller and a new reckoning on the next request; an app spec
 * is replaced by each heartbeat, so relabelled servers are read again.
 */
const decisions = new WeakMap<Caller, Map<string, WeakMap<App, { allowed: boolean; policy: IdentityPolicy }>>>();
function onServer(caller: Caller, app: App, azureIdentity: string): { allowed: boolean; policy: IdentityPolicy } {
  let byIdentity = decisions.get(caller);
  if (!byIdentity) decisions.set(caller, (byIdentity = new Map()));
  let byApp = byIdentity.get(azureIdentity);
  if (!byApp) byIdentity.set(azureIdentity, (byApp = new WeakMap()));
  let decided = byApp.get(app);
  if (!decided) byApp.set(app, (decided = { allowed: checkAzureIdentity(caller.roles, caller.traits, app, azureIdentity).allowed, policy: identityPolicy(caller.roles, caller.traits, app, azureIdentity) }));
  return decided;
}

/**
 * Per-session MFA, decided like the route, on every request and recheck: a
 * role that opens the route asking for a fresh passkey check (or the
 * cluster) refuses a session that was opened without one, so a role edited
 * to ask acts on the next request of sessions already open.
 */
function withSessionCheck(ctx: ProxyContext, identity: Identity, access: RouteAccess, grantRoles?: Role[]): RouteAccess {
  if (identity.mfa_verified) return access;
  const opened = access.known.filter(access.permitted).map((s) => ({ roles: access.rolesOn(s), app: s.app }));
  const rule = sessionMfaRule(ctx.settings.requireSessionMfa, opened, access.caller.traits, access.azureIdentity, grantRoles);
  if (rule) throw new MfaRequired(`${rule} asks for a fresh passkey check for Azure identity "${access.azureIdentity}", and this session was opened without one; run azgate apps login ${identity.route!.app} --azure-identity ${access.azureIdentity} again`);
  return access;
}

export async function authorizeRequest(ctx: ProxyContext, registry: AppRegistry, identity: Identity, request: { method: string; url: URL; headers: HeaderList }): Promise<Authorized> {
  const { caller, azureIdentity, known, permitted, first, rolesOn, grant } = await authorizeRoute(ctx, registry, identity);
  const route = identity.route!;
  // An app's agents name one cloud; should two disagree, the request goes only to those of the first's.
  const cloud = first.app.cloud;
  const problem = checkAzureMethod(request.method) ?? checkAzureTarget(request.url, request.headers, cloud);
  if (problem) throw problem;

  // The operation, against the azure_api rules of the roles that allow the identity on each server's labels:
  // the request read once (its canonical form and operation), the same reading for every server.
  const reading = readRequest({ method: request.method, host: request.url.hostname, path: request.url.pathname, query: request.url.searchParams, headers: request.headers }, cloud);
  // On a server the caller's own roles open, their policy for the identity is the one worked out once (onServer).
  const decide = (s: AppServer) => (grant ? decideAzureApi(rolesOn(s), caller.traits, s.app, azureIdentity, reading) : decideAzureApi(caller.roles, caller.traits, s.app, azureIdentity, reading, onServer(caller, s.app, azureIdentity).policy));
  const decisions = new Map<AppServer, AzureApiDecision>();
  const passes = (s: AppServer) => {
    if (s.app.cloud !== cloud || !permitted(s)) return false;
    let d = decisions.get(s);
    if (!d) decisions.set(s, (d = decide(s)));
    return !(d.outcome === "deny" && d.enforced);
  };
  const chosen = known.find(passes);
  const policy = chosen ? decisions.get(chosen)! : decide(first);
  const operation = policy.operation ?? reading.operation;
  if (!chosen) throw new PolicyDenied(policy.reason, { action: operation?.action ?? null, scope: operation?.scope ?? null, policy: auditPolicy(policy), ...(grant ? { access_request_id: grant.spec.request_id } : {}) });
  const decided = policy.outcome === "unrestricted" ? null : decidedRequest(reading, { method: request.method, host: request.url.hostname, path: request.url.pathname });
  return { caller, app: route.app, azureIdentity, allowedOn: passes, policy, operation, decided, accessRequestId: grant?.spec.request_id };
}

/** A refusal's reason, with the grant that ended when one did (access-requests.ts endedGrantHint): the user learns why and how to ask again. */
export async function withEndedGrant(ctx: ProxyContext, registry: AppRegistry, caller: Caller, route: { app: string; azure_identity: string }, reason: string): Promise<string> {
  const hint = await endedGrantHint(ctx, caller, route, () => knownIdentities(ctx, registry, caller));
  return hint ? `${reason}; ${hint}` : reason;
}

/** The decision as the audit log records it (app.request's `policy`). */
export function auditPolicy(d: AzureApiDecision): Record<string, unknown> {
  const decision = d.outcome === "deny" ? (d.enforced ? "deny" : "would_deny") : d.outcome;
  return { decision, ...(d.matched ? { role: d.matched.role, side: d.matched.side, rule: d.matched.rule + 1, ...(d.matched.preset ? { preset: d.matched.preset } : {}) } : {}), ...(d.outcome === "unrestricted" ? {} : { reason: d.reason }) };
}
