// A real @azure/identity client, run as its own process so it sees only the
// environment a pod would: HTTPS_PROXY, NODE_EXTRA_CA_CERTS, AZURE_* variables.
// Mode: workload | assertion (ASSERTION env) | secret (CLIENT_SECRET env) | imds (MI_CLIENT_ID env). Prints one JSON line.
import { ClientAssertionCredential, ClientSecretCredential, ManagedIdentityCredential, WorkloadIdentityCredential } from "@azure/identity";

const [mode, scope] = process.argv.slice(2);
const { AZURE_TENANT_ID: tenant, AZURE_CLIENT_ID: client } = process.env;
const credential =
  mode === "workload" ? new WorkloadIdentityCredential() :
  mode === "imds" ? new ManagedIdentityCredential({ clientId: process.env.MI_CLIENT_ID }) :
  mode === "assertion" ? new ClientAssertionCredential(tenant, client, async () => process.env.ASSERTION) :
  new ClientSecretCredential(tenant, client, process.env.CLIENT_SECRET);
try {
  const t = await credential.getToken(scope);
  const claims = JSON.parse(Buffer.from(t.token.split(".")[1], "base64url").toString());
  console.log(JSON.stringify({ ok: true, expiresOnTimestamp: t.expiresOnTimestamp, claims }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, name: e.name, message: e.message }));
}
