/**
 * An access grant as the proxy uses it, on every request and at apps login:
 * the one place that says whether the caller's session may use a grant now.
 *
 * Found for the caller's user record (its id, not only its name: a user
 * re-created under the same name inherits nothing), app and identity, at the
 * clock's now; the requested roles read as they are defined now; locks
 * checked with those roles included (a lock on a role reaches whoever holds
 * it through a grant). Which servers it opens is the pure rule
 * `grantPermits` (rbac/requests.ts).
 */
import type { App, Role } from "../rbac/types.ts";
import { grantPermits, rolesNamedInRequests, type GrantDecision } from "../rbac/requests.ts";
import { activeGrant, effectiveState, type AccessGrant } from "../resources/access-request.ts";
import { accessSnapshot } from "./access-cache.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import { lockInForce } from "./locks.ts";
import { userStamp } from "./users.ts";

export interface GrantInForce {
  grant: AccessGrant;
  /** The requested roles as defined now (a deleted one is missing). */
  granted: Role[];
  /** May the grant be used on a server with this app spec (its labels), now; allowed, with the roles its requests are decided on. */
  permits(app: App): GrantDecision;
}

/** The caller's grant for this app and identity, or null; throws `locked` when a lock covers it with the granted roles. */
export async function grantInForce(ctx: ProxyContext, caller: Caller, route: { app: string; azure_identity: string }): Promise<GrantInForce | null> {
  if (caller.identity.kind !== "user" || !caller.user) return null;
  const snapshot = await accessSnapshot(ctx.backend, ctx.clock);
  const grant = activeGrant(await snapshot.grants(), { user: caller.name, user_id: userStamp(caller.user).id, app: route.app, azure_identity: route.azure_identity }, ctx.clock.now());
  if (!grant) return null;
  // The request it came from must still read APPROVED: a revoke that landed while the approval wrote the grant
  // (the grant written after the revoke looked for it) leaves a grant its request no longer backs.
  const request = await snapshot.request(grant.spec.request_id);
  if (!request || effectiveState(request, ctx.clock.now()) !== "APPROVED") return null;
  lockInForce(await snapshot.locks(), {
    user: caller.name,
    roles: [...caller.roles.map((r) => r.metadata.name), ...grant.spec.roles],
    azure_identity: route.azure_identity,
    session_ids: [caller.identity.session_id, caller.identity.login_session_id].filter((s): s is string => !!s),
  });
  const load = async (names: string[]) => (await Promise.all(names.map((n) => snapshot.role(n)))).filter((r): r is Role => r !== null);
  const granted = await load(grant.spec.roles);
  // The roles the caller's request blocks name, so the rule can tell whether the identity is still requestable.
  const named = new Map((await load(rolesNamedInRequests(caller.roles))).map((r) => [r.metadata.name, r]));
  return { grant, granted, permits: (app) => grantPermits(caller.roles, caller.traits, grant.spec, granted, (n) => named.get(n), app) };
}
