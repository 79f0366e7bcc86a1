// The managed-identity path of az 2.73 and later, which runs MSAL Python's
// ManagedIdentity: here MSAL for Node's ManagedIdentityApplication, which
// implements the same detection order (App Service's IDENTITY_ENDPOINT and
// IDENTITY_HEADER first), followed by an ARM call with the token. Configured
// only by the environment `azgate proxy azure` prints; RESOURCE_ID set: ask
// for that identity, as `az login --identity --resource-id` does. Prints one JSON line.
import { ManagedIdentityApplication } from "@azure/msal-node";
import { ResourceManagementClient } from "@azure/arm-resources";

try {
  const managedIdentityIdParams = process.env.RESOURCE_ID ? { userAssignedResourceId: process.env.RESOURCE_ID } : undefined;
  const app = new ManagedIdentityApplication({ managedIdentityIdParams });
  const source = app.getManagedIdentitySource();
  const result = await app.acquireToken({ resource: "https://management.azure.com" });
  const claims = JSON.parse(Buffer.from(result.accessToken.split(".")[1], "base64url").toString());
  const credential = { getToken: async () => ({ token: result.accessToken, expiresOnTimestamp: result.expiresOn.getTime() }) };
  const groups = [];
  for await (const g of new ResourceManagementClient(credential, process.env.SUBSCRIPTION).resourceGroups.list()) groups.push(g.name);
  console.log(JSON.stringify({ ok: true, source, claims, groups }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, message: e.message }));
}
