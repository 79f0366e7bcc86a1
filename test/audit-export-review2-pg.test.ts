/**
 * Second review, audit export over PostgreSQL (audit/postgres-sink.ts
 * readAfter: the normalisation UPDATE, `held`; cli/commands/audit.ts).
 */
import { systemClock } from "../src/util/clock.ts";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import pg from "pg";
import yargs from "yargs";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PostgresAuditSink } from "../src/audit/postgres-sink.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import { PostgresBackend } from "../src/storage/postgres.ts";
import { AuditExporter, type ExportState } from "../src/proxy/audit-export/exporter.ts";
import { exportPage } from "../src/proxy/audit-export/pages.ts";
import type { ExportTarget } from "../src/proxy/audit-export/targets.ts";
import type { Caller } from "../src/proxy/caller.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";

// `admin audit export`'s own handler, run in this process against exportPage (the API's handler), with no proxy in between.
const api: { ctx?: ProxyContext; log?: string[] } = {};
vi.mock("../src/cli/connect.ts", async () => {
  const { run } = await import("../src/cli/run.ts");
  const { exportPage: page } = await import("../src/proxy/audit-export/pages.ts");
  const client = {
    call: async (_method: string, url: string) => {
      const q = Object.fromEntries(new URL(url, "https://x").searchParams);
      const r = await page(api.ctx!, auditorCaller(), q);
      api.log?.push(`${Math.round(performance.now())} items=${r.items.length} done=${r.done} held=${r.held}`);
      return r;
    },
  };
  return { withAdmin: (fn: (c: unknown, a: unknown) => Promise<void>) => run(async (argv) => fn({ client, close: async () => undefined }, argv)) };
});

function auditorCaller(): Caller {
  return { identity: { kind: "user" }, name: "auditor", user: null, roles: [{ kind: "role", version: "v7", metadata: { name: "auditor" }, spec: { allow: { rules: [{ resources: ["event"], verbs: ["list"] }] } } }], traits: {} } as unknown as Caller;
}

let a: TestPostgres;
beforeAll(async () => {
  a = await startPostgres();
}, 120_000);
afterAll(async () => {
  await a?.stop();
});

function collector(): ExportTarget & { got: AuditEvent[] } {
  const got: AuditEvent[] = [];
  return { name: "siem", got, send: async (events) => void got.push(...events), close: () => undefined };
}

describe("PostgreSQL: rows the normalisation UPDATE moves", () => {
  it("a database copied whole (pg_dump: rows and the export's cursor) to a server whose transaction counter lies between the cursor and the newest rows: the rows past the server's counter are not skipped", async () => {
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: await a.database("copied"), clock });
    const audit = new PostgresAuditSink(backend.pool, clock);
    try {
      // The copy as it arrives: e0 was exported on the old server (the cursor names it), e1 and e2 were not yet.
      await audit.emit({ event: "user.login", code: "T1000I", n: 0 });
      const x = new AuditExporter({ backend, audit, clock, replica: "r1", target: collector() });
      expect(await x.drain()).toBe(1);
      const cursor = (await backend.get<ExportState>(KEYS.auditExport("siem")))!.value.cursor!;
      const [, tx] = /^pg:(\d+):/.exec(cursor)!;
      // e1 carries a txid from the old server below this server's counter, e2 one above it (the old server was busier).
      const { rows: [{ xmax }] } = await backend.pool.query<{ xmax: string }>("SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xmax");
      await backend.pool.query(`INSERT INTO azgate_audit (time, event, data, txid) VALUES (now(), 'user.login', '{"event":"user.login","code":"T1000I","time":"2026-01-01T00:00:00Z","n":1}', $1::text::xid8)`, [String(BigInt(tx) + 1n)]);
      await backend.pool.query(`INSERT INTO azgate_audit (time, event, data, txid) VALUES (now(), 'user.login', '{"event":"user.login","code":"T1000I","time":"2026-01-01T00:00:01Z","n":2}', $1::text::xid8)`, [String(BigInt(xmax) + 1_000_000n)]);
      await audit.emit({ event: "user.login", code: "T1000I", n: 3 });
      const target = collector();
      await new AuditExporter({ backend, audit, clock, replica: "r1", target }).drain();
      expect(target.got.map((e) => e.n)).toEqual([1, 2, 3]);
    } finally {
      await backend.close();
    }
  });

  it("rows restored (pg_restore --data-only, an import of an old server's rows) into a database whose export is running: they are sent, not passed over", async () => {
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: await a.database("import"), clock });
    const audit = new PostgresAuditSink(backend.pool, clock);
    try {
      await audit.emit({ event: "user.login", code: "T1000I", n: 0 });
      const target = collector();
      const x = new AuditExporter({ backend, audit, clock, replica: "r1", target });
      expect(await x.drain()).toBe(1);
      // Two rows of another server: one whose transaction is ahead of this server's, one far behind.
      await backend.pool.query(`INSERT INTO azgate_audit (time, event, data, txid) VALUES (now(), 'user.login', '{"event":"user.login","code":"T1000I","time":"2026-01-01T00:00:00Z","n":1}', '999999999')`);
      await backend.pool.query(`INSERT INTO azgate_audit (time, event, data, txid) VALUES (now(), 'user.login', '{"event":"user.login","code":"T1000I","time":"2026-01-01T00:00:00Z","n":2}', '3')`);
      await audit.emit({ event: "user.login", code: "T1000I", n: 3 });
      await x.drain();
      // Rows restored from another server (a COPY carrying its transaction IDs) are read, not passed over.
      expect(target.got.map((e) => e.n).sort()).toEqual([0, 1, 2, 3]);
    } finally {
      await backend.close();
    }
  });
});

