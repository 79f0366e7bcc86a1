/**
 * audit.retention on both sinks (issue 35 part 1): the log is filled over
 * six days of a moved clock, the retention pass runs on its timer, and the
 * events past retention are gone, the newer ones intact, and the deletion is
 * an audit.retention event of its own. The file sink keeps one file per day
 * (events-YYYY-MM-DD.jsonl) and deletes whole days, so an event up to a day
 * older than the cut may stay; PostgreSQL deletes rows, in batches.
 * Searches, the command filter and the oldest event read across the files.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import path from "node:path";
import { audit } from "../src/audit/events.ts";
import { commandsOf } from "../src/audit/commands.ts";
import { PRUNE_BATCH } from "../src/audit/postgres-sink.ts";
import { JsonLinesAuditSink } from "../src/audit/sink.ts";
import { configSchema } from "../src/config/schema.ts";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { RETENTION_EVERY_MS, startRetention } from "../src/proxy/audit-retention.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { PostgresBackend } from "../src/storage/postgres.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { tempDir } from "./helpers/azgate.ts";

const DAY = 86_400_000;
const RETENTION = "3d";

let pgServer: TestPostgres;
beforeAll(async () => {
  pgServer = await startPostgres();
}, 60_000);
afterAll(() => pgServer?.stop());

async function open(kind: "file" | "postgres", clock: FakeClock) {
  const config = configSchema.parse({ audit: { retention: RETENTION }, ...(kind === "postgres" ? { storage: { type: "postgres", conn_string: await pgServer.database(`retention_${crypto.randomUUID().slice(0, 8)}`) } } : {}) });
  const dataDir = tempDir("azgate-retention-");
  const state = await openState(dataDir, { clusterName: "t", settings: settingsFrom(config), purpose: "retention tests", storage: config.storage, audit: config.audit, clock });
  return { ...state, dataDir };
}

/** Five events at the start of each of six days, the clock moved a day after each. */
async function fill(ctx: ProxyContext, clock: FakeClock): Promise<{ name: string; time: number }[]> {
  const written: { name: string; time: number }[] = [];
  for (let day = 0; day < 6; day++) {
    for (let i = 0; i < 5; i++) {
      const name = `d${day}-${i}`;
      written.push({ name, time: clock.now() });
      await ctx.audit.emit(audit("LOCK_DELETED", { user: "admin", name }));
      clock.advance(60_000);
    }
    clock.advance(DAY - 5 * 60_000);
  }
  return written;
}

describe.each([
  ["file", DAY],
  ["postgres", 0],
] as const)("audit retention on the %s sink", (kind, granularity) => {
  it("deletes the events past retention on its timer, keeps the newer ones, and audits the deletion", async () => {
    const clock = new FakeClock();
    const { ctx, close, dataDir } = await open(kind, clock);
    try {
      const written = await fill(ctx, clock);
      const oldestBefore = await ctx.audit.oldest();
      expect(Date.parse(oldestBefore!)).toBe(written[0].time);
      if (kind === "file") expect(readdirSync(path.join(dataDir, "audit")).filter((f) => /^events-\d{4}-\d\d-\d\d\.jsonl$/.test(f)).length).toBeGreaterThanOrEqual(5);

      const retention = startRetention(ctx, ctx.settings.auditRetention!.ms);
      clock.advance(RETENTION_EVERY_MS); // the timer's pass, an hour after the one at start
      await retention.stop();
      const before = clock.now() - 3 * DAY; // the last pass's cut

      const kept = new Set((await ctx.audit.search({ event: "lock.deleted" })).map((e) => e.name));
      for (const w of written) {
        if (w.time >= before) expect(kept.has(w.name), `${w.name} is within retention`).toBe(true);
        if (w.time < before - granularity) expect(kept.has(w.name), `${w.name} is past retention`).toBe(false);
      }
      const gone = written.filter((w) => !kept.has(w.name));
      expect(gone.length).toBeGreaterThanOrEqual(5);

      // Each deletion is audited: the cut, how many went, and how far back the log reaches after it.
      const deletions = await ctx.audit.search({ event: "audit.retention" });
      expect(deletions.length).toBeGreaterThanOrEqual(1);
      expect(deletions.reduce((n, d) => n + (d.events as number), 0)).toBe(gone.length);
      const last = deletions[deletions.length - 1];
      expect(last.code).toBe("AZ0001I");
      if (kind === "postgres") expect(last.before).toBe(new Date(before).toISOString());
      expect(Date.parse(last.oldest as string)).toBe(Math.min(...written.filter((w) => kept.has(w.name)).map((w) => w.time)));
    } finally {
      await close();
    }
  }, 60_000);
});

