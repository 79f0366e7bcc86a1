/**
 * The review's attacks on the audit export over PostgreSQL, kept
 * (audit/postgres-sink.ts readAfter, proxy/audit-export/pages.ts): a
 * transaction left open elsewhere on the server (the one-off export said
 * "done" short of the log's end), a cursor out of range, a cursor carried to
 * another server or from a file data dir by a backup or `backend clone`
 * (the export stopped, silently or forever), rows restored from a busier
 * server. Nothing may be skipped; what cannot be read yet is said.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { PostgresAuditSink } from "../src/audit/postgres-sink.ts";
import { JsonLinesAuditSink, type AuditEvent } from "../src/audit/sink.ts";
import { PostgresBackend } from "../src/storage/postgres.ts";
import { FileBackend } from "../src/storage/file.ts";
import { backupOf } from "../src/storage/backup.ts";
import { restoreBackup } from "../src/proxy/restore.ts";
import { AuditExporter, LEASE_MS, type ExportState } from "../src/proxy/audit-export/exporter.ts";
import { exportPage } from "../src/proxy/audit-export/pages.ts";
import type { ExportTarget } from "../src/proxy/audit-export/targets.ts";
import type { Caller } from "../src/proxy/caller.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { AUDIT_EVENTS } from "../src/audit/events.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";

const RESTORED = AUDIT_EVENTS.BACKUP_RESTORED.event;
let a: TestPostgres;
let b: TestPostgres;
beforeAll(async () => {
  [a, b] = await Promise.all([startPostgres(), startPostgres()]);
}, 120_000);
afterAll(async () => {
  await a?.stop();
  await b?.stop();
});

function collector(): ExportTarget & { got: AuditEvent[] } {
  const got: AuditEvent[] = [];
  return { name: "siem", got, send: async (events) => void got.push(...events), close: () => undefined };
}

const auditor = { identity: { kind: "user" }, name: "auditor", user: null, roles: [{ kind: "role", version: "v7", metadata: { name: "auditor" }, spec: { allow: { rules: [{ resources: ["event"], verbs: ["list"] }] } } }], traits: {} } as unknown as Caller;

/** What `admin audit export` does: pages until done (src/cli/commands/audit.ts). */
async function exportAll(ctx: ProxyContext, filters: Record<string, string> = {}): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await exportPage(ctx, auditor, { ...filters, ...(after ? { after } : {}) });
    out.push(...page.items);
    if (page.done || !page.cursor) return out;
    after = page.cursor;
  }
}

describe("PostgreSQL: the one-off export", () => {
  it("a write transaction left open elsewhere on the server (another app's database): `admin audit export` still writes the whole log, or says it could not", async () => {
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: await a.database("oneoff"), clock });
    const audit = new PostgresAuditSink(backend.pool, clock);
    const ctx = { audit, clock } as unknown as ProxyContext;
    await audit.emit({ event: "user.login", code: "T1000I", n: 0 });
    // Some other application on the same server (its own database) holds a write transaction open.
    const other = new pg.Client({ connectionString: await a.database("otherapp") });
    await other.connect();
    await other.query("BEGIN");
    await other.query("SELECT pg_current_xact_id()");
    try {
      for (let n = 1; n <= 5; n++) await audit.emit({ event: "user.login", code: "T1000I", n });
      // The page says what it could read, and that more waits (not "done"): the CLI asks again, then says why it stops.
      const page = await exportPage(ctx, auditor, {});
      expect({ items: page.items.map((e) => e.n), done: page.done, held: page.held }).toEqual({ items: [0], done: false, held: true });
      await other.query("COMMIT");
      const rest = await exportPage(ctx, auditor, { after: page.cursor! });
      expect({ items: rest.items.map((e) => e.n), done: rest.done }).toEqual({ items: [1, 2, 3, 4, 5], done: true });
    } finally {
      await other.query("ROLLBACK").catch(() => undefined);
      await other.end();
      await backend.close();
    }
  });

  it("an `after` cursor out of range (xid8 / bigint overflow) is refused as bad_parameter, not read as the log's end", async () => {
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: await a.database("after"), clock });
    const ctx = { audit: new PostgresAuditSink(backend.pool, clock), clock } as unknown as ProxyContext;
    try {
      await expect(exportPage(ctx, auditor, { after: "pg:99999999999999999999:1" })).rejects.toMatchObject({ code: "bad_parameter" });
      await expect(exportPage(ctx, auditor, { after: "pg:1:9999999999999999999" })).rejects.toMatchObject({ code: "bad_parameter" });
    } finally {
      await backend.close();
    }
  });
});

