/**
 * The Azure CLI through azgate, end to end: the Debian azure-cli, a real
 * proxy, a real agent (Workload ID against the emulator) and the emulator.
 * The CLI runs as `azgate apps login` / `azgate az`, as a user would.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { findIssuedTokens, useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, startClusterWithAgent, workstationHome, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli } from "../helpers/azgate.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");

describe("az through azgate", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let home: string;
  const printed: string[] = [];
  const az = async (args: string[]) => {
    const res = await cli(args, { home, env: { HOME: home } });
    printed.push(res.stdout, res.stderr);
    return res;
  };

  beforeAll(async () => {
    ({ cluster, agent } = await startClusterWithAgent(fx));
    const alice = await cluster.user("alice", ["azure-cli-access"], [READER, IDENTITY("teleport-contributor")]);
    home = await workstationHome(cluster, alice);
  });
  afterAll(() => stopAll(agent, cluster));

  it("apps login runs az login --identity through azgate and prints az's subscriptions, then the three lines", async () => {
    const ls = await az(["apps", "ls"]);
    expect(ls.stdout).toMatch(/^azure-cli\s/m);
    const res = await az(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"]);
    expect(res.stderr + res.stdout).not.toMatch(/ERROR/);
    expect(res.code).toBe(0);
    const json = JSON.parse(res.stdout.slice(0, res.stdout.indexOf("Logged into")));
    expect(json[0]).toMatchObject({ id: "00000000-0000-0000-0000-000000000000", tenantId: fx.emu.world.tenant_id, user: { type: "servicePrincipal" } });
    expect(res.stdout).toContain(`Logged into Azure app "azure-cli".\nYour identity: ${READER}\nExample Azure CLI command: azgate az group list`);
    const dir = path.join(home, "keys");
    const files = readdirSync(dir, { recursive: true }).map(String).filter((f) => /\.(key|crt|pem|json)$/.test(f));
    for (const f of files) expect(statSync(path.join(dir, f)).mode & 0o777, f).toBe(0o600);
  });

  it("runs az group list, identity show and rest against the emulator's data", async () => {
    const groups = await az(["az", "group", "list", "-o", "json"]);
    expect(groups.code).toBe(0);
    expect(JSON.parse(groups.stdout).map((g: { name: string }) => g.name)).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
    const show = await az(["az", "identity", "show", "-g", "myResourceGroup", "-n", "teleport-reader", "-o", "json"]);
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({ name: "teleport-reader", clientId: "00000000-0000-4000-8000-000000000002" });
    const rest = await az(["az", "rest", "--method", "get", "--url", "https://management.azure.com/subscriptions?api-version=2022-12-01"]);
    expect(rest.code).toBe(0);
    expect(JSON.parse(rest.stdout).value[0].subscriptionId).toBe("00000000-0000-0000-0000-000000000000");
  });

  it("passes az's own failure and exit code: a write as Reader is AuthorizationFailed", async () => {
    const res = await az(["az", "group", "create", "-n", "new-group", "-l", "eastus"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/AuthorizationFailed/);
  });

  it("az account get-access-token returns the placeholder, never a token the emulator issued", async () => {
    const res = await az(["az", "account", "get-access-token", "-o", "json"]);
    expect(res.code).toBe(0);
    const token = JSON.parse(res.stdout).accessToken as string;
    const claims = JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
    // The identity's real facts, learnt from the agent at apps login (the emulator's world: teleport-reader's client and principal IDs).
    expect(claims).toMatchObject({ iss: "azgate-client", xms_mirid: READER, tid: fx.emu.world.tenant_id, appid: "00000000-0000-4000-8000-000000000002", oid: "10000000-0000-4000-8000-000000000002", idtyp: "app" });
    // No token the emulator issued is in anything az printed in this file, or anywhere under the azgate home.
    const everything = readdirSync(home, { recursive: true })
      .map((f) => path.join(home, String(f)))
      .filter((f) => statSync(f).isFile())
      .map((f) => readFileSync(f, "latin1"));
    expect(fx.emu.issuedTokens.size).toBeGreaterThan(0);
    expect(findIssuedTokens(fx, [...printed, ...everything].join("\n"))).toEqual([]);
  });

  it("refuses an identity the user may not use, listing the choices", async () => {
    const res = await az(["apps", "login", "azure-cli", "--azure-identity", "teleport-azure-cli-aks-agent"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/failed to find the identity matching "teleport-azure-cli-aks-agent"[\s\S]*teleport-contributor[\s\S]*teleport-reader/);
  });

  it("apps logout removes the app credentials; azgate az then asks for apps login", async () => {
    const out = await az(["apps", "logout", "azure-cli"]);
    expect([out.code, out.stdout]).toEqual([0, 'Logged out of "azure-cli".\n']);
    const keys = readdirSync(path.join(home, "keys"), { recursive: true }).map(String);
    expect(keys.filter((f) => f.includes("-app/"))).not.toContainEqual(expect.stringMatching(/\.(key|crt|pem)$/));
    const res = await az(["az", "group", "list"]);
    expect([res.code, res.stderr]).toEqual([1, "ERROR: please login using 'azgate apps login' first\n"]);
    expect((await az(["apps", "logout"])).stdout).toBe("Not logged into any app.\n");
  });
});
