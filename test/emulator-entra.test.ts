import { describe, expect, it } from "vitest";
import path from "node:path";
import { SignJWT, UnsecuredJWT } from "jose";
import { newSigningKey } from "../src/emulator/keys.ts";
import { useEmulator } from "./helpers/emulator.ts";
import { runJsonClient } from "./helpers/run.ts";

/** Entra ID and Workload ID of the emulator, judged by the real @azure/identity through the real host name. */
const SA = { namespace: "teleport-ns", serviceAccount: "teleport-azure-cli-aks-service-account" };
const AGENT_CLIENT = "00000000-0000-0000-0000-000000000001";
const ARM = "https://management.azure.com/.default";
const fx = useEmulator();

function jsClient(args: string[], env: Record<string, string>) {
  return runJsonClient<{ ok: boolean; message?: string; claims?: Record<string, unknown>; expiresOnTimestamp?: number }>(path.resolve("test/clients/js-identity.mjs"), args, {
    HOME: fx.dir,
    HTTPS_PROXY: `http://127.0.0.1:${fx.emu.proxyPort}`,
    NODE_EXTRA_CA_CERTS: fx.emu.caFile,
    AZURE_TENANT_ID: fx.emu.world.tenant_id,
    ...env,
  });
}

const assertion = (over: { iss?: string; sub?: string; aud?: string; exp?: number; key?: CryptoKey; kid?: string }) =>
  new SignJWT({})
    .setProtectedHeader({ alg: "RS256", kid: over.kid ?? fx.emu.issuer.key.kid })
    .setIssuer(over.iss ?? fx.emu.issuer.issuer)
    .setSubject(over.sub ?? `system:serviceaccount:${SA.namespace}:${SA.serviceAccount}`)
    .setAudience(over.aud ?? "api://AzureADTokenExchange")
    .setIssuedAt()
    .setExpirationTime(over.exp ?? Math.floor(Date.now() / 1000) + 600)
    .sign(over.key ?? fx.emu.issuer.key.privateKey);

