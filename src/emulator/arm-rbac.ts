import type { World } from "./world.ts";

/**
 * Azure RBAC as ARM applies it, reduced to what the emulator needs: a role
 * grants actions (with `*` wildcards) minus notActions, at a scope and below.
 * Pure: world in, decision out.
 */
interface RoleDef {
  actions: string[];
  notActions: string[];
  /** Data-plane permissions (secrets, blob contents): never granted by control-plane actions. */
  dataActions: string[];
}

const BUILT_IN: Record<string, RoleDef> = {
  Owner: { actions: ["*"], notActions: [], dataActions: [] },
  Contributor: { actions: ["*"], notActions: ["Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/elevateAccess/Action"], dataActions: [] },
  Reader: { actions: ["*/read"], notActions: [], dataActions: [] },
  "Key Vault Secrets User": { actions: [], notActions: [], dataActions: ["Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"] },
  "Key Vault Secrets Officer": { actions: [], notActions: [], dataActions: ["Microsoft.KeyVault/vaults/secrets/*"] },
  "Storage Blob Data Reader": { actions: [], notActions: [], dataActions: ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"] },
  "Storage Blob Data Contributor": {
    actions: [],
    notActions: [],
    dataActions: ["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete"],
  },
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

export function roleDefinition(world: World, role: string): RoleDef | null {
  const custom = world.role_definitions.find((d) => d.name.toLowerCase() === role.toLowerCase());
  return custom ? { actions: custom.actions, notActions: [], dataActions: custom.data_actions } : BUILT_IN[role] ?? null;
}

function granted(world: World, principalId: string, resourceId: string, grants: (role: RoleDef) => boolean): boolean {
  return world.role_assignments.some((a) => {
    if (a.principal_id.toLowerCase() !== principalId.toLowerCase() || !scopeCovers(a.scope, resourceId)) return false;
    const role = roleDefinition(world, a.role);
    return !!role && grants(role);
  });
}

/** A control-plane (ARM) action. */
export function isAllowed(world: World, principalId: string, action: string, resourceId: string): boolean {
  return granted(world, principalId, resourceId, (r) => r.actions.some((p) => actionMatches(p, action)) && !r.notActions.some((p) => actionMatches(p, action)));
}

/** A data-plane action (Key Vault secrets, blob contents). */
export function isDataAllowed(world: World, principalId: string, dataAction: string, resourceId: string): boolean {
  return granted(world, principalId, resourceId, (r) => r.dataActions.some((p) => actionMatches(p, dataAction)));
}

/** Subscriptions a principal sees: those where it holds any assignment at or below the subscription. */
export function visibleSubscriptions(world: World, principalId: string): string[] {
  return world.subscriptions
    .map((s) => s.id)
    .filter((id) => world.role_assignments.some((a) => a.principal_id.toLowerCase() === principalId.toLowerCase() && scopeCovers(`/subscriptions/${id}`, a.scope)));
}
