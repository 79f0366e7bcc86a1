/**
 * Per-session MFA (Teleport's require_session_mfa): which rule asks for a
 * fresh passkey check before an app session may use an Azure identity. The
 * cluster's auth.require_session_mfa asks it of every session; a role asks
 * it of the identities it allows (on the servers it allows them on). One
 * such role among those that open the route is enough: a session opened by
 * two roles, one asking, needs the check (the stricter wins). A session a
 * grant opens needs it when any role of the requester's or the grant's asks.
 */
import { rolesAllowingIdentity } from "./engine.ts";
import type { App, Role, Traits } from "./types.ts";

/** Who asks for the check (for the refusal's message), or null when nobody does. */
export function sessionMfaRule(clusterWide: boolean, opened: { roles: Role[]; app: App }[], traits: Traits, identity: string, grant?: Role[]): string | null {
  if (clusterWide) return "the cluster (auth.require_session_mfa)";
  // A grant opens the route without a role that allows it: any role of the requester's or of the grant's that asks, asks.
  const viaGrant = grant?.find((r) => r.spec.options?.require_session_mfa === true);
  if (viaGrant) return `role "${viaGrant.metadata.name}" (require_session_mfa)`;
  for (const { roles, app } of opened) {
    const asking = rolesAllowingIdentity(roles, traits, app, identity).find((r) => r.spec.options?.require_session_mfa === true);
    if (asking) return `role "${asking.metadata.name}" (require_session_mfa)`;
  }
  return null;
}