describe("PostgreSQL: `held` under steady short transactions", () => {
  /** Short write transactions, one after another, each open under a second, always one open: a busy server (other apps, or azgate's own concurrent INSERTs). */
  function rolling(conn: string, audit: PostgresAuditSink) {
    let stop = false;
    let ready!: () => void;
    const started = new Promise<void>((r) => (ready = r));
    const run = (async () => {
      const clients = [new pg.Client({ connectionString: conn }), new pg.Client({ connectionString: conn })];
      await Promise.all(clients.map((c) => c.connect()));
      let i = 0;
      let n = 1000;
      await clients[0].query("BEGIN");
      await clients[0].query("SELECT pg_current_xact_id()");
      while (!stop) {
        const next = clients[(i + 1) % 2];
        await next.query("BEGIN");
        await next.query("SELECT pg_current_xact_id()");
        await audit.emit({ event: "user.login", code: "T1000I", n: n++ });
        await clients[i % 2].query("COMMIT");
        i++;
        if (i === 2) ready();
        await new Promise((r) => setTimeout(r, 300));
      }
      await clients[i % 2].query("COMMIT");
      await Promise.all(clients.map((c) => c.end()));
    })();
    return { started, stop: async () => ((stop = true), await run) };
  }

  it("`admin audit export` on a busy server: no transaction is open for more than a second and every page brings new events, the export ends, with every event written before it began", async () => {
    const clock = new FakeClock();
    const conn = await a.database("busy-cli");
    const backend = await PostgresBackend.open({ connectionString: conn, clock });
    const audit = new PostgresAuditSink(backend.pool, systemClock); // events stamped as time goes on, as a proxy's are
    api.ctx = { audit, clock, pool: backend.pool } as unknown as ProxyContext;
    api.log = [];
    for (let n = 0; n < 5; n++) await audit.emit({ event: "user.login", code: "T1000I", n });
    const load = rolling(conn, audit);
    await load.started;
    const out = path.join(mkdtempSync(path.join(tmpdir(), "azgate-attack2-")), "export.jsonl");
    const errors: string[] = [];
    const spy = vi.spyOn(process.stderr, "write").mockImplementation((s) => (errors.push(String(s)), true));
    const exitCode = process.exitCode;
    try {
      const { auditCommands } = await import("../src/cli/commands/audit.ts");
      const started = performance.now();
      await auditCommands(yargs(["export", "--output", out]) as never).parseAsync();
      const seconds = Math.round((performance.now() - started) / 1000);
      const written = readFileSync(out, "utf8").split("\n").filter(Boolean).length;
      // What it should do: end (the log's end as of now), with every event written, and no error.
      expect({ errors: errors.filter((l) => l.startsWith("ERROR")), exitCode: process.exitCode ?? 0 }).toEqual({ errors: [], exitCode: 0 });
      expect({ seconds, written, pagesWithEvents: api.log!.filter((l) => !/items=0 /.test(l)).length }).toMatchObject({ written: expect.toSatisfy((w: number) => w >= 5) });
    } finally {
      spy.mockRestore();
      process.exitCode = exitCode;
      await load.stop();
      await backend.close();
    }
  }, 90_000);

  it("the continuous export on a busy server: it sends batch after batch, and never logs that it is held back", async () => {
    const clock = new FakeClock();
    const conn = await a.database("busy-exporter");
    const backend = await PostgresBackend.open({ connectionString: conn, clock });
    const audit = new PostgresAuditSink(backend.pool, clock);
    const load = rolling(conn, audit);
    await load.started;
    const said: string[] = [];
    const target = collector();
    const x = new AuditExporter({ backend, audit, clock, replica: "r1", target, log: (l) => said.push(l) });
    try {
      let sentEachTime = 0;
      for (let i = 0; i < 8; i++) {
        await new Promise((r) => setTimeout(r, 700));
        const before = target.got.length;
        await x.drain();
        if (target.got.length > before) sentEachTime++;
        clock.advance(10_000); // ten seconds of the exporter's clock between reads
      }
      expect(sentEachTime).toBeGreaterThanOrEqual(6); // it makes progress read after read
      expect(said.filter((l) => /held back/.test(l))).toEqual([]);
    } finally {
      await load.stop();
      await backend.close();
    }
  }, 60_000);
});

describe("PostgreSQL: the normalisation UPDATE's cost", () => {
  it("uses the export index, not a scan of the whole log, on every read", async () => {
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: await a.database("plan"), clock });
    try {
      await backend.pool.query(`INSERT INTO azgate_audit (time, event, data) SELECT now(), 'user.login', '{"event":"user.login","code":"T1000I","time":"2026-01-01T00:00:00Z"}' FROM generate_series(1, 1000)`);
      await backend.pool.query("ANALYZE azgate_audit");
      const { rows } = await backend.pool.query<{ "QUERY PLAN": string }>(`EXPLAIN UPDATE azgate_audit SET txid = NULL WHERE coalesce(txid, '0'::xid8) >= pg_snapshot_xmax(pg_current_snapshot())`);
      expect(rows.map((r) => r["QUERY PLAN"]).join("\n")).toMatch(/Index/);
    } finally {
      await backend.close();
    }
  });
});
