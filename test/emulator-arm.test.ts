import { describe, expect, it } from "vitest";
import path from "node:path";
import { armApp } from "../src/emulator/arm.ts";
import { newSigningKey } from "../src/emulator/keys.ts";
import { issueAccessToken } from "../src/emulator/access-token.ts";
import { parseWorld } from "../src/emulator/world.ts";
import { DEFAULT_WORLD_YAML } from "../src/emulator/default-world.ts";
import { clientEnv, useEmulator } from "./helpers/emulator.ts";
import { runJsonClient } from "./helpers/run.ts";

/** Emulated ARM, judged by the real @azure/arm-resources and @azure/arm-msi with Workload ID tokens. */
const SUB = "00000000-0000-0000-0000-000000000000";
const CLIENTS = { agent: "00000000-0000-0000-0000-000000000001", reader: "00000000-0000-4000-8000-000000000002", contributor: "00000000-0000-4000-8000-000000000003" };
const fx = useEmulator({ armPageSize: 1, projectToken: true }); // one item per page: every list must follow nextLink

type Call = { ok: boolean; value?: any; status?: number; code?: string; message?: string };
function arm(clientId: string, env: Record<string, string> = {}) {
  return runJsonClient<Record<"groups" | "identity" | "identities" | "create" | "update", Call>>(
    path.resolve("test/clients/js-arm.mjs"),
    [],
    clientEnv(fx, { AZURE_CLIENT_ID: clientId, AZURE_FEDERATED_TOKEN_FILE: fx.tokenFile, SUBSCRIPTION: SUB, ...env }),
  );
}

describe("emulated ARM with the real SDKs", () => {
  it("Reader reads groups (through nextLink paging) and identities, and may not write", async () => {
    const r = await arm(CLIENTS.reader);
    expect(r.groups).toEqual({ ok: true, value: ["myResourceGroup", "production"] });
    expect(r.identity.ok, r.identity.message).toBe(true);
    expect(r.identity.value).toMatchObject({ name: "teleport-reader", clientId: CLIENTS.reader, principalId: "10000000-0000-4000-8000-000000000002", tenantId: fx.emu.world.tenant_id });
    // The path was lowercased by the caller; ARM paths ignore case.
    expect(r.identities.value).toEqual(["teleport-azure-cli-aks-agent", "teleport-reader", "teleport-contributor"]);
    expect(r.create).toMatchObject({ ok: false, status: 403, code: "AuthorizationFailed" });
    expect(r.create.message).toContain("does not have authorization to perform action 'Microsoft.Resources/subscriptions/resourceGroups/write'");
    expect(r.update).toMatchObject({ ok: false, status: 403, code: "AuthorizationFailed" });
  });

  it("Contributor on one group writes there and only there", async () => {
    const r = await arm(CLIENTS.contributor);
    expect(r.groups.value).toEqual(["myResourceGroup"]);
    expect(r.update.ok, r.update.message).toBe(true);
    expect(r.create).toMatchObject({ ok: false, status: 403, code: "AuthorizationFailed" });
  });

  it("a custom role with userAssignedIdentities/read reads identities only (the agent's role)", async () => {
    const r = await arm(CLIENTS.agent);
    expect(r.identity.ok, r.identity.message).toBe(true);
    expect(r.identity.value.clientId).toBe(CLIENTS.reader);
    expect(r.groups).toEqual({ ok: true, value: [] });
    expect(r.create).toMatchObject({ ok: false, status: 403, code: "AuthorizationFailed" });
  });

  it("refuses a token for another audience", async () => {
    const r = await arm(CLIENTS.reader, { WRONG_AUDIENCE: "1" });
    expect(r.identity).toMatchObject({ ok: false, status: 401, code: "InvalidAuthenticationTokenAudience" });
  });
});

describe("emulated ARM token checks", () => {
  it("refuses an expired token and a missing one, in ARM's error shape", async () => {
    const world = parseWorld(DEFAULT_WORLD_YAML, "default");
    const key = await newSigningKey("k");
    const app = armApp({ world, key });
    const reader = { client_id: CLIENTS.reader, principal_id: "10000000-0000-4000-8000-000000000002" };
    const old = await issueAccessToken(key, world.tenant_id, reader, "https://management.core.windows.net/", Date.now() - 2 * 3600_000);
    const url = `https://management.azure.com/subscriptions/${SUB}/resourcegroups?api-version=2021-04-01`;
    const expired = await app.request(url, { headers: { authorization: `Bearer ${old.token}` } });
    expect(expired.status).toBe(401);
    expect((await expired.json()).error.code).toBe("ExpiredAuthenticationToken");
    const missing = await app.request(url);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toEqual({ error: { code: "AuthenticationFailed", message: "Authentication failed. The 'Authorization' header is missing." } });
    const fresh = await issueAccessToken(key, world.tenant_id, reader, "https://management.core.windows.net/");
    const ok = await app.request(url.replace("resourcegroups", "RESOURCEGROUPS"), { headers: { authorization: `Bearer ${fresh.token}` } });
    expect(ok.status).toBe(200);
    expect((await ok.json()).value.map((g: { name: string }) => g.name)).toEqual(["myResourceGroup", "production"]);
  });
});
