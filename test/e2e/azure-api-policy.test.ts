/**
 * Per-request Azure API policy end to end: the real az through `azgate az`,
 * a real proxy and agent, the emulator as Azure. The identity is Owner of the
 * subscription in this world, so every refusal seen here is azgate's, not
 * Azure's. Each refusal is checked three ways: what az printed, what the
 * audit log recorded, and that nothing reached the emulator.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, SUB, spawnAgent, startCluster, workstationHome, type AgentProcess, type TestCluster, type UserSession } from "../helpers/cluster.ts";
import { cli } from "../helpers/azgate.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const OWNER_MI = IDENTITY("teleport-contributor");
const OWNER_PRINCIPAL = "10000000-0000-4000-8000-000000000003";
const S = `/subscriptions/${SUB}`;
const READER_ROLE_DEF = `${S}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7`;

const role = (name: string, body: string) => `kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec:\n${body}`;
const usesIdentity = `    app_labels: {"*": "*"}\n    azure_identities: ["${OWNER_MI}"]\n`;

const ROLES = [
  // Reads anywhere; creates or updates one resource group only.
  role("rg-writer", `  allow:\n${usesIdentity}    azure_api:\n      - actions: ["*/read"]\n      - actions: ["Microsoft.Resources/subscriptions/resourceGroups/write"]\n        scopes: ["${S}/resourceGroups/app-1"]\n`),
  // Everything the identity can do...
  role("owner-api", `  allow:\n${usesIdentity}    azure_api:\n      - actions: ["*"]\n`),
  // ...except escalation, from another role: deny wins.
  role("no-escalation", `  deny:\n    azure_api:\n      - preset: no-privilege-escalation\n`),
  // A trial policy: refusals are recorded, not enforced.
  role("trial", `  allow:\n${usesIdentity}    azure_api:\n      - actions: ["*/read"]\n  options:\n    azure_api_mode: audit\n`),
  // A Teleport-style role file with no azure_api at all.
  role("plain", `  allow:\n${usesIdentity}`),
];

