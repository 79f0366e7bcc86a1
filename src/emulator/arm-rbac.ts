import type { World } from "./world.ts";

/**
 * Azure RBAC as ARM applies it, reduced to what the emulator needs: a role
 * grants actions (with `*` wildcards) minus notActions, at a scope and below.
 * Pure: world in, decision out.
 */
const BUILT_IN: Record<string, { actions: string[]; notActions: string[] }> = {
  Owner: { actions: ["*"], notActions: [] },
  Contributor: { actions: ["*"], notActions: ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action"] },
  Reader: { actions: ["*/read"], notActions: [] },
};

function actionMatches(pattern: string, action: string): boolean {
  const re = new RegExp("^" + pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, "\\$&")).join(".*") + "$", "i");
  return re.test(action);
}

/** True when `scope` is `resource` or one of its ancestors (case-insensitive, on segment boundaries). */
export function scopeCovers(scope: string, resource: string): boolean {
  const s = scope.toLowerCase().replace(/\/+$/, "");
  const r = resource.toLowerCase().replace(/\/+$/, "");
  return s === "" || r === s || r.startsWith(s + "/");
}

export function roleActions(world: World, role: string): { actions: string[]; notActions: string[] } | null {
  const custom = world.role_definitions.find((d) => d.name.toLowerCase() === role.toLowerCase());
  return custom ? { actions: custom.actions, notActions: [] } : BUILT_IN[role] ?? null;
}

export function isAllowed(world: World, principalId: string, action: string, resourceId: string): boolean {
  return world.role_assignments.some((a) => {
    if (a.principal_id.toLowerCase() !== principalId.toLowerCase() || !scopeCovers(a.scope, resourceId)) return false;
    const role = roleActions(world, a.role);
    return !!role && role.actions.some((p) => actionMatches(p, action)) && !role.notActions.some((p) => actionMatches(p, action));
  });
}

/** Subscriptions a principal sees: those where it holds any assignment at or below the subscription. */
export function visibleSubscriptions(world: World, principalId: string): string[] {
  return world.subscriptions
    .map((s) => s.id)
    .filter((id) => world.role_assignments.some((a) => a.principal_id.toLowerCase() === principalId.toLowerCase() && scopeCovers(`/subscriptions/${id}`, a.scope)));
}
