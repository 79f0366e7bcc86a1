import { afterAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { azgateCommand, tempDir } from "./helpers/azgate.ts";
import { runCommand } from "./helpers/run.ts";
import { entraApp } from "../src/emulator/entra.ts";
import { armApp } from "../src/emulator/arm.ts";
import { parseWorld } from "../src/emulator/world.ts";
import { DEFAULT_WORLD_YAML } from "../src/emulator/default-world.ts";
import { newSigningKey } from "../src/emulator/keys.ts";
import { issueAccessToken } from "../src/emulator/access-token.ts";

let child: ChildProcess | undefined;
afterAll(() => child?.kill("SIGTERM"));

describe("azgate emulator (the command)", () => {
  it("prints the environment to use: pasted into a shell as printed, the real az logs in with a printed identity and lists groups; an SDK client works too", async () => {
    const dir = tempDir("azgate-emucli-");
    const [cmd, args] = azgateCommand(["emulator", "--dir", dir]);
    child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no banner:\n${out}`)), 30_000);
      child!.stdout!.on("data", (d) => {
        out += d;
        if (out.includes("--azure-ca-file")) (clearTimeout(t), resolve());
      });
    });
    const exports = out.split("\n").filter((l) => l.startsWith("  export ")).join("\n");
    const env = Object.fromEntries([...exports.matchAll(/export (\w+)=(\S+)/g)].map((m) => [m[1], m[2]]));
    expect(Object.keys(env).sort()).toEqual(["AZURE_CONFIG_DIR", "AZURE_TENANT_ID", "HTTPS_PROXY", "HTTP_PROXY", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE"]);
    const reader = /^  teleport-reader\s+([0-9a-f-]{36})$/m.exec(out)![1];
    // The exports exactly as printed (comments and all), then az: the shell a person would have.
    const az = await runCommand("/bin/sh", ["-c", `${exports}\naz login --identity --username ${reader} -o none && az group list --query '[].name' -o tsv`], { HOME: tempDir(), AZURE_CORE_COLLECT_TELEMETRY: "false" });
    expect(az.code, az.stderr).toBe(0);
    expect(az.stdout.trim().split("\n")).toEqual(["myResourceGroup", "production"]);
    // The agent's command names the identity and a token file the emulator keeps fresh.
    expect(out).toMatch(/AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000001 AZURE_TENANT_ID=\S+ AZURE_FEDERATED_TOKEN_FILE=(\S+) /);
    expect(readFileSync(/AZURE_FEDERATED_TOKEN_FILE=(\S+)/.exec(out)![1], "utf8")).toMatch(/^ey/);
    // Its own data dir in the emulator's (the default, /var/lib/azgate, is not a normal user's to write).
    expect(/azgate start --mode agent .* --data-dir (\S+) \\$/m.exec(out)?.[1]).toBe(path.join(dir, "agent"));
    const res = await runCommand("node", [path.resolve("test/clients/js-identity.mjs"), "secret", "https://management.azure.com/.default"], {
      HTTPS_PROXY: env.HTTPS_PROXY,
      NODE_EXTRA_CA_CERTS: env.NODE_EXTRA_CA_CERTS,
      AZURE_TENANT_ID: env.AZURE_TENANT_ID,
      AZURE_CLIENT_ID: /ci-pipeline\s+client ID (\S+)/.exec(out)![1],
      CLIENT_SECRET: /secret (\S+)/.exec(out)![1],
      HOME: tempDir(),
    });
    expect(JSON.parse(res.stdout.trim()).ok, res.stdout).toBe(true);
  });

  it("without --dir keeps its state in a temp dir and removes it on exit; with --dir leaves the dir", async () => {
    const tmp = tempDir("azgate-emutmp-");
    const kept = tempDir("azgate-emukept-");
    for (const args of [["emulator"], ["emulator", "--dir", kept]]) {
      const [cmd, argv] = azgateCommand(args);
      const proc = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, TMPDIR: tmp } });
      let out = "";
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no banner:\n${out}`)), 30_000);
        proc.stdout!.on("data", (d) => {
          out += d;
          if (out.includes("--azure-ca-file")) (clearTimeout(t), resolve());
        });
      });
      const ca = /^CA:\s+(\S+)$/m.exec(out)![1];
      expect(existsSync(ca)).toBe(true);
      let err = "";
      proc.stderr!.on("data", (d) => (err += d));
      const exited = new Promise((resolve) => proc.on("exit", (code, signal) => resolve(`${code} ${signal}`)));
      proc.kill("SIGTERM");
      const how = await exited;
      expect(existsSync(ca), `exit ${how}: ${err}`).toBe(args.length > 1);
    }
    expect(readdirSync(tmp).filter((n) => n.startsWith("azgate-"))).toEqual([]);
  });
});

describe("emulator details real clients rely on", () => {
  it("Entra accepts and ignores unknown fields such as claims (sent for CAE)", async () => {
    const world = parseWorld(DEFAULT_WORLD_YAML, "default");
    const app = entraApp({ world, key: await newSigningKey("k"), issuers: [] });
    const body = new URLSearchParams({
      client_id: "00000000-0000-4000-8000-000000000010",
      client_secret: "emulated-client-secret",
      grant_type: "client_credentials",
      scope: "https://management.azure.com/.default",
      claims: '{"access_token":{"xms_cc":{"values":["cp1"]}}}',
      "x-client-SKU": "msal.js.node",
    });
    const res = await app.request(`https://login.microsoftonline.com/${world.tenant_id}/oauth2/v2.0/token?client-request-id=abc`, { method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded" } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ token_type: "Bearer", expires_in: 3599 });
  });

  it("ARM lists tenants, and an Owner creates and deletes a resource group", async () => {
    const world = parseWorld(DEFAULT_WORLD_YAML, "default");
    world.role_assignments.push({ principal_id: "10000000-0000-4000-8000-000000000010", role: "Owner", scope: "/subscriptions/00000000-0000-0000-0000-000000000000" });
    const key = await newSigningKey("k");
    const app = armApp({ world, key });
    const { token } = await issueAccessToken(key, world.tenant_id, { client_id: "00000000-0000-4000-8000-000000000010", principal_id: "10000000-0000-4000-8000-000000000010" }, "https://management.azure.com");
    const call = (method: string, p: string, body?: unknown) =>
      app.request(`https://management.azure.com${p}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined });
    expect((await (await call("GET", "/tenants?api-version=2019-11-01")).json()).value[0].tenantId).toBe(world.tenant_id);
    const rg = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/new-rg?api-version=2021-04-01";
    expect((await call("PUT", rg, {})).status).toBe(400); // location required
    expect((await call("PUT", rg, { location: "eastus" })).status).toBe(201);
    expect((await (await call("GET", rg)).json()).name).toBe("new-rg");
    expect((await call("DELETE", rg)).status).toBe(202);
    const gone = await call("GET", rg);
    expect(gone.status).toBe(404);
    expect((await gone.json()).error.code).toBe("ResourceGroupNotFound");
  });
});
