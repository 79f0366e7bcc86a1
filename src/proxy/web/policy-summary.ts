/**
 * The per-request API policy for one identity, in plain language, from the
 * same roles the proxy decides with (rbac/azure-api.ts): what is allowed,
 * what is never allowed, and whether it is enforced or only recorded.
 */
import { rolesAllowingIdentity } from "../../rbac/engine.ts";
import type { AzureApiRule, Role } from "../../rbac/types.ts";
import type { App } from "../../rbac/types.ts";
import type { Caller } from "../caller.ts";

function ruleText(r: AzureApiRule): string {
  if (r.preset) return `the ${r.preset} preset`;
  const parts = [
    r.actions && `${r.actions.join(", ")}`,
    r.data_actions && `${r.data_actions.join(", ")}`,
    r.methods && `${r.methods.join("/")} requests`,
    r.paths && `to ${r.paths.join(", ")}`,
    r.hosts && `on ${r.hosts.join(", ")}`,
    r.scopes && `in ${r.scopes.join(", ")}`,
  ].filter(Boolean);
  return parts.join(" ");
}

export function policySummary(caller: Caller, app: App, identity: string, extraRoles: Role[] = []): string {
  const roles = [...caller.roles, ...extraRoles];
  const allowing = rolesAllowingIdentity(roles, caller.traits, app, identity);
  const allows = allowing.flatMap((r) => r.spec.allow?.azure_api ?? []);
  const denies = roles.flatMap((r) => r.spec.deny?.azure_api ?? []);
  const audit = roles.some((r) => r.spec.options?.azure_api_mode === "audit");
  const what = allows.length ? `Only ${allows.map(ruleText).join("; or ")}.` : "Anything the identity's Azure role allows.";
  const never = denies.length ? ` Never ${denies.map(ruleText).join("; ")}.` : "";
  // As decideAzureApi reads azure_api_unknown: every deny role must let unnamed operations through, and one restricting role.
  const restricting = allowing.filter((r) => r.spec.allow?.azure_api !== undefined);
  const lets = (r: Role) => r.spec.options?.azure_api_unknown === "allow";
  const denying = roles.filter((r) => (r.spec.deny?.azure_api ?? []).length > 0);
  const unnamed = (restricting.length || denying.length) && !(denying.every(lets) && (restricting.length === 0 || restricting.some(lets))) ? " Operations azgate cannot name (Microsoft Graph, for one) are refused." : "";
  return `${what}${never}${unnamed}${audit && (allows.length || denies.length) ? " (Audit mode: refusals are recorded, not enforced.)" : ""}`;
}
