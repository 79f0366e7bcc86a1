/**
 * The client half of `azgate demo --check`, run as its own process with only
 * the environment `azgate proxy azure` would print (as a second shell would
 * have): @azure/identity's ManagedIdentityCredential gets a token through the
 * emulated IDENTITY_ENDPOINT, and an Azure SDK pipeline lists resource groups
 * through HTTPS_PROXY. Prints one JSON line: the steps and how each went.
 */
import { ManagedIdentityCredential } from "@azure/identity";
import { bearerTokenAuthenticationPolicy, createDefaultHttpClient, createPipelineFromOptions, createPipelineRequest } from "@azure/core-rest-pipeline";

export interface ClientStep {
  name: string;
  ok: boolean;
  detail: string;
}

const ARM_SCOPE = "https://management.azure.com/.default";

export async function runCheckClient(subscription: string): Promise<ClientStep[]> {
  const steps: ClientStep[] = [];
  const credential = new ManagedIdentityCredential();
  try {
    const token = await credential.getToken(ARM_SCOPE);
    const claims = JSON.parse(Buffer.from(token.token.split(".")[1], "base64url").toString()) as Record<string, string>;
    const placeholder = claims.iss === "azgate-client";
    steps.push({ name: "@azure/identity ManagedIdentityCredential gets a token from the emulated IDENTITY_ENDPOINT", ok: placeholder, detail: placeholder ? `placeholder for ${claims.xms_mirid}` : `unexpected issuer ${claims.iss}` });
  } catch (e) {
    steps.push({ name: "@azure/identity ManagedIdentityCredential gets a token from the emulated IDENTITY_ENDPOINT", ok: false, detail: (e as Error).message });
    return steps;
  }
  const name = "an Azure SDK pipeline lists resource groups through the local proxy";
  try {
    const pipeline = createPipelineFromOptions({});
    pipeline.addPolicy(bearerTokenAuthenticationPolicy({ credential, scopes: ARM_SCOPE }));
    const url = `https://management.azure.com/subscriptions/${subscription}/resourcegroups?api-version=2021-04-01`;
    const res = await pipeline.sendRequest(createDefaultHttpClient(), createPipelineRequest({ url }));
    const groups = res.status === 200 ? (JSON.parse(res.bodyAsText ?? "{}") as { value: { name: string }[] }).value.map((g) => g.name) : [];
    steps.push({ name, ok: res.status === 200, detail: res.status === 200 ? groups.join(", ") : `HTTP ${res.status}: ${res.bodyAsText?.slice(0, 300)}` });
  } catch (e) {
    steps.push({ name, ok: false, detail: (e as Error).message });
  }
  return steps;
}
