import { afterAll, beforeAll, describe, expect, it } from "vitest";
import https from "node:https";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { decodeJwt } from "jose";
import { startEmulator, type RunningEmulator } from "../src/emulator/server.ts";
import { parseWorld } from "../src/emulator/world.ts";
import { DEFAULT_WORLD_YAML } from "../src/emulator/default-world.ts";
import { tempDir } from "./helpers/azgate.ts";
import { runCommand } from "./helpers/run.ts";

/** The emulator's own promises: reachability by real names, private trust, token rotation, world validation. */
let emu: RunningEmulator;
let dir: string;
beforeAll(async () => {
  dir = tempDir("azgate-emucore-");
  emu = await startEmulator({ dir });
});
afterAll(async () => emu?.close());

// Resolves every name to the emulator's address; Node asks with {all: true} and wants a list then.
const loopbackLookup = ((_host: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) =>
  opts.all ? cb(null, [{ address: "127.0.0.1", family: 4 }]) : cb(null, "127.0.0.1", 4)) as unknown as https.RequestOptions["lookup"];

/** Like curl --connect-to: the real host name (SNI and Host unchanged) resolved to the emulator. */
function connectTo(host: string, pathname: string, ca?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host, port: emu.httpsPort, path: pathname, ca, lookup: loopbackLookup },
      (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("reaching the emulator", () => {
  it("answers the real host names on its HTTPS port, with a certificate for them", async () => {
    const res = await connectTo("login.microsoftonline.com", `/${emu.world.tenant_id}/v2.0/.well-known/openid-configuration`, emu.caPem);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).token_endpoint).toBe(`https://login.microsoftonline.com/${emu.world.tenant_id}/oauth2/v2.0/token`);
    const aks = await connectTo("oidc.prod-aks.azure.com", new URL(".well-known/openid-configuration", emu.world.aks_oidc_issuer).pathname, emu.caPem);
    expect(JSON.parse(aks.body).issuer).toBe(emu.world.aks_oidc_issuer);
  });

  it("its CA is trusted only where a caller points at it: fresh per start, 0600, never system-wide", async () => {
    await expect(connectTo("login.microsoftonline.com", "/")).rejects.toThrow(/self.signed|unable to verify|certificate/i);
    const other = await startEmulator({ dir: tempDir("azgate-emucore2-") });
    expect(other.caPem).not.toBe(emu.caPem);
    await other.close();
    expect(statSync(emu.caFile).mode & 0o777).toBe(0o600);
    // A client given the proxy but not the CA fails to connect.
    const res = await runCommand("node", ["-e", "require('https').get('https://management.azure.com/',{agent:new (require('https').Agent)()},r=>console.log('reached')).on('error',e=>console.log('refused '+e.code))"], {
      HTTPS_PROXY: `http://127.0.0.1:${emu.proxyPort}`,
    });
    expect(res.stdout).not.toContain("reached");
  });
});

describe("Workload ID", () => {
  it("writes the projected token and rotates it before expiry", async () => {
    const file = path.join(dir, "rotating-token");
    const projection = await emu.issuer.project(file, { namespace: "teleport-ns", serviceAccount: "sa", ttlSeconds: 2 });
    const first = readFileSync(file, "utf8");
    expect(decodeJwt(first)).toMatchObject({ sub: "system:serviceaccount:teleport-ns:sa", aud: "api://AzureADTokenExchange", iss: emu.world.aks_oidc_issuer });
    // Rotation is the issuer's own timer: wait for the file to change, not for a fixed time.
    await expect.poll(() => readFileSync(file, "utf8"), { timeout: 5_000, interval: 100 }).not.toBe(first);
    const second = readFileSync(file, "utf8");
    projection.stop();
    expect(second).not.toBe(first);
    expect(decodeJwt(second).exp!).toBeGreaterThan(decodeJwt(first).exp!);
  });
});

describe("world files", () => {
  it("the default world is the seed guide's", () => {
    const w = parseWorld(DEFAULT_WORLD_YAML, "default");
    expect(w.resource_groups.map((g) => g.name)).toContain("myResourceGroup");
    expect(w.identities.map((i) => i.name)).toEqual(["teleport-azure-cli-aks-agent", "teleport-reader", "teleport-contributor"]);
    expect(w.identities[1].federated_credentials[0].subject).toBe("system:serviceaccount:teleport-ns:teleport-azure-cli-aks-service-account");
  });

  it("a bad world names the field; the emulator refuses to start with it", async () => {
    expect(() => parseWorld("tenant_id: not-a-guid\nsubscriptions: []\n", "w.yaml")).toThrow(/w\.yaml: invalid world:[\s\S]*tenant_id: must be a GUID[\s\S]*subscriptions/);
    expect(() => parseWorld("tenant_id: [\n", "w.yaml")).toThrow(/malformed YAML/);
    const file = path.join(dir, "bad-world.yaml");
    writeFileSync(file, DEFAULT_WORLD_YAML.replace("role_assignments:", "role_asignments:"));
    await expect(startEmulator({ dir: tempDir(), worldFile: file })).rejects.toThrow(/role_asignments: unknown field/);
  });
});
