/**
 * Audit by command (issue 32), the pure parts: what a client says about
 * itself is kept only in the shape its sender gives it (az's parameter
 * names, never values; product tokens, never comments), requests fold into
 * commands within one session, and an Activity Log entry is joined to the
 * command that made it only by Azure's IDs and only while it ran.
 */
import { describe, expect, it } from "vitest";
import { commandId, productTokens, readAzureAnswer, readClientInfo } from "../src/azure/client-info.ts";
import { commandsOf } from "../src/audit/commands.ts";
import { correlate, type ActivityEntry } from "../src/audit/correlate.ts";
import { readActivityLog } from "../src/cli/commands/audit.ts";
import type { AuditEvent } from "../src/audit/sink.ts";

const RUN = "0b9c2a4e-5d6f-4a1b-8c3d-2e1f0a9b8c7d";
const AZ_UA = "AZURECLI/2.45.0 (DEB) azsdk-python-azure-mgmt-resource/21.1.0 Python/3.11.2 (Linux-6.1.0-x86_64-with-glibc2.36)";

describe("what the client says about itself", () => {
  it("keeps az's command and flag names, drops anything shaped like a value", () => {
    const info = readClientInfo([
      ["CommandName", "group delete"],
      ["ParameterSetName", "-n --yes --password hunter2 --token=abc123 --x-secret=SECRET -p"],
      ["x-ms-client-request-id", "8d2b5f0e-1a2b-11ef-9f3c-0242ac120002"],
      ["User-Agent", AZ_UA],
    ]);
    expect(info).toEqual({ command: "group delete", parameters: "-n --yes --password -p", client_request_id: "8d2b5f0e-1a2b-11ef-9f3c-0242ac120002", user_agent: "AZURECLI/2.45.0 azsdk-python-azure-mgmt-resource/21.1.0 Python/3.11.2" });
  });

  it("drops a command name, a request ID or a program not in their sender's shape", () => {
    const info = readClientInfo(
      [
        ["CommandName", "group delete --password hunter2=1"],
        ["x-ms-client-request-id", "id with spaces"],
        ["User-Agent", "(only a comment) Bearer=eyJhbGci.x.y"],
      ],
      { id: "not-a-uuid", program: "../bin/sh -c 'curl evil'" },
    );
    expect(info).toEqual({});
    expect(readClientInfo([["CommandName", "x".repeat(200)]])).toEqual({});
    expect(readClientInfo([["CommandName", "group list;completer-request"]])).toEqual({ command: "group list;completer-request" });
  });

  it("the run: the local proxy's stamp wins over the one in the User-Agent (AZURE_HTTP_USER_AGENT), which is read when there is no stamp", () => {
    const other = "11111111-2222-4333-8444-555555555555";
    const ua: [string, string][] = [["user-agent", `azsdk-js-arm-resources/5.2.0 core-rest-pipeline/1.10.0 Node/v20 azgate-invocation/${other}`]];
    expect(readClientInfo(ua, { id: RUN, program: "node" })).toMatchObject({ invocation_id: RUN, program: "node" });
    expect(readClientInfo(ua).invocation_id).toBe(other);
    expect(productTokens("a/1 (b (nested) c) d/2 (unclosed e/3")).toEqual(["a/1", "d/2"]);
  });

  it("a command is az's (its client request ID), else the run, else the request alone", () => {
    expect(commandId({ command: "group list", client_request_id: "c-1", invocation_id: RUN }, "r-1")).toBe("az:c-1");
    expect(commandId({ client_request_id: "c-2", invocation_id: RUN }, "r-2")).toBe(`run:${RUN}`);
    expect(commandId({ client_request_id: "c-3" }, "r-3")).toBe("req:r-3");
  });

  it("Azure's answer: the correlation ID, and a long-running operation's URL with its signature redacted", () => {
    const headers: [string, string][] = [
      ["x-ms-correlation-request-id", "c0ffee00-0000-4000-8000-000000000001"],
      ["azure-asyncoperation", "https://management.azure.com/subscriptions/s/providers/Microsoft.Resources/operations/op1?api-version=2022-09-01&sig=SECRETSIG"],
    ];
    expect(readAzureAnswer(202, headers)).toEqual({ correlation_id: "c0ffee00-0000-4000-8000-000000000001", operation_url: "https://management.azure.com/subscriptions/s/providers/Microsoft.Resources/operations/op1?api-version=2022-09-01&sig=REDACTED" });
    expect(readAzureAnswer(200, headers)).toEqual({ correlation_id: "c0ffee00-0000-4000-8000-000000000001" });
    expect(readAzureAnswer(202, [["location", "http://evil.example/x"]])).toEqual({});
  });
});

