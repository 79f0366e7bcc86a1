import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type RunningEmulator } from "../src/emulator/server.ts";
import { tempDir } from "./helpers/azgate.ts";
import { runCommand } from "./helpers/run.ts";

/**
 * The real Azure CLI (Debian's azure-cli, installed by .ci/run) against the
 * emulator, through the real host names: IMDS by HTTP_PROXY, ARM by
 * HTTPS_PROXY, trusting only the emulator's CA.
 */
const READER_CLIENT = "00000000-0000-4000-8000-000000000002";
let emu: RunningEmulator;
let env: Record<string, string>;

beforeAll(async () => {
  const dir = tempDir("azgate-az-");
  emu = await startEmulator({ dir });
  const proxy = `http://127.0.0.1:${emu.proxyPort}`;
  env = {
    HOME: dir,
    AZURE_CONFIG_DIR: `${dir}/azure`,
    AZURE_CORE_COLLECT_TELEMETRY: "false",
    AZURE_CORE_NO_COLOR: "true",
    HTTPS_PROXY: proxy,
    HTTP_PROXY: proxy,
    REQUESTS_CA_BUNDLE: emu.caFile,
  };
});
afterAll(async () => emu?.close());

const az = (...args: string[]) => runCommand("az", args, env);

describe("emulator with the real az CLI", () => {
  it("az login --identity through the emulated IMDS, then reads as Reader, and a write is refused", async () => {
    const login = await az("login", "--identity", "--username", READER_CLIENT, "--output", "json");
    expect(login.code, login.stderr).toBe(0);
    const accounts = JSON.parse(login.stdout);
    expect(accounts[0]).toMatchObject({ id: "00000000-0000-0000-0000-000000000000", tenantId: emu.world.tenant_id, user: { type: "servicePrincipal" } });

    const groups = await az("group", "list", "--output", "json");
    expect(groups.code, groups.stderr).toBe(0);
    expect(JSON.parse(groups.stdout).map((g: { name: string }) => g.name)).toEqual(["myResourceGroup", "production"]);

    const identity = await az("identity", "show", "-g", "myResourceGroup", "-n", "teleport-reader", "--output", "json");
    expect(identity.code, identity.stderr).toBe(0);
    expect(JSON.parse(identity.stdout)).toMatchObject({ clientId: READER_CLIENT, principalId: "10000000-0000-4000-8000-000000000002", resourceGroup: "myResourceGroup" });

    const rest = await az("rest", "--method", "get", "--url", "https://management.azure.com/subscriptions?api-version=2022-12-01", "--output", "json");
    expect(rest.code, rest.stderr).toBe(0);
    expect(JSON.parse(rest.stdout).value[0].displayName).toBe("Emulated Subscription");

    // Debian's az 2.45 cannot run `az vm list` (its compute SDK lacks the API version); az rest reaches the same URL.
    const vms = await az("rest", "--method", "get", "--url", "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Compute/virtualMachines?api-version=2022-11-01", "--output", "json");
    expect(vms.code, vms.stderr).toBe(0);
    expect(JSON.parse(vms.stdout).value.map((v: { name: string }) => v.name)).toEqual(["web-01", "web-02", "db-01"]);
    const assignments = await az("rest", "--method", "get", "--url", "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01", "--output", "json");
    expect(JSON.parse(assignments.stdout).value.some((a: { properties: { roleDefinitionName: string } }) => a.properties.roleDefinitionName === "Reader")).toBe(true);

    const write = await az("group", "create", "--name", "new-group", "--location", "eastus");
    expect(write.code).toBe(1);
    expect(write.stderr).toContain("(AuthorizationFailed)");
    expect(write.stderr).toContain("Microsoft.Resources/subscriptions/resourceGroups/write");
  });

  it("keeps an Activity Log of writes, allowed and refused, that az monitor activity-log list reads (caller, correlation and client request IDs)", async () => {
    const CONTRIBUTOR = { client: "00000000-0000-4000-8000-000000000003", oid: "10000000-0000-4000-8000-000000000003" };
    expect((await az("login", "--identity", "--username", CONTRIBUTOR.client, "--output", "json")).code).toBe(0);
    const created = await az("group", "create", "--name", "myResourceGroup", "--location", "westeurope", "--output", "json", "--debug");
    expect(created.code, created.stderr).toBe(0);
    // az's own request ID for the command, from its debug log; ARM's correlation ID from the answer.
    const clientRequestId = /'x-ms-client-request-id': '([0-9a-f-]+)'/.exec(created.stderr)?.[1];
    const correlationId = /'x-ms-correlation-request-id': '([0-9a-f-]+)'/i.exec(created.stderr)?.[1];
    expect(clientRequestId).toBeTruthy();
    expect((await az("group", "delete", "--name", "production", "--yes")).code).toBe(1);
    // The log is read at the subscription: the Reader reads it.
    expect((await az("login", "--identity", "--username", READER_CLIENT, "--output", "json")).code).toBe(0);
    const listed = await az("monitor", "activity-log", "list", "--offset", "1h", "--output", "json");
    expect(listed.code, listed.stderr).toBe(0);
    const entries = JSON.parse(listed.stdout) as { caller: string; correlationId: string; operationName: { value: string }; status: { value: string }; httpRequest: { clientRequestId: string }; resourceId: string }[];
    const write = entries.find((e) => e.httpRequest.clientRequestId === clientRequestId);
    expect(write).toMatchObject({ caller: CONTRIBUTOR.oid, operationName: { value: "Microsoft.Resources/subscriptions/resourceGroups/write" }, status: { value: "Succeeded" }, resourceId: expect.stringMatching(/\/resourceGroups\/myResourceGroup$/i) });
    expect(write?.correlationId).toBe(correlationId);
    expect(correlationId).toBeTruthy();
    expect(entries.find((e) => e.operationName.value.endsWith("resourceGroups/delete"))).toMatchObject({ caller: CONTRIBUTOR.oid, status: { value: "Failed" } });
    // Reads are not in it, as in Azure.
    expect(entries.every((e) => !e.operationName.value.endsWith("/read"))).toBe(true);
  });

  it("what Debian's az 2.45 reads with the emulator: az resource list (and -g, --resource-type), storage account and keyvault list, storage container list, show, exists and blob list with --auth-mode login, identity list, group show, account show", async () => {
    expect((await az("login", "--identity", "--username", READER_CLIENT, "-o", "none")).code).toBe(0);
    const names = async (...args: string[]) => {
      const res = await az(...args, "--query", "[].name", "-o", "tsv");
      expect(res.code, `${args.join(" ")}: ${res.stderr}`).toBe(0);
      return res.stdout.trim().split("\n").filter(Boolean);
    };
    expect(await names("resource", "list")).toEqual(["teleport-azure-cli-aks-agent", "teleport-reader", "teleport-contributor", "web-01", "web-02", "db-01", "teleport-demo-kv", "teleportdemostore"]);
    expect(await names("resource", "list", "-g", "production")).toEqual(["db-01"]);
    expect(await names("resource", "list", "--resource-type", "Microsoft.Compute/virtualMachines")).toEqual(["web-01", "web-02", "db-01"]);
    expect(await names("storage", "account", "list")).toEqual(["teleportdemostore"]);
    expect(await names("keyvault", "list")).toEqual(["teleport-demo-kv"]);
    // The data plane with the identity's token (Storage Blob Data Reader on the account).
    const storage = ["--account-name", "teleportdemostore", "--auth-mode", "login"];
    expect(await names("storage", "container", "list", ...storage)).toEqual(["reports"]);
    expect(await names("storage", "blob", "list", "-c", "reports", ...storage)).toEqual([]);
    const exists = await az("storage", "container", "exists", "-n", "reports", ...storage, "--query", "exists", "-o", "tsv");
    expect([exists.code, exists.stdout.trim()], exists.stderr).toEqual([0, "true"]);
    const show = await az("storage", "container", "show", "-n", "reports", ...storage, "--query", "name", "-o", "tsv");
    expect([show.code, show.stdout.trim()], show.stderr).toEqual([0, "reports"]);
    // And the rest the README lists for 2.45.
    expect(await names("identity", "list")).toEqual(["teleport-azure-cli-aks-agent", "teleport-reader", "teleport-contributor"]);
    const group = await az("group", "show", "-n", "production", "--query", "location", "-o", "tsv");
    expect([group.code, group.stdout.trim()], group.stderr).toEqual([0, "westeurope"]);
    const account = await az("account", "show", "--query", "tenantId", "-o", "tsv");
    expect([account.code, account.stdout.trim()], account.stderr).toEqual([0, emu.world.tenant_id]);
  }, 180_000); // fourteen az runs

  it("with --auth-mode login a data role uploads, lists and downloads blobs; a control-plane role alone lists no containers, as Azure answers", async () => {
    const file = `${env.HOME}/hello.txt`;
    await runCommand("/bin/sh", ["-c", `printf 'hello blob' > ${file}`], env);
    const storage = ["--account-name", "teleportdemostore", "--auth-mode", "login"];
    // teleport-contributor: Storage Blob Data Contributor on the account.
    expect((await az("login", "--identity", "--username", "00000000-0000-4000-8000-000000000003", "-o", "none")).code).toBe(0);
    const up = await az("storage", "blob", "upload", "-c", "reports", "-f", file, "-n", "dir/hello.txt", ...storage, "-o", "none");
    expect(up.code, up.stderr).toBe(0);
    const listed = await az("storage", "blob", "list", "-c", "reports", ...storage, "--query", "[].[name, properties.contentLength]", "-o", "tsv");
    expect([listed.code, listed.stdout.trim()], listed.stderr).toEqual([0, "dir/hello.txt\t10"]);
    const down = await az("storage", "blob", "download", "-c", "reports", "-n", "dir/hello.txt", "-f", `${file}.back`, ...storage, "-o", "none");
    expect(down.code, down.stderr).toBe(0);
    expect((await runCommand("cat", [`${file}.back`], env)).stdout).toBe("hello blob");
    // The agent's identity reads identities in ARM and holds no data role: the listing is refused.
    expect((await az("login", "--identity", "--username", "00000000-0000-0000-0000-000000000001", "-o", "none")).code).toBe(0);
    const refused = await az("storage", "container", "list", ...storage);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("You do not have the required permissions needed to perform this operation");
  }, 120_000); // seven az runs

  it("az login --identity with an object id falls back from client_id, as az does on IMDS", async () => {
    const login = await az("login", "--identity", "--username", "10000000-0000-4000-8000-000000000002", "--output", "json");
    expect(login.code, login.stderr).toBe(0);
    expect(JSON.parse(login.stdout)[0].user.assignedIdentityInfo).toBe("MSIObject-10000000-0000-4000-8000-000000000002");
  });
});