describe("per-request Azure API policy", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  const homes = new Map<string, string>();
  const sessions = new Map<string, UserSession>();
  const az = async (user: string, args: string[]) => cli(["az", ...args, "--only-show-errors"], { home: homes.get(user)!, env: { HOME: homes.get(user)! } });
  const reached = (from: number, method: string, pathPart: string) => fx.emu.requests.slice(from).filter((r) => r.method === method && r.path.toLowerCase().includes(pathPart.toLowerCase()));
  const audit = async (user: string, event: string) => (await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", `/v1/admin/audit?user=${user}&event=${event}`)).items.filter((e) => e.event === event);

  beforeAll(async () => {
    // In this world the identity may do anything in the subscription.
    fx.emu.world.role_assignments.push({ principal_id: OWNER_PRINCIPAL, role: "Owner", scope: S });
    cluster = await startCluster();
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    for (const text of ROLES) await cluster.admin.call("POST", "/v1/admin/resources", { text });
    const users: [string, string[]][] = [
      ["alice", ["rg-writer"]],
      ["bob", ["owner-api", "no-escalation"]],
      ["carol", ["trial"]],
      ["dave", ["plain"]],
      ["erin", ["owner-api"]],
    ];
    for (const [name, roles] of users) {
      const user = await cluster.user(name, roles);
      sessions.set(name, user);
      const home = await workstationHome(cluster, user);
      homes.set(name, home);
      const login = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-contributor"], { home, env: { HOME: home } });
      expect(login.code, login.stderr).toBe(0);
    }
  }, 180_000);
  afterAll(() => stopAll(agent, cluster));

  it("allows az group create where a rule allows it, refuses it elsewhere with az printing AzgatePolicyDenied; reads stay allowed", async () => {
    const ok = await az("alice", ["group", "create", "-n", "app-1", "-l", "westeurope", "-o", "json"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ name: "app-1", location: "westeurope" });
    expect((await az("alice", ["group", "list", "-o", "none"])).code).toBe(0);

    const from = fx.emu.requests.length;
    const refused = await az("alice", ["group", "create", "-n", "app-2", "-l", "westeurope"]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("(AzgatePolicyDenied)");
    expect(refused.stderr).toContain(`Microsoft.Resources/subscriptions/resourceGroups/write on ${S}/resourcegroups/app-2 is not allowed by any azure_api rule of role rg-writer`);
    expect(reached(from, "PUT", "/resourcegroups/app-2")).toEqual([]);
    expect(fx.emu.world.resource_groups.map((g) => g.name)).not.toContain("app-2");

    const denied = (await audit("alice", "app.request.denied")).find((e) => String(e.path).endsWith("/app-2"));
    expect(denied).toMatchObject({ method: "PUT", error_code: "policy_denied", action: "Microsoft.Resources/subscriptions/resourceGroups/write", scope: `${S}/resourcegroups/app-2`, policy: { decision: "deny" } });
    const allowed = (await audit("alice", "app.request")).find((e) => e.method === "PUT" && String(e.path).endsWith("/app-1"));
    expect(allowed).toMatchObject({ status: 201, action: "Microsoft.Resources/subscriptions/resourceGroups/write", policy: { decision: "allow", role: "rg-writer", rule: 2 } });
  });

  it("preset no-privilege-escalation refuses a role assignment, though the identity is Owner and another role allows every action", async () => {
    const from = fx.emu.requests.length;
    // The request az role assignment create sends (Debian's az 2.45 crashes in that command before sending
    // anything: AttributeError 'RoleAssignmentsOperations' object has no attribute 'config'), sent by az rest.
    const assignment = `${S}/resourceGroups/myResourceGroup/providers/Microsoft.Authorization/roleAssignments/3fa85f64-5717-4562-b3fc-2c963f66afa6`;
    const body = JSON.stringify({ properties: { roleDefinitionId: READER_ROLE_DEF, principalId: "10000000-0000-4000-8000-000000000002", principalType: "ServicePrincipal" } });
    const res = await az("bob", ["rest", "--method", "put", "--url", `https://management.azure.com${assignment}?api-version=2022-04-01`, "--body", body]);
    expect(res.code).not.toBe(0);
    // az rest prints the whole ARM error body.
    expect(res.stderr).toContain(`"code":"AzgatePolicyDenied"`);
    expect(res.stderr).toMatch(/Microsoft\.Authorization\/roleAssignments\/write on \/subscriptions\/\S+\/resourceGroups\/myResourceGroup\/providers\/Microsoft\.Authorization\/roleAssignments\/[0-9a-f-]+ is denied by role no-escalation \(preset no-privilege-escalation\)/);
    expect(reached(from, "PUT", "/roleAssignments/")).toEqual([]);
    const denied = (await audit("bob", "app.request.denied")).find((e) => e.action === "Microsoft.Authorization/roleAssignments/write");
    expect(denied).toMatchObject({ error_code: "policy_denied", policy: { decision: "deny", role: "no-escalation", side: "deny", preset: "no-privilege-escalation" } });
    // The same user's other writes pass: owner-api allows them and nothing denies them.
    const ok = await az("bob", ["group", "create", "-n", "bob-rg", "-l", "westeurope", "-o", "none"]);
    expect(ok.code, ok.stderr).toBe(0);
    // Without the deny role, the same request goes through: the identity's Azure role (Owner) allows it.
    const erin = await az("erin", ["rest", "--method", "put", "--url", `https://management.azure.com${assignment}?api-version=2022-04-01`, "--body", body, "-o", "json"]);
    expect(erin.code, erin.stderr).toBe(0);
    expect(JSON.parse(erin.stdout)).toMatchObject({ properties: { roleDefinitionName: "Reader", principalId: "10000000-0000-4000-8000-000000000002" } });
    expect(reached(from, "PUT", "/roleAssignments/")).toHaveLength(1);
  });

  it("roles explain prints the operation, every rule and the decision the proxy made, for yourself and (admin) for another user", async () => {
    const url = `https://management.azure.com${S}/resourcegroups/app-2?api-version=2022-09-01`;
    const mine = await cli(["roles", "explain", "--azure-identity", "teleport-contributor", "-X", "PUT", "--url", url], { home: homes.get("alice")!, env: { HOME: homes.get("alice")! } });
    expect(mine.code, mine.stderr).toBe(0);
    expect(mine.stdout).toMatch(/^Operation:\s+Microsoft\.Resources\/subscriptions\/resourceGroups\/write \(control plane, exact\)$/m);
    expect(mine.stdout).toMatch(/^Decision:\s+DENY$/m);
    // The same words as the refusal az printed in the first test.
    expect(mine.stdout).toContain(`Why:            Microsoft.Resources/subscriptions/resourceGroups/write on ${S}/resourcegroups/app-2 is not allowed by any azure_api rule of role rg-writer`);
    expect(mine.stdout).toMatch(/^rg-writer\s+allow\s+1\s+no\s/m);
    expect(mine.stdout).toMatch(/^rg-writer\s+allow\s+2\s+no\s/m);

    const assignment = `https://management.azure.com${S}/resourceGroups/myResourceGroup/providers/Microsoft.Authorization/roleAssignments/3fa85f64-5717-4562-b3fc-2c963f66afa6?api-version=2022-04-01`;
    const bob = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "roles", "explain", "--user", "bob", "--azure-identity", OWNER_MI, "-X", "PUT", "--url", assignment, "--format", "json"], { home: homes.get("alice")! });
    expect(bob.code, bob.stderr).toBe(0);
    const out = JSON.parse(bob.stdout);
    expect(out).toMatchObject({ user: "bob", identity: { allowed: true }, operation: { action: "Microsoft.Authorization/roleAssignments/write" }, decision: { outcome: "deny", enforced: true, matched: { role: "no-escalation", preset: "no-privilege-escalation" } } });
    expect(out.rules).toEqual(expect.arrayContaining([expect.objectContaining({ role: "owner-api", side: "allow", matched: true, counts: true }), expect.objectContaining({ role: "no-escalation", side: "deny", matched: true })]));
    // Your own: dave's role has no azure_api.
    const own = await cli(["roles", "explain", "--azure-identity", "teleport-contributor", "--url", url], { home: homes.get("dave")!, env: { HOME: homes.get("dave")! } });
    expect(own.code, own.stderr).toBe(0);
    expect(own.stdout).toMatch(/^Decision:\s+ALLOW \(unrestricted: no azure_api rule applies\)$/m);
    // Another user's access is not yours to read without the right to read users and roles.
    await expect(sessions.get("dave")!.api.call("POST", "/v1/roles/explain", { user: "bob", azure_identity: OWNER_MI, method: "GET", url })).rejects.toMatchObject({ code: "access_denied" });
  });

  it("audit mode forwards what it would deny, and records would_deny", async () => {
    const from = fx.emu.requests.length;
    const res = await az("carol", ["group", "create", "-n", "trial-rg", "-l", "westeurope", "-o", "none"]);
    expect(res.code, res.stderr).toBe(0);
    expect(reached(from, "PUT", "/resourcegroups/trial-rg")).toHaveLength(1);
    const event = (await audit("carol", "app.request")).find((e) => e.method === "PUT" && String(e.path).endsWith("/trial-rg"));
    expect(event).toMatchObject({ status: 201, action: "Microsoft.Resources/subscriptions/resourceGroups/write", policy: { decision: "would_deny", reason: expect.stringContaining("is not allowed by any azure_api rule of role trial") } });
  });

  it("a role file without azure_api behaves exactly as before: unrestricted, with the operation recorded", async () => {
    const res = await az("dave", ["group", "create", "-n", "plain-rg", "-l", "westeurope", "-o", "none"]);
    expect(res.code, res.stderr).toBe(0);
    const event = (await audit("dave", "app.request")).find((e) => e.method === "PUT" && String(e.path).endsWith("/plain-rg"));
    expect(event).toMatchObject({ status: 201, action: "Microsoft.Resources/subscriptions/resourceGroups/write", policy: { decision: "unrestricted" } });
  });

  it("revoking the allow rule acts on the next request", async () => {
    expect((await az("alice", ["group", "show", "-n", "app-1", "-o", "none"])).code).toBe(0);
    await cluster.admin.call("POST", "/v1/admin/resources", { text: role("rg-writer", `  allow:\n${usesIdentity}    azure_api:\n      - actions: ["Microsoft.Resources/subscriptions/resourceGroups/write"]\n        scopes: ["${S}/resourceGroups/app-1"]\n`), force: true });
    const res = await az("alice", ["group", "show", "-n", "app-1"]);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain("Microsoft.Resources/subscriptions/resourceGroups/read");
  });
});
