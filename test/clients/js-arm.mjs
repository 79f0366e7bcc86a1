// Real ARM SDK calls with a WorkloadIdentityCredential, in their own process
// (HTTPS_PROXY and NODE_EXTRA_CA_CERTS point them at the emulator).
// Prints one JSON line with each call's result or ARM error code.
import { WorkloadIdentityCredential } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";
import { ManagedServiceIdentityClient } from "@azure/arm-msi";

const sub = process.env.SUBSCRIPTION;
const workload = new WorkloadIdentityCredential();
// WRONG_AUDIENCE: present a Key Vault token to ARM, as a confused client would.
const credential = process.env.WRONG_AUDIENCE ? { getToken: () => workload.getToken("https://vault.azure.net/.default") } : workload;
const resources = new ResourceManagementClient(credential, sub);
const msi = new ManagedServiceIdentityClient(credential, sub);
const attempt = async (fn) => {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, status: e.statusCode, code: e.code, message: e.message };
  }
};
const collect = async (it) => {
  const out = [];
  for await (const x of it) out.push(x.name);
  return out;
};
console.log(
  JSON.stringify({
    groups: await attempt(() => collect(resources.resourceGroups.list())),
    identity: await attempt(() => msi.userAssignedIdentities.get("myResourceGroup", "teleport-reader")),
    identities: await attempt(() => collect(msi.userAssignedIdentities.listByResourceGroup("myresourcegroup"))),
    create: await attempt(() => resources.resourceGroups.createOrUpdate(`rg-${process.pid}`, { location: "eastus" })),
    update: await attempt(() => resources.resourceGroups.createOrUpdate("myResourceGroup", { location: "eastus" })),
  }),
);
