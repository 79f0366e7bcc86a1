/**
 * An app in Azure US Government, end to end: an agent whose app says
 * `cloud: AzureUSGovernment` (Entra ID at login.microsoftonline.us, ARM at
 * management.usgovcloudapi.net, both emulated), the Debian az and a Node SDK
 * client on the workstation. Everything must reach that cloud's hosts with
 * that cloud's audiences, and the public cloud's hosts must be refused at
 * each hop, with the refusal audited.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { findIssuedTokens, useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, spawnAgent, startCluster, workstationHome, type AgentProcess, type TestCluster, type UserSession } from "../helpers/cluster.ts";
import { cli, startCli, type LongRunningCli } from "../helpers/azgate.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const APP = "azure-gov";
const GOV_ARM = "management.usgovcloudapi.net";
const JS_DEFAULT = path.resolve(import.meta.dirname, "../clients/js-default.mjs");
const SEED_ROLE = path.resolve(import.meta.dirname, "../fixtures/seed/azure-cli-access-internal.yaml");

const claimsOf = (authorization: string | undefined) => JSON.parse(Buffer.from(String(authorization).split(".")[1], "base64url").toString()) as Record<string, unknown>;

describe("an app in Azure US Government", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let alice: UserSession;
  let home: string;
  const printed: string[] = [];
  const run = async (args: string[], env: Record<string, string> = {}) => {
    const res = await cli(args, { home, env: { HOME: home, ...env } });
    printed.push(res.stdout, res.stderr);
    return res;
  };

  beforeAll(async () => {
    cluster = await startCluster();
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken(), app: APP, args: ["--app-cloud", "AzureUSGovernment"], env: { AZURE_AUTHORITY_HOST: "https://login.microsoftonline.us/" } });
    await agent.waitFor(/tunnel to .* is up/);
    await cluster.admin.call("POST", "/v1/admin/resources", { text: readFileSync(SEED_ROLE, "utf8") });
    alice = await cluster.user("alice", ["azure-cli-access"], [READER]);
    home = await workstationHome(cluster, alice);
  });
  afterAll(() => stopAll(agent, cluster));

  it("apps ls names the cloud; apps login and az work against that cloud's hosts only", async () => {
    const from = fx.emu.requests.length;
    expect((await run(["apps", "ls"])).stdout).toMatch(new RegExp(`^${APP}\\s+Azure CLI and API access\\s+AzureUSGovernment\\s`, "m"));
    const login = await run(["apps", "login", APP, "--azure-identity", "teleport-reader"]);
    expect(login.code, login.stderr).toBe(0);
    const account = await run(["az", "account", "show", "-o", "json"]);
    expect(account.code, account.stderr).toBe(0);
    expect(JSON.parse(account.stdout)).toMatchObject({ environmentName: "AzureUSGovernment", tenantId: fx.emu.world.tenant_id });
    const groups = await run(["az", "group", "list", "-o", "json"]);
    expect(groups.code, groups.stderr).toBe(0);
    expect(JSON.parse(groups.stdout).map((g: { name: string }) => g.name)).toEqual(expect.arrayContaining(["myResourceGroup"]));

    const seen = fx.emu.requests.slice(from);
    // The agent's Entra ID and ARM are the cloud's; nothing went to a public cloud host.
    expect(new Set(seen.map((r) => r.host))).toEqual(new Set(["login.microsoftonline.us", GOV_ARM]));
    const armCalls = seen.filter((r) => r.host === GOV_ARM && r.path.startsWith("/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups"));
    expect(armCalls.length).toBeGreaterThan(0);
    // az asked for the cloud's v1 ARM resource; the agent swapped in a real token for exactly that.
    for (const r of armCalls) expect(claimsOf(r.authorization)).toMatchObject({ aud: "https://management.core.usgovcloudapi.net/", xms_mirid: READER });
  });

  it("an SDK client run with azgate exec reaches that cloud's ARM and Key Vault", async () => {
    const from = fx.emu.requests.length;
    const res = await run(["exec", "--", "node", JS_DEFAULT], { TEST_ARM_ENDPOINT: `https://${GOV_ARM}`, TEST_VAULT_URL: "https://teleport-demo-kv.vault.usgovcloudapi.net" });
    expect(res.code, res.stderr).toBe(0);
    const out = JSON.parse(res.stdout.trim().split("\n").pop()!);
    expect(out, res.stdout).toMatchObject({ ok: true, secret: expect.any(String), groups: expect.arrayContaining(["myResourceGroup"]) });
    expect(out.claims).toMatchObject({ aud: `https://${GOV_ARM}`, tid: fx.emu.world.tenant_id, xms_mirid: READER });
    const vault = fx.emu.requests.slice(from).filter((r) => r.host === "teleport-demo-kv.vault.usgovcloudapi.net" && r.authorization);
    expect(vault.length).toBeGreaterThan(0);
    expect(claimsOf(vault[0].authorization).aud).toBe("https://vault.usgovcloudapi.net");
  });

  it("refuses public Azure's hosts: at the workstation's CONNECT, and at the proxy (audited)", async () => {
    const proxy: LongRunningCli = await startCli(["proxy", "azure", "--app", APP, "--format", "unix"], { home, env: { HOME: home }, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
    try {
      const port = Number(/Started Azure proxy on http:\/\/127\.0\.0\.1:(\d+)\./.exec(proxy.output())?.[1]);
      const connect = await connectStatus(port, "management.azure.com:443");
      expect(connect).toMatchObject({ status: 403, reason: expect.stringContaining(`management.azure.com is an API host of Azure, but app "${APP}" is in AzureUSGovernment`) });
    } finally {
      await proxy.stop();
    }
    // A client that skips the local proxy's check and talks to the proxy's tunnel itself.
    const from = fx.emu.requests.length;
    const session = await alice.appSession(APP, READER);
    try {
      const res = await session.request("https://management.azure.com/subscriptions?api-version=2022-12-01");
      expect(res.status).toBe(403);
      const body = await new Response(res.body).text();
      expect(JSON.parse(body).error).toMatchObject({ code: "target_refused", message: "azgate: management.azure.com is not an Azure API host of AzureUSGovernment" });
    } finally {
      session.close();
    }
    expect(fx.emu.requests.slice(from)).toEqual([]);
    const { items } = await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", "/v1/admin/audit?event=app.request.denied");
    expect(items.filter((e) => e.host === "management.azure.com" && e.error_code === "target_refused" && e.app === APP)).toHaveLength(1);
  });

  it("no token the emulator issued reached the workstation", () => {
    expect(findIssuedTokens(fx, printed.join("\n"))).toEqual([]);
  });
});

/** A bare CONNECT to the local proxy: its status and reason phrase (what clients print: "Tunnel connection failed: 403 ..."). */
function connectStatus(port: number, target: string): Promise<{ status: number; reason: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, method: "CONNECT", path: target });
    req.once("connect", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? "" });
    });
    req.once("error", reject);
    req.end();
  });
}
