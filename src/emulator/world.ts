import { z } from "zod";
import { parse as parseYaml } from "yaml";
import { AzgateError } from "../errors/index.ts";
import { formatIssues } from "../resources/issues.ts";

/**
 * The emulator's world: what exists in the emulated tenant. Loaded from YAML
 * and validated; a default world (the seed guide's) ships in default-world.ts.
 */
const guid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, "must be a GUID");

const federatedCredential = z.strictObject({
  name: z.string(),
  issuer: z.string().url(),
  subject: z.string(),
  audiences: z.array(z.string()).default(["api://AzureADTokenExchange"]),
});

export const worldSchema = z.strictObject({
  tenant_id: guid,
  /** The AKS-style OIDC issuer the emulator runs, for Workload ID. */
  aks_oidc_issuer: z.string().url().default("https://oidc.prod-aks.azure.com/00000000-0000-4000-8000-0000000000aa/"),
  subscriptions: z.array(z.strictObject({ id: guid, display_name: z.string() })).min(1),
  resource_groups: z.array(z.strictObject({ subscription: guid, name: z.string(), location: z.string().default("eastus") })).default([]),
  identities: z
    .array(
      z.strictObject({
        subscription: guid,
        resource_group: z.string(),
        name: z.string(),
        client_id: guid,
        principal_id: guid,
        location: z.string().default("eastus"),
        federated_credentials: z.array(federatedCredential).default([]),
      }),
    )
    .default([]),
  applications: z.array(z.strictObject({ display_name: z.string(), client_id: guid, principal_id: guid, secret: z.string().optional() })).default([]),
  role_definitions: z.array(z.strictObject({ name: z.string(), actions: z.array(z.string()).default([]), data_actions: z.array(z.string()).default([]) })).default([]),
  role_assignments: z.array(z.strictObject({ principal_id: guid, role: z.string(), scope: z.string() })).default([]),
  key_vaults: z
    .array(z.strictObject({ subscription: guid, resource_group: z.string(), name: z.string().regex(/^[a-z0-9-]{3,24}$/i, "must be 3-24 letters, digits and '-'"), secrets: z.record(z.string(), z.string()).default({}) }))
    .default([]),
  storage_accounts: z
    .array(z.strictObject({ subscription: guid, resource_group: z.string(), name: z.string().regex(/^[a-z0-9]{3,24}$/, "must be 3-24 lowercase letters and digits"), containers: z.array(z.string()).default([]) }))
    .default([]),
  /** The VM the IMDS endpoint belongs to: its user-assigned identities, by name. */
  imds: z.strictObject({ user_assigned: z.array(z.string()).default([]) }).default({ user_assigned: [] }),
  virtual_machines: z
    .array(z.strictObject({ subscription: guid, resource_group: z.string(), name: z.string(), location: z.string().default("eastus"), vm_size: z.string().default("Standard_B2s") }))
    .default([]),
});

export type World = z.infer<typeof worldSchema>;
export type WorldIdentity = World["identities"][number];

export function parseWorld(text: string, source: string): World {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new AzgateError("config_invalid", `${source}: malformed YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  const result = worldSchema.safeParse(raw);
  if (!result.success) throw new AzgateError("config_invalid", `${source}: invalid world:\n  ${formatIssues(result.error.issues).join("\n  ")}`);
  return result.data;
}

export function identityResourceId(i: WorldIdentity): string {
  return `/subscriptions/${i.subscription}/resourceGroups/${i.resource_group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${i.name}`;
}
