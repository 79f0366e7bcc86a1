// @azure/identity ManagedIdentityCredential plus an ARM SDK call, in their own
// process, configured only by the environment `azgate proxy azure` prints.
// RESOURCE_ID set: ask for that user-assigned identity (App Service style only;
// MSAL refuses a user-assigned identity in Cloud Shell style). Prints one JSON line.
import { ManagedIdentityCredential } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";

const credential = process.env.RESOURCE_ID ? new ManagedIdentityCredential({ resourceId: process.env.RESOURCE_ID }) : new ManagedIdentityCredential();
try {
  const token = await credential.getToken("https://management.azure.com/.default");
  const claims = JSON.parse(Buffer.from(token.token.split(".")[1], "base64url").toString());
  const groups = [];
  for await (const g of new ResourceManagementClient(credential, process.env.SUBSCRIPTION).resourceGroups.list()) groups.push(g.name);
  console.log(JSON.stringify({ ok: true, claims, expiresOnTimestamp: token.expiresOnTimestamp, groups }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, status: e.statusCode, message: e.message }));
}
