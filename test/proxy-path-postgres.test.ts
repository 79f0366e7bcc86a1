/**
 * The proxy's request path in process (test/helpers/memory-cluster.ts) on
 * the PostgreSQL backend and audit log: the audit event is written before
 * anything is forwarded there too. The database itself refuses the write (a
 * constraint on the audit table), not a stand-in sink.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { useEmulator } from "./helpers/emulator.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const GROUPS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const ROLE = `kind: role
version: v7
metadata: {name: azure-cli-access}
spec: {allow: {app_labels: {'*': '*'}, azure_identities: ['{{internal.azure_identities}}']}}
`;

describe("the proxy's request path on PostgreSQL, in process", () => {
  let server: TestPostgres;
  let conn: string;
  let c: MemoryCluster;

  beforeAll(async () => {
    server = await startPostgres();
    conn = await server.database("pathpg");
    c = await startMemoryCluster(fx, { storage: { type: "postgres", conn_string: conn } });
    await c.createRoles(ROLE);
    c.agent();
  }, 60_000);
  afterAll(async () => {
    await c?.close();
    await server?.stop();
  });

  it("writes the audit event before forwarding: when PostgreSQL refuses the start event, the request gets 503 audit_unavailable and nothing reaches Azure", async () => {
    const app = await c.appSession("alice", ["azure-cli-access"], READER);
    expect((await app.request(GROUPS)).status).toBe(200);
    const db = new pg.Client({ connectionString: conn });
    await db.connect();
    try {
      await db.query(`ALTER TABLE azgate_audit ADD CONSTRAINT refuse_request_start CHECK (event <> 'app.request.start') NOT VALID`);
      const before = fx.emu.requests.length;
      const res = await app.request(`${GROUPS}&probe=refused`);
      expect(res.status).toBe(503);
      expect(JSON.parse(await res.text()).error.code).toBe("audit_unavailable");
      expect(fx.emu.requests.slice(before).some((r) => r.path.includes("probe=refused"))).toBe(false);
      await db.query(`ALTER TABLE azgate_audit DROP CONSTRAINT refuse_request_start`);
      // Once the log can be written again, requests go through, each audited in PostgreSQL.
      expect((await app.request(`${GROUPS}&probe=after`)).status).toBe(200);
      expect((await c.ctx.audit.search({ event: "app.request.start", user: "alice" })).map((e) => e.query)).toEqual([expect.not.stringContaining("probe"), expect.stringContaining("probe=after")]);
    } finally {
      await db.query(`ALTER TABLE azgate_audit DROP CONSTRAINT IF EXISTS refuse_request_start`);
      await db.end();
    }
  });
});
