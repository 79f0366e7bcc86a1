/**
 * Reading the audit log forward from a cursor (AuditSink.readAfter), what
 * the audit export resumes from: on the file sink across a rotation's
 * rename, a pruned file, a reused inode, a line still being written and a
 * torn one; on PostgreSQL never past an INSERT that has not committed,
 * however the ids fall. Every event of every type is read, once, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { JsonLinesAuditSink } from "../src/audit/sink.ts";
import type { AuditEvent, AuditSink } from "../src/audit/sink.ts";
import { parseCursor } from "../src/audit/file-cursor.ts";
import { PostgresAuditSink } from "../src/audit/postgres-sink.ts";
import { PostgresBackend } from "../src/storage/postgres.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";

const ev = (n: number, event = "app.request"): Omit<AuditEvent, "time"> => ({ event, code: "T2009I", n });

/** Reads everything after `cursor` in pages of `page`; returns the events' n and the last cursor. */
async function readAll(sink: AuditSink, cursor: string | null, page = 3): Promise<{ ns: unknown[]; cursor: string | null }> {
  const ns: unknown[] = [];
  for (;;) {
    const r = await sink.readAfter(cursor, page);
    ns.push(...r.events.map((e) => e.n));
    if (r.events.length === 0) return { ns, cursor };
    cursor = r.cursor;
  }
}

const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

describe("the file sink read from a cursor", () => {
  it("reads every event once, in order, in pages, across day and size rotations; a rename keeps the cursor", async () => {
    const dir = tempDir("azgate-cursor-");
    const clock = new FakeClock();
    const sink = await JsonLinesAuditSink.open(dir, clock, { maxFileBytes: 600 });
    for (let i = 0; i < 10; i++) await sink.emit(ev(i));
    const first = await sink.readAfter(null, 4);
    expect(first.events.map((e) => e.n)).toEqual([0, 1, 2, 3]);
    expect(first.events.every((e) => typeof e.uid === "string" && e.uid.length === 36)).toBe(true);
    // The position is in a file the size limit has renamed since: its inode is found under the new name.
    for (let i = 10; i < 20; i++) await sink.emit(ev(i));
    clock.advance(86_400_000); // and a new day: the current file is renamed by day
    for (let i = 20; i < 25; i++) await sink.emit(ev(i));
    expect(readdirSync(path.join(dir, "audit")).length).toBeGreaterThan(3);
    const rest = await readAll(sink, first.cursor);
    expect(rest.ns).toEqual(range(4, 25));
    // Caught up: nothing more, and the same cursor back.
    expect(await sink.readAfter(rest.cursor, 5)).toEqual({ events: [], cursor: rest.cursor });
    await sink.emit(ev(25));
    expect((await readAll(sink, rest.cursor)).ns).toEqual([25]);
    await sink.close();
  });

  it("a pruned file: reading goes on by time from the next, missing nothing that is kept", async () => {
    const dir = tempDir("azgate-cursor-");
    const clock = new FakeClock();
    const sink = await JsonLinesAuditSink.open(dir, clock);
    for (let i = 0; i < 3; i++) await sink.emit(ev(i));
    const mid = await sink.readAfter(null, 2);
    clock.advance(86_400_000);
    for (let i = 3; i < 6; i++) await sink.emit(ev(i));
    // Retention deletes the day the cursor points into (and event 2, never read, with it): everything before today
    // (UTC), whatever the time of day (an hour back from just after midnight is still in that day).
    const today = new Date(clock.now());
    today.setUTCHours(0, 0, 0, 0);
    await sink.prune(today);
    expect((await readAll(sink, mid.cursor)).ns).toEqual([3, 4, 5]);
    await sink.close();
  });

  it("a cursor whose inode now names another file (deleted, the inode reused) is not trusted: reading goes on by its time", async () => {
    const dir = tempDir("azgate-cursor-");
    const clock = new FakeClock();
    const sink = await JsonLinesAuditSink.open(dir, clock);
    for (let i = 0; i < 4; i++) await sink.emit(ev(i));
    const at = (await sink.readAfter(null, 2)).cursor!;
    const pos = parseCursor(at)!;
    // A cursor that names the current file's inode with an offset and time that are not its line's.
    const forged = `file:${pos.ino}:${pos.offset + 5}:${new Date(clock.now() - 60_000).toISOString()}`;
    expect((await readAll(sink, forged)).ns).toEqual([0, 1, 2, 3]);
    await expect(sink.readAfter("file:1:2:not-a-time", 5)).rejects.toMatchObject({ code: "bad_parameter" });
    await expect(sink.readAfter("pg:1:2", 5)).rejects.toMatchObject({ code: "bad_parameter" });
    await sink.close();
  });

  it("reads only whole lines: one still being written waits; a torn one (a crash) is passed over and the next event starts its own line", async () => {
    const dir = tempDir("azgate-cursor-");
    const clock = new FakeClock();
    let sink = await JsonLinesAuditSink.open(dir, clock);
    await sink.emit(ev(0));
    await sink.close();
    const file = path.join(dir, "audit", "events.jsonl");
    appendFileSync(file, `{"time":"${clock.date().toISOString()}","event":"app.request","n":1`);
    const r = await readAll(sink, null);
    expect(r.ns).toEqual([0]);
    // The proxy restarts after the crash: the torn line is ended, the next event is whole.
    sink = await JsonLinesAuditSink.open(dir, clock);
    await sink.emit(ev(2));
    expect((await readAll(sink, r.cursor)).ns).toEqual([2]);
    await sink.close();
  });

  it("events of every type are read, a type this azgate does not know included (written by a newer one)", async () => {
    const dir = tempDir("azgate-cursor-");
    const clock = new FakeClock();
    const sink = await JsonLinesAuditSink.open(dir, clock);
    await sink.emit(ev(0));
    await sink.close();
    appendFileSync(path.join(dir, "audit", "events.jsonl"), `${JSON.stringify({ time: clock.date().toISOString(), event: "quantum.teleport", code: "ZZ9999I", n: 1 })}\n`);
    const got = await sink.readAfter(null, 10);
    expect(got.events.map((e) => [e.event, e.n])).toEqual([["app.request", 0], ["quantum.teleport", 1]]);
  });

  it("since (a one-off export's start): the first event at or after it, then on by the cursor", async () => {
    const dir = tempDir("azgate-cursor-");
    const clock = new FakeClock();
    const sink = await JsonLinesAuditSink.open(dir, clock);
    await sink.emit(ev(0));
    clock.advance(3 * 86_400_000);
    const since = clock.date();
    await sink.emit(ev(1));
    await sink.emit(ev(2));
    const first = await sink.readAfter(null, 1, { since });
    expect(first.events.map((e) => e.n)).toEqual([1]);
    expect((await readAll(sink, first.cursor)).ns).toEqual([2]);
    await sink.close();
  });
});

