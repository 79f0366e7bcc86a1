/**
 * Captures the requests the real az sends for a list of commands, through
 * azgate against the emulator, into test/fixtures/az-requests.json (the
 * mapper's golden file, test/azure-operation.test.ts). Run it again when the
 * command list or az changes: `npx tsx scripts/capture-az-requests.ts`.
 *
 * Each request is written with the action the mapper gives it now; whoever
 * runs this reviews the diff against Azure's operation names before
 * committing it. Commands that the emulator answers with an error still
 * count: what matters is what az sent.
 */
import path from "node:path";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { startEmulator } from "../src/emulator/server.ts";
import { mapRequest } from "../src/azure/operation.ts";
import { cli, parseExports, startCli, tempDir } from "../test/helpers/azgate.ts";
import { saveProfile } from "../src/client/profile.ts";
import { IDENTITY, SUB, spawnAgent, startCluster } from "../test/helpers/cluster.ts";
import { AGENT_SA, type EmulatorFixture } from "../test/helpers/emulator.ts";

const RG = "myResourceGroup";
const RG_ID = `/subscriptions/${SUB}/resourceGroups/${RG}`;
const VM_ID = `${RG_ID}/providers/Microsoft.Compute/virtualMachines/web-01`;
const TEMPLATE = tempDir("azgate-capture-template-");
writeFileSync(path.join(TEMPLATE, "t.json"), JSON.stringify({ $schema: "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#", contentVersion: "1.0.0.0", resources: [] }));

const COMMANDS: string[][] = [
  ["group", "list"],
  ["group", "show", "-n", RG],
  ["group", "exists", "-n", RG],
  ["group", "create", "-n", "capture-rg", "-l", "westeurope"],
  ["group", "update", "-n", "capture-rg", "--tags", "team=ops"],
  ["group", "delete", "-n", "capture-rg", "--yes", "--no-wait"],
  ["identity", "list"],
  ["identity", "list", "-g", RG],
  ["identity", "show", "-g", RG, "-n", "teleport-reader"],
  ["identity", "federated-credential", "list", "-g", RG, "--identity-name", "teleport-reader"],
  ["identity", "federated-credential", "create", "-g", RG, "--identity-name", "teleport-reader", "-n", "capture-fic", "--issuer", "https://issuer.example", "--subject", "system:serviceaccount:ns:sa", "--audiences", "api://AzureADTokenExchange"],
  ["resource", "list"],
  ["resource", "list", "-g", RG],
  ["resource", "show", "--ids", VM_ID],
  ["account", "list-locations"],
  ["provider", "list"],
  ["provider", "show", "-n", "Microsoft.Compute"],
  ["provider", "register", "-n", "Microsoft.Compute"],
  ["role", "definition", "list", "--name", "Reader"],
  ["role", "assignment", "list", "--scope", RG_ID],
  ["role", "assignment", "create", "--assignee-object-id", "10000000-0000-4000-8000-000000000002", "--assignee-principal-type", "ServicePrincipal", "--role", `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7`, "--scope", RG_ID],
  ["lock", "list"],
  ["tag", "list"],
  ["storage", "account", "list", "-g", RG],
  ["storage", "account", "keys", "list", "-g", RG, "-n", "teleportdemostore"],
  ["storage", "container", "list", "--account-name", "teleportdemostore", "--auth-mode", "login"],
  ["storage", "blob", "list", "--account-name", "teleportdemostore", "-c", "reports", "--auth-mode", "login"],
  ["keyvault", "list"],
  ["keyvault", "secret", "list", "--vault-name", "teleport-demo-kv"],
  ["keyvault", "secret", "show", "--vault-name", "teleport-demo-kv", "-n", "db-password"],
  ["keyvault", "secret", "set", "--vault-name", "teleport-demo-kv", "-n", "capture", "--value", "x"],
  ["network", "vnet", "list", "-g", RG],
  ["network", "nsg", "list", "-g", RG],
  ["aks", "list", "-g", RG],
  ["webapp", "list", "-g", RG],
  ["acr", "list", "-g", RG],
  ["deployment", "group", "list", "-g", RG],
  ["deployment", "group", "create", "-g", RG, "-n", "capture", "--template-file", path.join(TEMPLATE, "t.json"), "--no-wait"],
  ["policy", "assignment", "list"],
  ["monitor", "diagnostic-settings", "list", "--resource", VM_ID],
];

const dir = tempDir("azgate-capture-");
const emu = await startEmulator({ dir });
const tokenFile = path.join(dir, "sa-token");
const projection = await emu.issuer.project(tokenFile, AGENT_SA);
const cluster = await startCluster();
const agent = spawnAgent({ proxy: cluster.proxy, fx: { emu, dir, tokenFile } as EmulatorFixture, token: await cluster.joinToken() });
await agent.waitFor(/tunnel to .* is up/);
await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: capture}\nspec: {allow: {app_labels: {"*": "*"}, azure_identities: ["${IDENTITY("teleport-contributor")}"]}}\n` });
const user = await cluster.user("capture", ["capture"]);
const home = tempDir("azgate-capture-home-");
await saveProfile({ proxy: cluster.proxy.addr, user: user.name, cluster: "e2e", ca_pem: cluster.target.ca_pem }, user.keyPem, user.certPem, home);
const env = { HOME: home, AZURE_CORE_COLLECT_TELEMETRY: "false" };
const login = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-contributor"], { home, env });
if (login.code !== 0) throw new Error(`apps login: ${login.stderr}`);
const proxy = await startCli(["proxy", "azure", "--format", "unix"], { home, env, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
const exported = parseExports(proxy.output());

const out: { command: string; requests: { method: string; host: string; path: string; query: string; action: string | null }[] }[] = [];
try {
  for (const args of COMMANDS) {
    emu.requests.splice(0);
    const code = await new Promise<number | null>((resolve) => spawn("az", [...args, "-o", "none", "--only-show-errors"], { env: { PATH: process.env.PATH!, ...env, ...exported }, stdio: "ignore" }).on("exit", resolve));
    const requests = emu.requests
      .filter((r) => !r.host.startsWith("login."))
      .map((r) => {
        const u = new URL(`https://${r.host}${r.path}`);
        // The query without api-version and paging (they do not change the operation).
        const query = [...u.searchParams].filter(([k]) => !["api-version", "$skiptoken"].includes(k)).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
        return { method: r.method, host: r.host, path: u.pathname, query, action: mapRequest({ method: r.method, host: r.host, path: u.pathname, query: u.searchParams }).action };
      });
    console.log(`az ${args.join(" ")} (exit ${code}): ${requests.map((r) => `${r.method} ${r.path} -> ${r.action}`).join("; ") || "NO REQUEST"}`);
    if (requests.length > 0) out.push({ command: args.join(" ").replace(TEMPLATE, "TEMPLATE_DIR"), requests });
  }
} finally {
  await proxy.stop();
  await agent.stop();
  await cluster.stop();
  projection.stop();
  await emu.close();
}
writeFileSync(path.join(import.meta.dirname, "../test/fixtures/az-requests.json"), JSON.stringify(out, null, 1) + "\n");
console.log(`${out.length} commands written to test/fixtures/az-requests.json`);