describe("emulated Entra ID with the real @azure/identity", () => {
  it("WorkloadIdentityCredential exchanges the projected token for an Entra-shaped token", async () => {
    const file = path.join(fx.dir, "sa-token");
    const projection = await fx.emu.issuer.project(file, SA);
    const res = await jsClient(["workload", ARM], { AZURE_CLIENT_ID: AGENT_CLIENT, AZURE_FEDERATED_TOKEN_FILE: file });
    projection.stop();
    expect(res.ok, res.message).toBe(true);
    expect(res.claims).toMatchObject({
      aud: "https://management.azure.com",
      iss: `https://sts.windows.net/${fx.emu.world.tenant_id}/`,
      tid: fx.emu.world.tenant_id,
      appid: AGENT_CLIENT,
      oid: "10000000-0000-4000-8000-000000000001",
      xms_mirid: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/teleport-azure-cli-aks-agent",
    });
    expect(res.expiresOnTimestamp! - Date.now()).toBeGreaterThan(50 * 60_000);
  });

  it("keeps the trailing slash of v1 resources", async () => {
    const res = await jsClient(["assertion", "https://management.core.windows.net//.default"], { AZURE_CLIENT_ID: AGENT_CLIENT, ASSERTION: await assertion({}) });
    expect(res.ok, res.message).toBe(true);
    expect(res.claims!.aud).toBe("https://management.core.windows.net/");
  });

  it("issues tokens for an application with its client secret, and refuses a wrong one", async () => {
    const app = { AZURE_CLIENT_ID: "00000000-0000-4000-8000-000000000010" };
    const ok = await jsClient(["secret", "https://vault.azure.net/.default"], { ...app, CLIENT_SECRET: "emulated-client-secret" });
    expect(ok.ok, ok.message).toBe(true);
    expect(ok.claims!.aud).toBe("https://vault.azure.net");
    expect(ok.claims!.xms_mirid).toBeUndefined();
    const bad = await jsClient(["secret", ARM], { ...app, CLIENT_SECRET: "wrong" });
    expect(bad.message).toContain("AADSTS7000215");
  });

  const negatives: [string, () => Promise<Record<string, string>>, string][] = [
    ["a subject without a federated credential", async () => ({ AZURE_CLIENT_ID: AGENT_CLIENT, ASSERTION: await assertion({ sub: "system:serviceaccount:default:intruder" }) }), "AADSTS70021"],
    ["the wrong audience", async () => ({ AZURE_CLIENT_ID: AGENT_CLIENT, ASSERTION: await assertion({ aud: "api://other" }) }), "AADSTS700212"],
    ["an unknown issuer", async () => ({ AZURE_CLIENT_ID: AGENT_CLIENT, ASSERTION: await assertion({ iss: "https://evil.example.com/" }) }), "AADSTS700211"],
    ["the right issuer but a foreign signing key", async () => {
      const k = await newSigningKey(fx.emu.issuer.key.kid);
      return { AZURE_CLIENT_ID: AGENT_CLIENT, ASSERTION: await assertion({ key: k.privateKey }) };
    }, "AADSTS700027"],
    ["an expired assertion", async () => ({ AZURE_CLIENT_ID: AGENT_CLIENT, ASSERTION: await assertion({ exp: Math.floor(Date.now() / 1000) - 600 }) }), "AADSTS700024"],
    ["an unsigned assertion", async () => ({
      AZURE_CLIENT_ID: AGENT_CLIENT,
      ASSERTION: new UnsecuredJWT({}).setIssuer(fx.emu.issuer.issuer).setSubject(`system:serviceaccount:${SA.namespace}:${SA.serviceAccount}`).setAudience("api://AzureADTokenExchange").setExpirationTime("10m").encode(),
    }), "AADSTS700027"],
    ["an unknown client ID", async () => ({ AZURE_CLIENT_ID: "99999999-0000-4000-8000-000000000099", ASSERTION: await assertion({}) }), "AADSTS700016"],
  ];
  it.each(negatives)("refuses %s as Entra does", async (_name, env, code) => {
    const res = await jsClient(["assertion", ARM], await env());
    expect(res.ok).toBe(false);
    expect(res.message).toContain(code);
  });

  it("ManagedIdentityCredential gets a token from the emulated IMDS through the proxy", async () => {
    const res = await jsClient(["imds", ARM], { MI_CLIENT_ID: "00000000-0000-4000-8000-000000000002" });
    expect(res.ok, res.message).toBe(true);
    expect(res.claims).toMatchObject({ appid: "00000000-0000-4000-8000-000000000002", aud: "https://management.azure.com" });
    const unknown = await jsClient(["imds", ARM], { MI_CLIENT_ID: "99999999-0000-4000-8000-000000000099" });
    expect(unknown.ok).toBe(false);
    expect(unknown.message).toContain("Identity not found");
  });

  it("IMDS wants the Metadata header and answers an unknown client_id with 400 Bad Request", async () => {
    const http = await import("node:http");
    const get = (headers: Record<string, string>, query: string) =>
      new Promise<{ status?: number; reason?: string; body: string }>((resolve, reject) => {
        // Absolute-URI request through the proxy port, as az and Python send it.
        const req = http.request({ host: "127.0.0.1", port: fx.emu.proxyPort, path: `http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/${query}`, headers }, (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode, reason: res.statusMessage, body }));
        });
        req.on("error", reject);
        req.end();
      });
    const probe = await get({}, "");
    expect(probe.status).toBe(400);
    expect(JSON.parse(probe.body).error_description).toBe("Required metadata header not specified");
    const unknown = await get({ Metadata: "true" }, "&client_id=22222222-0000-4000-8000-000000000022");
    expect([unknown.status, unknown.reason]).toEqual([400, "Bad Request"]);
    const byObject = await get({ Metadata: "true" }, "&object_id=10000000-0000-4000-8000-000000000002");
    expect(byObject.status).toBe(200);
    expect(JSON.parse(byObject.body)).toMatchObject({ client_id: "00000000-0000-4000-8000-000000000002", token_type: "Bearer", resource: "https://management.azure.com/" });
  });

  it("refuses a scope for an unknown resource", async () => {
    const res = await jsClient(["assertion", "https://unknown.example.com/.default"], { AZURE_CLIENT_ID: AGENT_CLIENT, ASSERTION: await assertion({}) });
    expect(res.message).toContain("AADSTS70011");
  });
});