describe("the file sink's daily files", () => {
  it("a search, its window and the command filter read across days; the current file is renamed by the day of its newest event", async () => {
    const clock = new FakeClock();
    // To 30 s before the next midnight (UTC), so one command spans two files.
    clock.advance(DAY - (clock.now() % DAY) - 30_000);
    const dir = tempDir("azgate-days-");
    const sink = await JsonLinesAuditSink.open(dir, clock);
    const request = (n: number) => ({ event: "app.request", code: "T2009I", user: "alice", app: "azure-cli", azure_identity: "/x", method: "GET", host: "management.azure.com", path: "/", status: 200, success: true, session_id: "s-1", request_id: `r-${n}`, command_id: "az:c-1" });
    await sink.emit(request(1));
    const t1 = clock.now();
    clock.advance(60_000); // past midnight
    await sink.emit(request(2));
    const files = readdirSync(path.join(dir, "audit")).sort();
    expect(files).toEqual([`events-${new Date(t1).toISOString().slice(0, 10)}.jsonl`, "events.jsonl"]);

    const both = await sink.search({ command: "az:c-1" });
    expect(both.map((e) => e.request_id)).toEqual(["r-1", "r-2"]);
    expect(commandsOf(both)).toMatchObject([{ id: "az:c-1", requests: 2 }]);
    expect((await sink.search({ since: new Date(t1 + 1) })).map((e) => e.request_id)).toEqual(["r-2"]);
    expect((await sink.search({ until: new Date(t1 + 1) })).map((e) => e.request_id)).toEqual(["r-1"]);
    expect((await sink.search({ limit: 1 })).map((e) => e.request_id)).toEqual(["r-2"]);
    expect(await sink.oldest()).toBe(new Date(t1).toISOString());
    await sink.close();
  });

  it("a file past its size limit is renamed as another part of the same day, in order", async () => {
    const clock = new FakeClock();
    const dir = tempDir("azgate-parts-");
    const sink = await JsonLinesAuditSink.open(dir, clock, { maxFileBytes: 300 });
    for (let n = 0; n < 6; n++) await sink.emit({ event: "test", code: "T0", n, pad: "x".repeat(100) });
    const files = readdirSync(path.join(dir, "audit"));
    expect(files.length).toBeGreaterThan(2);
    expect((await sink.search({})).map((e) => e.n)).toEqual([0, 1, 2, 3, 4, 5]);
    await sink.close();
  });
});

describe("PostgreSQL retention in batches", () => {
  it("deletes more rows than one batch holds, in several statements, and keeps the rest", async () => {
    const url = await pgServer.database("retention_batches");
    const clock = new FakeClock();
    const backend = await PostgresBackend.open({ connectionString: url, clock });
    try {
      const { PostgresAuditSink } = await import("../src/audit/postgres-sink.ts");
      const sink = new PostgresAuditSink(backend.pool, clock);
      const old = 2 * PRUNE_BATCH + 17;
      await backend.pool.query(`INSERT INTO azgate_audit (time, event, data) SELECT $1, 'test.old', '{}'::jsonb FROM generate_series(1, ${old})`, [new Date(clock.now() - 10 * DAY)]);
      await backend.pool.query(`INSERT INTO azgate_audit (time, event, data) SELECT $1, 'test.new', '{}'::jsonb FROM generate_series(1, 5)`, [clock.date()]);
      const deletes: string[] = [];
      const query = backend.pool.query.bind(backend.pool);
      (backend.pool as unknown as { query: unknown }).query = (text: string, ...rest: unknown[]) => (String(text).startsWith("DELETE") && deletes.push(text), (query as (...a: unknown[]) => unknown)(text, ...rest));
      const pruned = await sink.prune(new Date(clock.now() - 5 * DAY));
      (backend.pool as unknown as { query: unknown }).query = query;
      expect(pruned.events).toBe(old);
      expect(deletes.length).toBe(3);
      const { rows } = await backend.pool.query<{ event: string; n: string }>(`SELECT event, count(*) AS n FROM azgate_audit GROUP BY event`);
      expect(rows).toEqual([{ event: "test.new", n: "5" }]);
    } finally {
      await backend.close();
    }
  }, 60_000);
});
