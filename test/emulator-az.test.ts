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

  it("az login --identity with an object id falls back from client_id, as az does on IMDS", async () => {
    const login = await az("login", "--identity", "--username", "10000000-0000-4000-8000-000000000002", "--output", "json");
    expect(login.code, login.stderr).toBe(0);
    expect(JSON.parse(login.stdout)[0].user.assignedIdentityInfo).toBe("MSIObject-10000000-0000-4000-8000-000000000002");
  });
});