const t = (s: number) => new Date(Date.UTC(2026, 0, 5, 10, 0, s)).toISOString();
const ev = (event: string, s: number, fields: Record<string, unknown>): AuditEvent => ({ event, code: "x", time: t(s), user: "alice", app: "azure-cli", azure_identity: "/id/contrib", session_id: "s-1", ...fields });

describe("requests folded into commands", () => {
  const deleteCmd = { command_id: "az:c-del", client: { command: "group delete", parameters: "-n --yes", client_request_id: "c-del" } };
  const events: AuditEvent[] = [
    ev("app.request.start", 0, { request_id: "r-1", command_id: "az:c-upd", client: { command: "group update", client_request_id: "c-upd" }, action: "Microsoft.Resources/subscriptions/resourceGroups/read" }),
    ev("app.request", 1, { request_id: "r-1", command_id: "az:c-upd", status: 200, success: true, action: "Microsoft.Resources/subscriptions/resourceGroups/read", azure_correlation_id: "corr-1" }),
    ev("app.request.start", 2, { request_id: "r-2", command_id: "az:c-upd", client: { command: "group update", client_request_id: "c-upd" }, action: "Microsoft.Resources/subscriptions/resourceGroups/write" }),
    ev("app.request", 3, { request_id: "r-2", command_id: "az:c-upd", status: 200, success: true, action: "Microsoft.Resources/subscriptions/resourceGroups/write", scope: "/subscriptions/s/resourceGroups/rg1", azure_correlation_id: "corr-2", azure_principal_id: "oid-contrib", client: { client_request_id: "c-upd" } }),
    ev("app.request.denied", 4, { request_id: "r-3", ...deleteCmd, action: "Microsoft.Resources/subscriptions/resourceGroups/delete" }),
    // The same command ID in another session (another user) is another command.
    ev("app.request", 5, { request_id: "r-4", ...deleteCmd, user: "mallory", session_id: "s-9", status: 202, success: true }),
    ev("app.request.start", 6, { request_id: "r-5", command_id: `run:${RUN}`, client: { program: "terraform", invocation_id: RUN } }),
    ev("app.request", 7, { request_id: "r-6", command_id: `run:${RUN}`, status: 409, success: false, client: { program: "terraform", invocation_id: RUN } }),
    // An event from before commands were recorded.
    ev("app.request", 8, { request_id: "r-7", status: 200, success: true, method: "GET", host: "management.azure.com", path: "/subscriptions" }),
    ev("access_request.create", 9, { request_id: "not-a-request-event" }),
  ];

  it("one row per command, newest first, with its requests, operations and result", () => {
    const rows = commandsOf([...events].reverse());
    expect(rows.map((r) => [r.user, r.command, r.requests, r.result, r.duration_ms])).toEqual([
      ["alice", null, 1, "allowed", 0],
      ["alice", "terraform", 2, "failed", 1000],
      ["mallory", "az group delete", 1, "allowed", 0],
      ["alice", "az group delete", 1, "denied", 0],
      ["alice", "az group update", 2, "allowed", 3000],
    ]);
    const update = rows[4];
    expect(update).toMatchObject({ id: "az:c-upd", actions: ["Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Resources/subscriptions/resourceGroups/write"] });
    expect(update.azure_calls.map((c) => [c.request_id, c.correlation_id, c.principal_id, c.status])).toEqual([
      ["r-1", "corr-1", null, 200],
      ["r-2", "corr-2", "oid-contrib", 200],
    ]);
    expect(rows[0]).toMatchObject({ id: "req:r-7", first_request: { method: "GET", path: "/subscriptions" } });
    // A request with a start and no end yet is in flight.
    expect(commandsOf([events[0]])[0].result).toBe("in_flight");
  });

  const entry = (fields: Partial<ActivityEntry> & { eventTimestamp: string }): ActivityEntry => ({ operationName: { value: "Microsoft.Resources/subscriptions/resourceGroups/write" }, status: { value: "Succeeded" }, caller: "oid-contrib", ...fields }) as ActivityEntry;

  it("joins an Activity Log entry to the azgate request whose correlation ID it carries, only for the principal azgate's agent sent and while the request ran; the rest are not through azgate", () => {
    const rows = commandsOf(events);
    const WRITE = "Microsoft.Resources/subscriptions/resourceGroups/write";
    const found = correlate(
      [
        entry({ eventTimestamp: t(3), correlationId: "CORR-2", resourceId: "/subscriptions/s/resourcegroups/RG1", operationName: { value: WRITE.toLowerCase() } }),
        // A deployment's resources share its correlation ID: part of the request, said so.
        entry({ eventTimestamp: t(4), correlationId: "corr-2", resourceId: "/subscriptions/s/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/sa1", operationName: { value: "Microsoft.Storage/storageAccounts/write" } }),
        // The ID copied from the Activity Log onto a write by another principal, or a day later: not explained.
        entry({ eventTimestamp: t(3), correlationId: "corr-2", caller: "oid-someone-else" }),
        entry({ eventTimestamp: new Date(Date.parse(t(3)) + 86_400_000).toISOString(), correlationId: "corr-2" }),
        // A client request ID no longer joins anything (a client chooses it).
        entry({ eventTimestamp: t(3), correlationId: "made-around-azgate", httpRequest: { clientRequestId: "c-upd" } } as never),
        // The agent did not say whose token it sent (an older agent): explained, the caller not checked.
        entry({ eventTimestamp: t(1), correlationId: "corr-1", operationName: { value: "Microsoft.Resources/subscriptions/resourceGroups/read" } }),
      ],
      rows,
    );
    expect(found.map((f) => [f.through_azgate, f.request_id, f.same_operation, f.caller_checked, f.user, f.command])).toEqual([
      [true, "r-2", true, true, "alice", "az group update"],
      [true, "r-2", false, true, "alice", "az group update"],
      [false, "r-2", undefined, undefined, undefined, undefined],
      [false, "r-2", undefined, undefined, undefined, undefined],
      [false, undefined, undefined, undefined, undefined, undefined],
      [true, "r-1", false, false, "alice", "az group update"],
    ]);
    expect(found[2].not_explained_because).toMatch(/another principal called \(oid-someone-else, not oid-contrib\)/);
    expect(found[3].not_explained_because).toMatch(/another time/);
  });

  it("reads an export as az prints it or as ARM answers it, and names the entry it cannot read", () => {
    const one = { eventTimestamp: t(1), correlationId: "c" };
    expect(readActivityLog(JSON.stringify([one]))).toHaveLength(1);
    expect(readActivityLog(JSON.stringify({ value: [one, one] }))).toHaveLength(2);
    expect(() => readActivityLog("{not json")).toThrow(/not JSON/);
    expect(() => readActivityLog(JSON.stringify({ items: [] }))).toThrow(/must be a JSON array/);
    expect(() => readActivityLog(JSON.stringify([one, { eventTimestamp: "yesterday" }]))).toThrow(/entry 2 .*eventTimestamp is not a time/);
    expect(() => readActivityLog(JSON.stringify([one, { correlationId: "x" }]))).toThrow(/entry 2 .*eventTimestamp/);
  });
});