describe("PostgreSQL: a cursor carried by a backup or a backend clone", () => {
  it("`admin backend clone` (or restore) into another PostgreSQL server: the export sends the new database's events", async () => {
    const clock = new FakeClock();
    // The old cluster has been busy: its transaction ids are ahead of a new server's.
    const oldDb = await a.database("busy");
    const burn = new pg.Pool({ connectionString: oldDb, max: 4 });
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 1000; i++) await burn.query("SELECT pg_current_xact_id()");
    }));
    await burn.end();
    const oldBackend = await PostgresBackend.open({ connectionString: oldDb, clock });
    const oldAudit = new PostgresAuditSink(oldBackend.pool, clock);
    for (let n = 0; n < 3; n++) await oldAudit.emit({ event: "user.login", code: "T1000I", n });
    const t1 = collector();
    expect(await new AuditExporter({ backend: oldBackend, audit: oldAudit, clock, replica: "r1", target: t1 }).drain()).toBe(3);
    const cursor = (await oldBackend.get<ExportState>(KEYS.auditExport("siem")))!.value.cursor;
    // admin backend clone --from postgres://old --to postgres://new: the backend's records, the audit log stays behind.
    const backup = backupOf(await oldBackend.snapshot(), "c", clock.date());
    await oldBackend.close();
    const newDb = await b.database("restored");
    await restoreBackup({ storage: { type: "postgres", conn_string: newDb } as never }, backup, clock, () => undefined);

    const backend = await PostgresBackend.open({ connectionString: newDb, clock });
    const audit = new PostgresAuditSink(backend.pool, clock);
    try {
      for (let n = 10; n < 15; n++) await audit.emit({ event: "user.login", code: "T1000I", n });
      const t2 = collector();
      await new AuditExporter({ backend, audit, clock, replica: "r1", target: t2 }).drain();
      const newTx = (await backend.pool.query<{ tx: string }>("SELECT max(txid)::text AS tx FROM azgate_audit")).rows[0].tx;
      // The cursor stays behind with the old log (backupOf leaves it out): the new log is sent from its beginning.
      expect({ cursor, newTx, sent: t2.got.map((e) => e.n ?? e.event) }).toEqual({ cursor, newTx, sent: [RESTORED, 10, 11, 12, 13, 14] });
    } finally {
      await backend.close();
    }
  }, 120_000);

  it("a file data dir cloned to PostgreSQL: the export does not fail forever on the file cursor it had", async () => {
    const clock = new FakeClock();
    const dir = tempDir("azgate-attack-clone-");
    const fileBackend = await FileBackend.open(dir, clock);
    const fileAudit = await JsonLinesAuditSink.open(dir, clock);
    await fileAudit.emit({ event: "user.login", code: "T1000I", n: 0 });
    expect(await new AuditExporter({ backend: fileBackend, audit: fileAudit, clock, replica: "data-dir", target: collector() }).drain()).toBe(1);
    const backup = backupOf(await fileBackend.snapshot(), "c", clock.date());
    await fileBackend.close();
    await fileAudit.close();
    const db = await b.database("fromfile");
    await restoreBackup({ storage: { type: "postgres", conn_string: db } as never }, backup, clock, () => undefined);

    const backend = await PostgresBackend.open({ connectionString: db, clock });
    const audit = new PostgresAuditSink(backend.pool, clock);
    try {
      await audit.emit({ event: "user.login", code: "T1000I", n: 1 });
      const target = collector();
      clock.advance(LEASE_MS + 1); // the file proxy's lease ("data-dir") came along in the clone: wait it out
      const x = new AuditExporter({ backend, audit, clock, replica: "r1", target });
      const errors: string[] = [];
      for (let i = 0; i < 3; i++) await x.drain().catch((e) => errors.push((e as Error).message));
      expect({ errors, sent: target.got.map((e) => e.n ?? e.event) }).toEqual({ errors: [], sent: [RESTORED, 1] });
    } finally {
      await backend.close();
    }
  }, 60_000);
});

describe("PostgreSQL: cursors and rows of another log", () => {
  it("a cursor of another sink or another server makes the export start again from the beginning, said in the log; rows restored from a busier server are read, not passed over", async () => {
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: await a.database("foreign"), clock });
    const audit = new PostgresAuditSink(backend.pool, clock);
    try {
      await audit.emit({ event: "user.login", code: "T1000I", n: 0 });
      // A row restored (pg_dump) from a server whose transaction IDs are far ahead of this one's.
      await backend.pool.query(`INSERT INTO azgate_audit (time, event, data, txid) VALUES (now(), 'user.login', '{"event":"user.login","code":"T1000I","time":"2026-01-01T00:00:00Z","n":1}', '999999999')`);
      await audit.emit({ event: "user.login", code: "T1000I", n: 2 });
      for (const foreign of ["file:12:34:2026-01-01T00:00:00.000Z", "pg:999999999999:5"]) {
        await backend.put<ExportState>(KEYS.auditExport("siem"), { cursor: foreign, holder: "r1", until: new Date(clock.now() + LEASE_MS).toISOString(), sent: 0 });
        const target = collector();
        const said: string[] = [];
        expect(await new AuditExporter({ backend, audit, clock, replica: "r1", target, log: (l) => said.push(l) }).drain(), foreign).toBe(3);
        expect(target.got.map((e) => e.n).sort()).toEqual([0, 1, 2]);
        expect(said.join("\n")).toMatch(/its cursor is not this log's .*sending the log again from its beginning/);
      }
    } finally {
      await backend.close();
    }
  });
});
