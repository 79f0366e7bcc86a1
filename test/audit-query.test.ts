/**
 * The audit filters (admin audit ls, the web UI's audit page) mean the same
 * on both sinks: the same events go into the JSON-lines file and into
 * PostgreSQL, and every query must find the same events in both. PostgreSQL
 * does it in SQL; the file sink in matchesQuery. The same holds for the
 * command view (`admin audit commands`, the web UI's): each sink's request
 * events folded into commands give identical rows, under every filter.
 */
import { systemClock } from "../src/util/clock.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JsonLinesAuditSink, type AuditQuery, type AuditSink } from "../src/audit/sink.ts";
import { PostgresAuditSink } from "../src/audit/postgres-sink.ts";
import { PostgresBackend } from "../src/storage/postgres.ts";
import { auditQuery } from "../src/proxy/admin.ts";
import { auditCommands, type CommandFilters } from "../src/proxy/audit-commands.ts";
import type { Caller } from "../src/proxy/caller.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import type { Identity } from "../src/pki/identity.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { tempDir } from "./helpers/azgate.ts";

const MI = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities";
const RG = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/app-1";
const EVENTS = [
  { event: "app.request", code: "T2009I", user: "alice", app: "azure-cli", azure_identity: `${MI}/Reader`, method: "GET", status: 200, action: "Microsoft.Resources/subscriptions/resourceGroups/read", scope: RG, policy: { decision: "unrestricted" }, session_id: "s-1", request_id: "r-1", command_id: "az:c-1" },
  { event: "app.request", code: "T2009I", user: "alice", app: "azure-cli", azure_identity: `${MI}/reader`, method: "POST", status: 202, action: "Microsoft.Compute/virtualMachines/restart/action", scope: `${RG}/providers/Microsoft.Compute/virtualMachines/vm1`, policy: { decision: "allow" }, session_id: "s-1", request_id: "r-2", access_request_id: "ar-1", command_id: "az:c-1" },
  { event: "app.request.denied", code: "AZ2004W", user: "bob", app: "azure-cli", azure_identity: `${MI}/contributor`, method: "PUT", action: "Microsoft.Authorization/roleAssignments/write", scope: `${RG}`, policy: { decision: "deny" }, session_id: "s-2", request_id: "r-3" },
  { event: "app.request", code: "T2009E", user: "bob", app: "other_app", azure_identity: `${MI}/contributor`, method: "DELETE", status: 404, action: "Microsoft.Storage/storageAccounts/delete", scope: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/app-10", policy: { decision: "would_deny" }, session_id: "s-3", request_id: "r-4" },
  { event: "access_request.approve", code: "AZ5001I", user: "carol", access_request_id: "ar-1", reason: "ok" },
  { event: "app.request", code: "T2009I", user: "alice", app: "azure-cli", azure_identity: `${MI}/reader`, method: "GET", status: "200", action: "Microsoft_Weird%/read", scope: RG, session_id: "s-1", request_id: "r-5" },
  { event: "app.request", code: "T2009I", user: "bot-deploy", bot: "deploy", ci: { repository: "acme/infra", sha: "abc123", run_id: "77" }, app: "azure-cli", azure_identity: `${MI}/contributor`, method: "GET", session_id: "s-4", request_id: "r-6" },
  { event: "app.request", code: "T2009I", user: "bot-other", bot: "other", ci: { repository: "acme/web", sha: "77", run_id: "5" }, app: "azure-cli", azure_identity: `${MI}/contributor`, method: "GET", session_id: "s-5", request_id: "r-7" },
];

const QUERIES: [string, Record<string, string>, string[]][] = [
  ["user", { user: "alice" }, ["r-1", "r-2", "r-5"]],
  ["an identity in any case", { identity: `${MI}/READER` }, ["r-1", "r-2", "r-5"]],
  ["status", { status: "200" }, ["r-1"]],
  ["status class", { status: "4xx" }, ["r-4"]],
  ["method, any case", { method: "post" }, ["r-2"]],
  ["app", { app: "other_app" }, ["r-4"]],
  ["action with a wildcard, any case", { action: "microsoft.compute/*" }, ["r-2"]],
  ["action: % and _ are literal", { action: "Microsoft_Weird%/*" }, ["r-5"]],
  ["action: _ does not match any character", { action: "Microsoft_Compute/*" }, []],
  ["resource prefix covers what is below it", { resource: `${RG}/providers` }, ["r-2"]],
  ["resource prefix, any case, literal _", { resource: RG.toUpperCase() }, ["r-1", "r-2", "r-3", "r-4", "r-5"]],
  ["decision", { decision: "would_deny" }, ["r-4"]],
  ["session", { session: "s-1" }, ["r-1", "r-2", "r-5"]],
  ["access request", { request: "ar-1" }, ["r-2", "approve"]],
  ["request id", { request_id: "r-3" }, ["r-3"]],
  ["command", { command: "az:c-1" }, ["r-1", "r-2"]],
  ["command: exact, not a prefix", { command: "az:c" }, []],
  ["event and user together", { event: "app.request", user: "bob" }, ["r-3", "r-4"]],
  ["bot", { bot: "deploy" }, ["r-6"]],
  ["a CI fact by name", { ci: "repository=acme/infra" }, ["r-6"]],
  ["a CI fact's value, any fact", { ci: "77" }, ["r-6", "r-7"]],
  ["a CI fact by name is that fact only", { ci: "run_id=77" }, ["r-6"]],
  ["a CI fact: exact, not a prefix", { ci: "acme" }, []],
];

/** Request events of commands (issue 32): az's, an exec run's, one from before commands were recorded, one in flight. */
const DAVE = { user: "dave", app: "azure-cli", azure_identity: `${MI}/contributor`, session_id: "s-9" };
const ERIN = { user: "erin", app: "azure-cli", azure_identity: `${MI}/reader`, session_id: "s-10" };
const GROUP = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-9";
const az = (command: string, parameters: string) => ({ client: { command, parameters, user_agent: "AZURECLI/2.45.0" } });
const exec = { client: { program: "python3", invocation_id: "0b9c2a4e-5d6f-4a1b-8c3d-2e1f0a9b8c7d" } };
const COMMAND_EVENTS = [
  { event: "app.request.start", ...DAVE, command_id: "az:c-10", request_id: "q-1", method: "PUT", host: "management.azure.com", path: GROUP, action: "Microsoft.Resources/subscriptions/resourceGroups/write", ...az("group create", "--name --location") },
  { event: "app.request", ...DAVE, command_id: "az:c-10", request_id: "q-1", method: "PUT", status: 201, success: true, action: "Microsoft.Resources/subscriptions/resourceGroups/write", scope: GROUP, azure_correlation_id: "q-1", ...az("group create", "--name --location") },
  { event: "app.request.start", ...ERIN, command_id: "az:c-20", request_id: "q-2", method: "GET", action: "Microsoft.Resources/subscriptions/resourceGroups/read", ...az("group list", "") },
  { event: "app.request", ...ERIN, command_id: "az:c-20", request_id: "q-2", method: "GET", status: 200, success: true, action: "Microsoft.Resources/subscriptions/resourceGroups/read", ...az("group list", "") },
  { event: "app.request.denied", ...DAVE, command_id: "az:c-11", request_id: "q-3", method: "DELETE", success: false, error_code: "policy_denied", action: "Microsoft.Resources/subscriptions/resourceGroups/delete", scope: GROUP, ...az("group delete", "--name --yes") },
  { event: "app.request.start", ...DAVE, command_id: "exec:e-1", request_id: "q-4", method: "GET", action: "Microsoft.Resources/subscriptions/resourceGroups/read", ...exec },
  { event: "app.request", ...DAVE, command_id: "exec:e-1", request_id: "q-4", method: "GET", status: 200, success: true, action: "Microsoft.Resources/subscriptions/resourceGroups/read", ...exec },
  { event: "app.request.start", ...DAVE, command_id: "exec:e-1", request_id: "q-5", method: "GET", action: "Microsoft.Compute/virtualMachines/read", ...exec },
  { event: "app.request", ...DAVE, command_id: "exec:e-1", request_id: "q-5", method: "GET", status: 404, success: false, action: "Microsoft.Compute/virtualMachines/read", ...exec },
  { event: "app.request", ...ERIN, request_id: "q-6", method: "GET", host: "management.azure.com", path: "/subscriptions", status: 200, success: true },
  { event: "app.request.start", ...DAVE, command_id: "az:c-12", request_id: "q-7", method: "POST", action: "Microsoft.Compute/virtualMachines/restart/action", ...az("vm restart", "--name --resource-group") },
  { event: "access_request.approve", user: "carol", access_request_id: "ar-9", reason: "ok" },
];
/** Newest first: the command's ID, its result and how many requests it made. */
const COMMAND_QUERIES: [string, CommandFilters, string[]][] = [
  ["every command, newest first", {}, ["az:c-12 in_flight 1", "req:q-6 allowed 1", "exec:e-1 failed 2", "az:c-11 denied 1", "az:c-20 allowed 1", "az:c-10 allowed 1"]],
  ["--status allowed", { status: "allowed" }, ["req:q-6 allowed 1", "az:c-20 allowed 1", "az:c-10 allowed 1"]],
  ["--status denied", { status: "denied" }, ["az:c-11 denied 1"]],
  ["--status failed", { status: "failed" }, ["exec:e-1 failed 2"]],
  ["--status in_flight", { status: "in_flight" }, ["az:c-12 in_flight 1"]],
  ["--user with --status", { user: "dave", status: "allowed" }, ["az:c-10 allowed 1"]],
  ["--identity in any case", { identity: `${MI}/READER` }, ["req:q-6 allowed 1", "az:c-20 allowed 1"]],
  ["--session", { session: "s-9", status: "failed" }, ["exec:e-1 failed 2"]],
  ["--limit", { limit: "2" }, ["az:c-12 in_flight 1", "req:q-6 allowed 1"]],
];

let server: TestPostgres;
const sinks: [string, AuditSink][] = [];
/** The command events, in each sink at the same times (one fake clock, a second apart), so whole rows compare. */
const commandSinks: [string, AuditSink][] = [];
beforeAll(async () => {
  server = await startPostgres();
  const pg = await PostgresBackend.open({ connectionString: await server.database("auditquery"), clock: systemClock });
  sinks.push(["file", await JsonLinesAuditSink.open(tempDir("azgate-auditq-"), systemClock)], ["postgres", new PostgresAuditSink(pg.pool, systemClock)]);
  for (const [, sink] of sinks) for (const e of EVENTS) await sink.emit(e);
  afterAll(() => pg.close());
  const clock = new FakeClock();
  const pg2 = await PostgresBackend.open({ connectionString: await server.database("auditcommands"), clock });
  commandSinks.push(["file", await JsonLinesAuditSink.open(tempDir("azgate-auditc-"), clock)], ["postgres", new PostgresAuditSink(pg2.pool, clock)]);
  for (const e of COMMAND_EVENTS) {
    clock.advance(1_000);
    for (const [, sink] of commandSinks) await sink.emit(e);
  }
  afterAll(() => pg2.close());
}, 60_000);
afterAll(async () => {
  await sinks[0]?.[1].close();
  await commandSinks[0]?.[1].close();
  await server?.stop();
});

describe("audit filters, the same on the file and PostgreSQL sinks", () => {
  it.each(QUERIES)("%s", async (_name, filters, expected) => {
    const q: AuditQuery = auditQuery(filters, Date.now());
    for (const [name, sink] of sinks) {
      const found = (await sink.search(q)).map((e) => (e.request_id as string | undefined) ?? e.event.split(".").pop());
      expect(found, name).toEqual(expected);
    }
  });

  it("refuses a filter it cannot read, naming it", () => {
    expect(() => auditQuery({ status: "2xxx" }, Date.now())).toThrow('status: "2xxx" must be an HTTP status (403) or a class (4xx)');
    expect(() => auditQuery({ decision: "maybe" }, Date.now())).toThrow("decision:");
    expect(() => auditQuery({ until: "yesterday" }, Date.now())).toThrow("until:");
    expect(() => auditQuery({ method: "GET;DROP" }, Date.now())).toThrow("method:");
  });
});

describe("admin audit commands, the same rows on the file and PostgreSQL sinks", () => {
  const auditor = { identity: { kind: "user", name: "auditor" } as Identity, name: "auditor", user: null, traits: {}, roles: [{ kind: "role", version: "v7", metadata: { name: "auditor" }, spec: { allow: { rules: [{ resources: ["event"], verbs: ["list"] }] } } }] } as unknown as Caller;
  const commandsOn = (sink: AuditSink, f: CommandFilters) => auditCommands({ audit: sink, clock: systemClock } as unknown as ProxyContext, auditor, f);

  it.each(COMMAND_QUERIES)("%s", async (_name, filters, expected) => {
    const [[, file], [, postgres]] = commandSinks;
    const rows = await commandsOn(file, filters);
    expect(rows.map((r) => `${r.id} ${r.result} ${r.requests}`)).toEqual(expected);
    // Whole rows: times, commands, parameter names, actions, counts, Azure's calls.
    expect(await commandsOn(postgres, filters)).toEqual(rows);
  });

  it("folds what the client said into the row, on both sinks", async () => {
    for (const [name, sink] of commandSinks) {
      const rows = await commandsOn(sink, { user: "dave" });
      expect(rows.find((r) => r.id === "az:c-10"), name).toMatchObject({ command: "az group create", parameters: "--name --location", actions: ["Microsoft.Resources/subscriptions/resourceGroups/write"], result: "allowed", duration_ms: 1_000, azure_calls: [expect.objectContaining({ request_id: "q-1", status: 201 })] });
      expect(rows.find((r) => r.id === "exec:e-1"), name).toMatchObject({ command: "python3", invocation_id: "0b9c2a4e-5d6f-4a1b-8c3d-2e1f0a9b8c7d", requests: 2, failed: 1, actions: ["Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Compute/virtualMachines/read"] });
    }
  });
});
