import { describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { useEmulator } from "./helpers/emulator.ts";
import { runJsonClient } from "./helpers/run.ts";

/** Python's azure-identity (Debian python3-azure) getting a Workload ID token from the emulator. */
const fx = useEmulator();

function python(tokenFile: string, clientId: string) {
  // Debian's interpreter (runJsonClient picks /usr/bin/python3), which sees python3-azure.
  return runJsonClient<{ ok: boolean; claims?: Record<string, string>; message?: string }>(path.resolve("test/clients/py-workload.py"), ["https://management.azure.com/.default"], {
    HOME: fx.dir,
    HTTPS_PROXY: `http://127.0.0.1:${fx.emu.proxyPort}`,
    REQUESTS_CA_BUNDLE: fx.emu.caFile,
    AZURE_AUTHORITY_HOST: "https://login.microsoftonline.com",
    AZURE_TENANT_ID: fx.emu.world.tenant_id,
    AZURE_CLIENT_ID: clientId,
    AZURE_FEDERATED_TOKEN_FILE: tokenFile,
  });
}

describe("emulator with Python's azure-identity", () => {
  it("exchanges a projected token (sent with its trailing newline) for an ARM token", async () => {
    const file = path.join(fx.dir, "token");
    // A token file ending in a newline: Python sends it untrimmed, the emulator must strip it.
    writeFileSync(file, (await fx.emu.issuer.sign({ namespace: "teleport-ns", serviceAccount: "teleport-azure-cli-aks-service-account" })) + "\n");
    const res = await python(file, "00000000-0000-4000-8000-000000000002");
    expect(res.ok, res.message).toBe(true);
    expect(res.claims).toMatchObject({ appid: "00000000-0000-4000-8000-000000000002", aud: "https://management.azure.com", tid: fx.emu.world.tenant_id });
  });

  it("is refused for a service account without a federated credential", async () => {
    const file = path.join(fx.dir, "intruder");
    writeFileSync(file, await fx.emu.issuer.sign({ namespace: "default", serviceAccount: "intruder" }));
    const res = await python(file, "00000000-0000-4000-8000-000000000002");
    expect(res.ok).toBe(false);
    expect(res.message).toContain("AADSTS70021");
  });
});
