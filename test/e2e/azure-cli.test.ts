/**
 * The Azure CLI through azgate, end to end: the Debian azure-cli, a real
 * proxy, a real agent (Workload ID against the emulator) and the emulator.
 * The CLI runs as `azgate apps login` / `azgate az`, as a user would.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { clientEnv, findIssuedTokens, useEmulator } from "../helpers/emulator.ts";
import { runCommand } from "../helpers/run.ts";
import { IDENTITY, ROOT, spawnAgent, startClusterWithAgent, workstationHome, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
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

  it("audit by command: az group create, list, a policy-denied delete and a Python SDK script under exec are four commands, with their parameter names and never their values; the Activity Log joins them to the user, and a write made around azgate stands out", async () => {
    const CONTRIB = IDENTITY("teleport-contributor");
    await cluster.admin.call("POST", "/v1/admin/resources", {
      text: `kind: role\nversion: v7\nmetadata: {name: no-group-delete}\nspec:\n  allow: {app_labels: {'*': '*'}, azure_identities: ['${CONTRIB}']}\n  deny: {azure_api: [{actions: [Microsoft.Resources/subscriptions/resourceGroups/delete]}]}\n`,
    });
    const dave = await cluster.user("dave", ["no-group-delete"]);
    const daveHome = await workstationHome(cluster, dave);
    const as = (args: string[]) => cli(args, { home: daveHome, env: { HOME: daveHome } });
    expect((await as(["apps", "login", "azure-cli", "--azure-identity", "teleport-contributor"])).code).toBe(0);
    const since = new Date().toISOString();
    const SECRETS = ["SECRET-TAG-VALUE-1", "SECRET-QUERY-VALUE-2", "SECRET-SCRIPT-ARG-3"];
    expect((await as(["az", "group", "create", "-n", "myResourceGroup", "-l", "westeurope", "--tags", `owner=${SECRETS[0]}`, "-o", "none"])).code).toBe(0);
    expect((await as(["az", "group", "list", "--query", `[?name!='${SECRETS[1]}'].name`, "-o", "json"])).code).toBe(0);
    const deleted = await as(["az", "group", "delete", "-n", "myResourceGroup", "--yes"]);
    expect([deleted.code, deleted.stderr]).toEqual([1, expect.stringContaining("AzgatePolicyDenied")]);
    const script = await as(["exec", "--", "/usr/bin/python3", path.join(ROOT, "test/clients/py-tag-group.py"), SECRETS[2]]);
    expect(script.stdout, script.stderr).toContain("{");
    expect(JSON.parse(script.stdout)).toEqual({ ok: true, name: "myResourceGroup" });

    const listed = await as(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "commands", "--user", "dave", "--since", since, "--format", "json"]);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = (JSON.parse(listed.stdout) as { command: string; parameters: string | null; actions: string[]; result: string; requests: number; azure_identity: string; invocation_id: string | null }[]).reverse();
    const WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write";
    expect(rows.map((r) => [r.command, r.parameters, r.actions, r.result])).toEqual([
      // az's own ParameterSetName: the flags as typed, never their values.
      ["az group create", "-n -l --tags -o", [WRITE], "allowed"],
      ["az group list", "--query -o", ["Microsoft.Resources/subscriptions/resourceGroups/read"], "allowed"],
      ["az group delete", "-n --yes", ["Microsoft.Resources/subscriptions/resourceGroups/delete"], "denied"],
      ["python3", null, [WRITE], "allowed"],
    ]);
    expect(rows.every((r) => r.azure_identity === CONTRIB && r.invocation_id)).toBe(true);
    expect(new Set(rows.map((r) => r.invocation_id)).size).toBe(4);
    // The values never reach the audit log (the tag went to Azure, in the body; the query stayed in az).
    const log = readFileSync(path.join(cluster.proxy.dataDir, "audit", "events.jsonl"), "utf8");
    for (const secret of SECRETS) expect(log).not.toContain(secret);

    // A write around azgate: az straight at the emulator, as the same identity (its IMDS: a token from inside Azure).
    const direct = clientEnv(fx, { HOME: fx.dir, AZURE_CONFIG_DIR: path.join(fx.dir, "direct-az"), AZURE_CORE_COLLECT_TELEMETRY: "false", HTTP_PROXY: `http://127.0.0.1:${fx.emu.proxyPort}` });
    expect((await runCommand("az", ["login", "--identity", "--username", "00000000-0000-4000-8000-000000000003", "-o", "none"], direct)).code).toBe(0);
    expect((await runCommand("az", ["group", "update", "-n", "myResourceGroup", "--tags", "bypass=1", "-o", "none"], direct)).code).toBe(0);
    // The Activity Log as az exports it (read as the Reader, straight from the emulator), then joined.
    expect((await runCommand("az", ["login", "--identity", "--username", "00000000-0000-4000-8000-000000000002", "-o", "none"], direct)).code).toBe(0);
    const exported = await runCommand("az", ["monitor", "activity-log", "list", "--offset", "1h", "-o", "json"], direct);
    expect(exported.code, exported.stderr).toBe(0);
    const file = path.join(daveHome, "activity.json");
    writeFileSync(file, exported.stdout);
    const joined = await as(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "correlate", "--activity-log", file, "--format", "json"]);
    expect(joined.code, joined.stderr).toBe(0);
    const found = JSON.parse(joined.stdout) as { operation: string; status: string; through_azgate: boolean; user?: string; command?: string }[];
    const mine = found.filter((f) => f.user === "dave");
    expect(mine.map((f) => [f.operation, f.status, f.command]).sort()).toEqual(
      [
        [WRITE, "Succeeded", "az group create"],
        [WRITE, "Succeeded", "python3"],
      ].sort(),
    );
    // Every entry is explained but the one made around azgate (a PATCH or PUT on the group, as the same identity).
    expect(found.filter((f) => !f.through_azgate)).toEqual([expect.objectContaining({ operation: WRITE, status: "Succeeded", caller: "10000000-0000-4000-8000-000000000003" })]);
    const text = await as(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "correlate", "--activity-log", file]);
    expect(text.stdout).toMatch(/NO: not made through azgate/);
    expect(text.stdout).toMatch(/entries made through azgate; 1 not/);
  }, 240_000);

  it("an agent that is down: azgate az stops az at the first 503 and says why (az would retry it for seconds); with the agent back, az works", async () => {
    const log = path.join(cluster.proxy.dataDir, "audit", "events.jsonl");
    const denied = () => readFileSync(log, "utf8").split("\n").filter((l) => l.includes('"error_code":"app_unavailable"')).length;
    const before = denied();
    await agent.stop();
    const down = await az(["az", "group", "list", "-o", "none"]);
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('ERROR: no agent serves app "azure-cli" right now; az was stopped rather than left to retry. azgate apps ls shows the apps that are up');
    // At most one refused request, audited: az sent no retry (it would send four more, backing off, without
    // azgate's stop). None when the apps probe stopped az first (it usually does: az takes most of a second to send one).
    expect(denied() - before).toBeLessThanOrEqual(1);

    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    const back = await az(["az", "group", "list", "-o", "none"]);
    expect(back.stderr).toBe("");
    expect(back.code).toBe(0);
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
