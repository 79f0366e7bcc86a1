/**
 * The kinds of resource the emulated ARM serves from the world: how each is
 * listed, named, checked (its read action) and shaped, and the generic
 * `/resources` listing (az resource list, az keyvault list) over all of them.
 */
import { identityResourceId, type World } from "./world.ts";
import type { EmulatedCloud } from "./clouds.ts";

type Placed = { subscription: string; resource_group: string; name: string };

export interface Kind<T extends Placed> {
  type: string;
  action: string;
  items: (w: World) => T[];
  id: (r: T) => string;
  json: (r: T, w: World, cloud: EmulatedCloud) => Record<string, unknown>;
}

const idOf = (type: string) => (r: Placed) => `/subscriptions/${r.subscription}/resourceGroups/${r.resource_group}/providers/${type}/${r.name}`;
/** Vaults and storage accounts carry no location in the world: their group's. */
const groupLocation = (w: World, r: Placed) => w.resource_groups.find((g) => g.subscription === r.subscription && g.name.toLowerCase() === r.resource_group.toLowerCase())?.location ?? "eastus";

const identityKind: Kind<World["identities"][number]> = {
  type: "Microsoft.ManagedIdentity/userAssignedIdentities",
  action: "Microsoft.ManagedIdentity/userAssignedIdentities/read",
  items: (w) => w.identities,
  id: identityResourceId,
  json: (i, w) => ({ id: identityResourceId(i), name: i.name, type: "Microsoft.ManagedIdentity/userAssignedIdentities", location: i.location, tags: {}, properties: { tenantId: w.tenant_id, principalId: i.principal_id, clientId: i.client_id } }),
};

const vmKind: Kind<World["virtual_machines"][number]> = {
  type: "Microsoft.Compute/virtualMachines",
  action: "Microsoft.Compute/virtualMachines/read",
  items: (w) => w.virtual_machines,
  id: idOf("Microsoft.Compute/virtualMachines"),
  json: (v) => ({ id: vmKind.id(v), name: v.name, type: "Microsoft.Compute/virtualMachines", location: v.location, properties: { hardwareProfile: { vmSize: v.vm_size }, provisioningState: "Succeeded" } }),
};

const vaultKind: Kind<World["key_vaults"][number]> = {
  type: "Microsoft.KeyVault/vaults",
  action: "Microsoft.KeyVault/vaults/read",
  items: (w) => w.key_vaults,
  id: idOf("Microsoft.KeyVault/vaults"),
  json: (v, w, cloud) => ({
    id: vaultKind.id(v),
    name: v.name,
    type: "Microsoft.KeyVault/vaults",
    location: groupLocation(w, v),
    tags: {},
    properties: { tenantId: w.tenant_id, sku: { family: "A", name: "standard" }, vaultUri: `https://${v.name}${cloud.vaultSuffix}/`, enableRbacAuthorization: true, accessPolicies: [], provisioningState: "Succeeded" },
  }),
};

const storageKind: Kind<World["storage_accounts"][number]> = {
  type: "Microsoft.Storage/storageAccounts",
  action: "Microsoft.Storage/storageAccounts/read",
  items: (w) => w.storage_accounts,
  id: idOf("Microsoft.Storage/storageAccounts"),
  json: (a, w, cloud) => ({
    id: storageKind.id(a),
    name: a.name,
    type: "Microsoft.Storage/storageAccounts",
    location: groupLocation(w, a),
    kind: "StorageV2",
    sku: { name: "Standard_LRS", tier: "Standard" },
    tags: {},
    properties: { provisioningState: "Succeeded", primaryLocation: groupLocation(w, a), statusOfPrimary: "available", allowSharedKeyAccess: false, primaryEndpoints: { blob: `https://${a.name}${cloud.blobSuffix}/` } },
  }),
};

export const RESOURCE_KINDS: Record<string, Kind<any>> = {
  "microsoft.managedidentity/userassignedidentities": identityKind,
  "microsoft.compute/virtualmachines": vmKind,
  "microsoft.keyvault/vaults": vaultKind,
  "microsoft.storage/storageaccounts": storageKind,
};

/** One `$filter` clause of GET .../resources that the emulator reads: `resourceType`, `name` or `resourceGroup` `eq '...'`. */
type Clause = { field: "resourcetype" | "name" | "resourcegroup"; value: string };

/** ARM's filter on the resources list, the clauses az uses (`az resource list -g/-n/--resource-type`, `az keyvault list`; joined by `and`); null when it holds anything else. */
export function parseResourceFilter(filter: string | null): Clause[] | null {
  if (!filter?.trim()) return [];
  const clauses: Clause[] = [];
  for (const part of filter.split(/\s+and\s+/i)) {
    const m = /^\s*(resourceType|name|resourceGroup)\s+eq\s+'([^']*)'\s*$/i.exec(part);
    if (!m) return null;
    clauses.push({ field: m[1].toLowerCase() as Clause["field"], value: m[2].toLowerCase() });
  }
  return clauses;
}

/**
 * Every resource of every kind in the subscription (and group, when given) that the caller may read, in
 * the generic shape ARM lists (id, name, type, location, and kind and sku where the resource has them).
 */
export function listResources(world: World, cloud: EmulatedCloud, scope: { subscription: string; resourceGroup: string | null }, clauses: Clause[], mayRead: (action: string, id: string) => boolean) {
  const out: Record<string, unknown>[] = [];
  for (const kind of Object.values(RESOURCE_KINDS)) {
    for (const r of kind.items(world) as Placed[]) {
      if (r.subscription !== scope.subscription || (scope.resourceGroup !== null && r.resource_group.toLowerCase() !== scope.resourceGroup.toLowerCase())) continue;
      const field = { name: r.name, resourcegroup: r.resource_group, resourcetype: kind.type };
      if (!clauses.every((c) => field[c.field].toLowerCase() === c.value)) continue;
      if (!mayRead(kind.action, kind.id(r))) continue;
      const full = kind.json(r, world, cloud);
      out.push({ id: full.id, name: full.name, type: full.type, location: full.location, ...(full.kind ? { kind: full.kind } : {}), ...(full.sku ? { sku: full.sku } : {}), tags: full.tags ?? {} });
    }
  }
  return out;
}
