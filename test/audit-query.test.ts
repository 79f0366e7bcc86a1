/**
 * The audit filters (admin audit ls, the web UI's audit page) mean the same
 * on both sinks: the same events go into the JSON-lines file and into
 * PostgreSQL, and every query must find the same events in both. PostgreSQL
 * does it in SQL; the file sink in matchesQuery.
 */
import { systemClock } from "../src/util/clock.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { JsonLinesAuditSink, type AuditQuery, type AuditSink } from "../src/audit/sink.ts";
import { PostgresAuditSink } from "../src/audit/postgres-sink.ts";
import { PostgresBackend } from "../src/storage/postgres.ts";
import { auditQuery } from "../src/proxy/admin.ts";
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

let server: TestPostgres;
const sinks: [string, AuditSink][] = [];
beforeAll(async () => {
  server = await startPostgres();
  const pg = await PostgresBackend.open({ connectionString: await server.database("auditquery"), clock: systemClock });
  sinks.push(["file", await JsonLinesAuditSink.open(tempDir("azgate-auditq-"), systemClock)], ["postgres", new PostgresAuditSink(pg.pool, systemClock)]);
  for (const [, sink] of sinks) for (const e of EVENTS) await sink.emit(e);
  afterAll(() => pg.close());
}, 60_000);
afterAll(async () => {
  await sinks[0]?.[1].close();
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
