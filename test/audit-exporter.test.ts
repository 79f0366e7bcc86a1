/**
 * The audit export (proxy/audit-export): every event reaches each target at
 * least once and in order; a target that is down is tried again after a
 * back-off that doubles, then catches up; a crash between a send and the
 * cursor's move sends that batch again under the same webhook-id; two
 * replicas sharing a backend do not both send, and the second takes over
 * from the cursor when the first stops. Real webhook receivers (HTTP on
 * loopback), checked with the standardwebhooks library.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { JsonLinesAuditSink, type AuditEvent, type AuditSink } from "../src/audit/sink.ts";
import { FileBackend } from "../src/storage/file.ts";
import type { Backend } from "../src/storage/backend.ts";
import { AuditExporter, BACKOFF_MIN_MS, BATCH, type ExportState } from "../src/proxy/audit-export/exporter.ts";
import { exportTarget, type ExportTarget } from "../src/proxy/audit-export/targets.ts";
import { KEYS } from "../src/proxy/keys.ts";
import { configSchema } from "../src/config/schema.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { PostgresBackend } from "../src/storage/postgres.ts";
import { PostgresAuditSink } from "../src/audit/postgres-sink.ts";
import { startPostgres, type TestPostgres } from "./helpers/postgres.ts";
import { tempDir } from "./helpers/azgate.ts";

interface Attempt {
  status: number;
  id: string;
  events: AuditEvent[];
}

/** A webhook receiver that checks each signature and records every attempt; `answers` are the statuses to give next (then 200). */
async function receiver(secret: string) {
  const attempts: Attempt[] = [];
  const answers: number[] = [];
  const wh = new Webhook(secret);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const verified = wh.verify(body, req.headers as Record<string, string>) as { cluster: string; events: AuditEvent[] };
      const status = answers.shift() ?? 200;
      attempts.push({ status, id: String(req.headers["webhook-id"]), events: verified.events });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/audit`,
    attempts,
    answers,
    /** The events taken (answered 2xx), in the order taken, duplicates included. */
    taken: () => attempts.filter((a) => a.status === 200).flatMap((a) => a.events),
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function setup(n: number) {
  const dir = tempDir("azgate-export-");
  const clock = new FakeClock();
  const backend = await FileBackend.open(dir, clock);
  const audit = await JsonLinesAuditSink.open(dir, clock);
  closers.push(() => backend.close(), () => audit.close());
  for (let i = 0; i < n; i++) await audit.emit({ event: "app.request", code: "T2009I", n: i });
  const secret = `whsec_${randomBytes(24).toString("base64")}`;
  const secretFile = path.join(dir, "whsec");
  writeFileSync(secretFile, `${secret}\n`);
  const rx = await receiver(secret);
  closers.push(() => rx.close());
  const target = exportTarget({ type: "webhook", name: "siem", url: rx.url, secret_file: secretFile }, clock, "test-cluster");
  const exporter = (replica: string, t: ExportTarget = target, b: Backend = backend) => new AuditExporter({ backend: b, audit, clock, replica, target: t });
  return { dir, clock, backend, audit, rx, target, exporter };
}

const ns = (events: AuditEvent[]) => events.map((e) => e.n);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
/** The events once each, by uid, in the order first taken. */
const firstSeen = (events: AuditEvent[]) => [...new Map(events.map((e) => [e.uid, e])).values()];

describe("audit export to a webhook", () => {
  it("sends every event once, in order, in signed batches, and keeps its cursor in the backend", async () => {
    const s = await setup(BATCH + 20);
    const x = s.exporter("r1");
    expect(await x.drain()).toBe(BATCH + 20);
    expect(s.rx.attempts.map((a) => a.events.length)).toEqual([BATCH, 20]);
    expect(ns(s.rx.taken())).toEqual(range(BATCH + 20));
    const state = (await s.backend.get<ExportState>(KEYS.auditExport("siem")))!.value;
    expect(state).toMatchObject({ holder: "r1", sent: BATCH + 20 });
    // Nothing new: nothing sent. One more event: that one.
    expect(await x.drain()).toBe(0);
    await s.audit.emit({ event: "user.login", code: "T1000I", n: "late" });
    expect(await x.drain()).toBe(1);
    expect(s.rx.attempts.at(-1)!.events.map((e) => e.n)).toEqual(["late"]);
  });

  it("a target that is down gets the same batch again after 1 s, 2 s, 4 s...; then it catches up, none missing", async () => {
    const s = await setup(BATCH * 2 + 5);
    s.rx.answers.push(503, 503, 503);
    const x = s.exporter("r1").start();
    closers.push(() => x.stop());
    const attemptsAfter = async (ms: number) => {
      await s.clock.tick(ms);
      await x.idle();
      return s.rx.attempts.length;
    };
    expect(await attemptsAfter(0)).toBe(1);
    expect(await attemptsAfter(BACKOFF_MIN_MS - 1)).toBe(1);
    expect(await attemptsAfter(1)).toBe(2);
    expect(await attemptsAfter(2 * BACKOFF_MIN_MS - 1)).toBe(2);
    expect(await attemptsAfter(1)).toBe(3);
    expect(await attemptsAfter(4 * BACKOFF_MIN_MS - 1)).toBe(3);
    expect(await attemptsAfter(1)).toBe(4); // taken: and the next batches follow at once
    for (let i = 0; i < 5 && s.rx.taken().length < BATCH * 2 + 5; i++) await attemptsAfter(0);
    expect(s.rx.attempts.map((a) => a.status)).toEqual([503, 503, 503, 200, 200, 200]);
    // The same first batch each time, under the same webhook-id (a receiver drops a repeat by it).
    expect(new Set(s.rx.attempts.slice(0, 4).map((a) => a.id)).size).toBe(1);
    expect(ns(s.rx.taken())).toEqual(range(BATCH * 2 + 5));
  });

  it("a crash between a send and the cursor's move: the batch comes again after the restart, under the same webhook-id; nothing is missing", async () => {
    const s = await setup(BATCH + 3);
    // The backend write that moves the cursor never happens (the process dies there).
    let cursorWrites = 0;
    const dying: Backend = Object.create(s.backend, {
      compareAndSwap: {
        value: async (key: string, expected: string | null, value: ExportState) => {
          if (expected !== null && value.sent > 0 && ++cursorWrites === 1) throw new Error("killed");
          return s.backend.compareAndSwap(key, expected, value);
        },
      },
    });
    await expect(s.exporter("r1", s.target, dying).drain()).rejects.toThrow("killed");
    expect(s.rx.taken()).toHaveLength(BATCH);
    // The restarted proxy (a new replica id) waits out the dead one's lease, then sends from the cursor.
    const again = s.exporter("r2");
    expect(await again.drain()).toBe(0);
    await s.clock.tick(30_000);
    expect(await again.drain()).toBe(BATCH + 3);
    expect(s.rx.attempts[0].id).toBe(s.rx.attempts[1].id);
    expect(ns(firstSeen(s.rx.taken()))).toEqual(range(BATCH + 3));
  });

  it("two replicas: one sends while its lease lasts; when it stops, the other goes on from the cursor", async () => {
    const s = await setup(BATCH + 10);
    const a = s.exporter("replica-a");
    const b = s.exporter("replica-b");
    expect(await a.step()).toEqual({ sent: BATCH, more: true });
    expect(await b.step()).toBe("held_elsewhere");
    await a.stop();
    expect(await b.drain()).toBe(10);
    expect(await a.step()).toBe("held_elsewhere");
    expect(ns(s.rx.taken())).toEqual(range(BATCH + 10));
  });

  it("sends events of every type, one this azgate does not know included", async () => {
    const s = await setup(1);
    // A line a newer azgate wrote (the sink underneath takes any event; the proxy's registered sink would refuse it).
    await (s.audit as AuditSink).emit({ event: "quantum.entangle", code: "ZZ0001I", n: 1 });
    await s.exporter("r1").drain();
    expect(s.rx.taken().map((e) => e.event)).toEqual(["app.request", "quantum.entangle"]);
  });
});

describe("audit export on PostgreSQL, two replicas", () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startPostgres();
  }, 60_000);
  afterAll(() => server?.stop());

  it("replicas exporting at once, while both write events: each event arrives, in the log's order, and one replica sends at a time", async () => {
    const url = await server.database("auditexport");
    const clock = new FakeClock();
    const backends = [await PostgresBackend.open({ connectionString: url, clock }), await PostgresBackend.open({ connectionString: url, clock })];
    closers.push(...backends.map((b) => () => b.close()));
    const sinks = backends.map((b) => new PostgresAuditSink(b.pool, clock));
    const dir = tempDir("azgate-export-pg-");
    const secret = `whsec_${randomBytes(24).toString("base64")}`;
    writeFileSync(path.join(dir, "whsec"), secret);
    const rx = await receiver(secret);
    closers.push(() => rx.close());
    const target = exportTarget({ type: "webhook", url: rx.url, secret_file: path.join(dir, "whsec") }, clock, "c");
    const exporters = backends.map((backend, i) => new AuditExporter({ backend, audit: sinks[i], clock, replica: `replica-${i}`, target }));
    // Both replicas write, one event after another each (their INSERTs interleave, and may commit out of id order), while both export.
    const writing = Promise.all(sinks.map(async (sink, r) => {
      for (let i = 0; i < 300; i++) await sink.emit({ event: "app.request", code: "T2009I", replica: r, n: i });
    }));
    let done = false;
    void writing.then(() => (done = true));
    const senders = new Set<number>();
    while (!done) {
      const results = await Promise.all(exporters.map((x) => x.step()));
      results.forEach((r, i) => r !== "held_elsewhere" && r.sent > 0 && senders.add(i));
    }
    await writing;
    for (const x of exporters) await x.drain();
    expect(senders.size).toBe(1);
    const taken = firstSeen(rx.taken());
    expect(taken).toHaveLength(600);
    // Each replica's events in the order it wrote them.
    for (const r of [0, 1]) expect(taken.filter((e) => e.replica === r).map((e) => e.n)).toEqual(range(300));
  }, 60_000);
});

describe("audit export configuration", () => {
  it("refuses what it cannot use, naming the target and the key", () => {
    const dir = tempDir("azgate-export-cfg-");
    const clock = new FakeClock();
    expect(() => exportTarget({ type: "webhook", name: "siem", url: "https://x.example", secret_file: path.join(dir, "missing") }, clock, "c")).toThrow(/audit.export siem: secret_file .*missing cannot be read \(ENOENT\)/);
    writeFileSync(path.join(dir, "weak"), "hunter2");
    expect(() => exportTarget({ type: "webhook", url: "https://x.example", secret_file: path.join(dir, "weak") }, clock, "c")).toThrow(/audit.export webhook: secret_file must hold a Standard Webhooks secret/);
    const bad = (audit: unknown) => configSchema.safeParse({ audit }).error?.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    expect(bad({ export: [{ type: "stdout" }, { type: "stdout" }] })).toMatch(/audit.export: two targets have the same name/);
    expect(bad({ export: [{ type: "kafka" }] })).toMatch(/type must be "webhook", "stdout" or "syslog"/);
    expect(bad({ export: [{ type: "syslog", address: "siem:6514", cert_file: "/c.pem" }] })).toMatch(/cert_file and key_file go together/);
    expect(bad({ export: [{ type: "webhook", url: "ftp://x", secret_file: "/s" }] })).toMatch(/must be an http:\/\/ or https:\/\/ URL/);
    expect(bad({ export: [{ type: "stdout", name: "A B" }] })).toMatch(/lowercase letters/);
    expect(configSchema.parse({}).audit.export).toEqual([]);
  });
});