describe("the PostgreSQL sink read from a cursor", () => {
  let server: TestPostgres;
  let backend: PostgresBackend;
  let sink: PostgresAuditSink;
  beforeAll(async () => {
    server = await startPostgres();
    backend = await PostgresBackend.open({ connectionString: await server.database("auditcursor"), clock: new FakeClock() });
    sink = new PostgresAuditSink(backend.pool, new FakeClock());
  }, 60_000);
  afterAll(async () => {
    await backend?.close();
    await server?.stop();
  });

  it("never reads past an INSERT that has not committed: an event committed later with a smaller id is not skipped", async () => {
    for (let i = 0; i < 3; i++) await sink.emit(ev(i));
    const start = await sink.readAfter(null, 2);
    expect(start.events.map((e) => e.n)).toEqual([0, 1]);
    // A replica's INSERT takes its id, and has not committed yet...
    const slow = await backend.pool.connect();
    await slow.query("BEGIN");
    await slow.query(`INSERT INTO azgate_audit (time, event, data) VALUES (now(), 'app.request', '{"event":"app.request","code":"T2009I","time":"2026-01-01T00:00:00Z","n":3}')`);
    // ...while another commits after it.
    await sink.emit(ev(4));
    const held = await sink.readAfter(start.cursor, 10);
    expect(held.events.map((e) => e.n)).toEqual([2]);
    await slow.query("COMMIT");
    slow.release();
    expect((await readAll(sink, held.cursor)).ns).toEqual([3, 4]);
    await expect(sink.readAfter("file:1:2:2026-01-01T00:00:00Z", 5)).rejects.toMatchObject({ code: "bad_parameter" });
  });
});
