// What a user's own Node script looks like: DefaultAzureCredential, an ARM
// call and a Key Vault read, configured by nothing but the environment
// `azgate exec` gives it. Prints one JSON line, including whether the
// user's own client secret reached this process. TEST_ARM_ENDPOINT and
// TEST_VAULT_URL point it at another cloud (as a user's code would).
import { DefaultAzureCredential } from "@azure/identity";
import { ResourceManagementClient } from "@azure/arm-resources";
import { SecretClient } from "@azure/keyvault-secrets";

const secretSeen = "AZURE_CLIENT_SECRET" in process.env;
const arm = process.env.TEST_ARM_ENDPOINT ?? "https://management.azure.com";
const vault = process.env.TEST_VAULT_URL ?? "https://teleport-demo-kv.vault.azure.net";
try {
  const credential = new DefaultAzureCredential();
  const token = await credential.getToken(`${arm}/.default`);
  const claims = JSON.parse(Buffer.from(token.token.split(".")[1], "base64url").toString());
  const groups = [];
  for await (const g of new ResourceManagementClient(credential, process.env.ARM_SUBSCRIPTION_ID, { endpoint: arm, credentialScopes: [`${arm}/.default`] }).resourceGroups.list()) groups.push(g.name);
  const secret = (await new SecretClient(vault, credential).getSecret("db-password")).value;
  console.log(JSON.stringify({ ok: true, claims, groups, secret, secret_seen: secretSeen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, message: e.message, secret_seen: secretSeen }));
}
