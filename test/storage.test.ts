import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { FileBackend } from "../src/storage/file.ts";
import { acquireDirLock } from "../src/runtime/index.ts";
import { backendSuite } from "./helpers/backend-suite.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { systemClock } from "../src/util/clock.ts";

const tmp = () => mkdtempSync(path.join(tmpdir(), "azgate-store-"));

backendSuite("file", (clock) => FileBackend.open(tmp(), clock));

describe("file backend on disk", () => {
  it("writes records 0600 and survives reopening", async () => {
    const dir = tmp();
    const b = await FileBackend.open(dir, systemClock);
    await b.put("users/alice", { a: 1 });
    await b.close();
    const file = path.join(dir, "backend", "users", "alice.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, "backend")).mode & 0o777).toBe(0o700);
    expect((await (await FileBackend.open(dir, systemClock)).get("users/alice"))?.value).toEqual({ a: 1 });
  });

  it("removes temp files left by a write cut off by a crash, keeping the old record", async () => {
    const dir = tmp();
    const b = await FileBackend.open(dir, systemClock);
    await b.put("users/alice", { v: "old" });
    const tmpFile = path.join(dir, "backend", "users", ".alice.json.tmp-deadbeef");
    writeFileSync(tmpFile, '{"key":"users/alice","value":{"v":"ne'); // torn
    const reopened = await FileBackend.open(dir, systemClock);
    expect((await reopened.get("users/alice"))?.value).toEqual({ v: "old" });
    expect(readdirSync(path.join(dir, "backend", "users"))).toEqual(["alice.json"]);
  });
});

describe("data dir lock", () => {
  it("refuses a second holder while the first lives, and names it", async () => {
    const dir = tmp();
    const lock = await acquireDirLock(dir, "first");
    const child = spawn(process.execPath, ["-e", "setTimeout(()=>{},60000)"], { stdio: "ignore" });
    // A lock held by a live process that is not us:
    writeFileSync(path.join(dir, "azgate.lock"), JSON.stringify({ pid: child.pid, purpose: "azgate proxy", started: "now" }));
    await expect(acquireDirLock(dir, "second")).rejects.toThrow(/in use by another azgate process \(pid \d+, azgate proxy/);
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    // Its holder is dead now: the lock is taken over.
    const again = await acquireDirLock(dir, "third");
    await again.release();
    await lock.release();
  });
});

describe("audit sink", () => {
  it("acknowledges every concurrent event only once written, with one JSON object per line, 0600", async () => {
    const { JsonLinesAuditSink } = await import("../src/audit/sink.ts");
    const { mkdtempSync, readFileSync, statSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const dir = mkdtempSync(path.join(tmpdir(), "azgate-audit-"));
    const sink = await JsonLinesAuditSink.open(dir, systemClock);
    const acked: number[] = [];
    await Promise.all(Array.from({ length: 300 }, (_, i) => sink.emit({ event: "test", code: "T0", n: i }).then(() => acked.push(i))));
    const file = path.join(dir, "audit", "events.jsonl");
    const lines = readFileSync(file, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.n).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(acked).toHaveLength(300);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await sink.close();
  });

  it("keeps its file open, and follows a rotation: after a rename, a new file within REOPEN_CHECK_MS, nothing lost", async () => {
    const { JsonLinesAuditSink, REOPEN_CHECK_MS } = await import("../src/audit/sink.ts");
    const { mkdtempSync, readFileSync, renameSync, statSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const dir = mkdtempSync(path.join(tmpdir(), "azgate-audit-"));
    const clock = new FakeClock();
    const sink = await JsonLinesAuditSink.open(dir, clock);
    const file = path.join(dir, "audit", "events.jsonl");
    const ns = (f: string) => readFileSync(f, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l).n);
    await sink.emit({ event: "test", code: "T0", n: 1 });
    renameSync(file, `${file}.1`);
    // Within the check interval the open file (now events.jsonl.1) takes the event: durable, in the rotated file.
    await sink.emit({ event: "test", code: "T0", n: 2 });
    clock.advance(REOPEN_CHECK_MS);
    await sink.emit({ event: "test", code: "T0", n: 3 });
    await sink.emit({ event: "test", code: "T0", n: 4 });
    expect(ns(`${file}.1`)).toEqual([1, 2]);
    expect(ns(file)).toEqual([3, 4]);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await sink.close();
  });

  it("writes with O_DSYNC: each write is on disk when it returns (Linux: the open file's flags)", async () => {
    const { JsonLinesAuditSink } = await import("../src/audit/sink.ts");
    const { mkdtempSync, readFileSync, readdirSync, readlinkSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const dir = mkdtempSync(path.join(tmpdir(), "azgate-audit-"));
    const sink = await JsonLinesAuditSink.open(dir, systemClock);
    await sink.emit({ event: "test", code: "T0" });
    const file = path.join(dir, "audit", "events.jsonl");
    const fd = readdirSync("/proc/self/fd").find((n) => { try { return readlinkSync(`/proc/self/fd/${n}`) === file; } catch { return false; } });
    expect(fd).toBeDefined();
    const flags = parseInt(/^flags:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))![1], 8);
    expect(flags & 0o10000 /* O_DSYNC */).toBe(0o10000);
    expect(flags & 0o2000 /* O_APPEND */).toBe(0o2000);
    await sink.close();
  });

  it("emitLater: an event nothing waits on rides the next write, is written alone within AUDIT_LATER_MS, and is never missing from a search or lost at close", async () => {
    const { JsonLinesAuditSink, AUDIT_LATER_MS } = await import("../src/audit/sink.ts");
    const { mkdtempSync, readFileSync, existsSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const dir = mkdtempSync(path.join(tmpdir(), "azgate-audit-"));
    const sink = await JsonLinesAuditSink.open(dir, systemClock);
    const file = path.join(dir, "audit", "events.jsonl");
    const ns = () => (existsSync(file) ? readFileSync(file, "utf8").trimEnd().split("\n").filter(Boolean).map((l) => JSON.parse(l).n) : []);
    // A search with nothing waiting leaves the sink writing as before.
    expect(await sink.search({})).toEqual([]);

    // Waits for company: not written within half the wait, then written with the next emit, in order.
    const end = sink.emitLater({ event: "test.end", code: "T0", n: 1 });
    expect(await Promise.race([end.then(() => "written"), new Promise((r) => setTimeout(() => r("waiting"), AUDIT_LATER_MS / 2))])).toBe("waiting");
    expect(ns()).toEqual([]);
    await sink.emit({ event: "test.start", code: "T0", n: 2 });
    await end;
    expect(ns()).toEqual([1, 2]);

    // Alone, it is written after the wait, and its promise says when.
    await sink.emitLater({ event: "test.end", code: "T0", n: 3 });
    expect(ns()).toEqual([1, 2, 3]);

    // A search writes what waits first.
    void sink.emitLater({ event: "test.end", code: "T0", n: 4 });
    expect((await sink.search({ event: "test.end" })).map((e) => e.n)).toEqual([1, 3, 4]);

    // So does close.
    const last = sink.emitLater({ event: "test.end", code: "T0", n: 5 });
    await sink.close();
    expect(ns()).toEqual([1, 2, 3, 4, 5]);
    await last;
  });

  it("acknowledges each event only once it is in the file; a failed write (a full disk) rejects its callers, and the next batch writes", async () => {
    const { JsonLinesAuditSink } = await import("../src/audit/sink.ts");
    const { mkdtempSync, readFileSync, symlinkSync, unlinkSync, mkdirSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const dir = mkdtempSync(path.join(tmpdir(), "azgate-audit-"));
    const file = path.join(dir, "audit", "events.jsonl");
    const ns = () => readFileSync(file, "utf8").trimEnd().split("\n").filter(Boolean).map((l) => JSON.parse(l).n as number);
    // A full disk: every write fails with ENOSPC.
    mkdirSync(path.dirname(file));
    symlinkSync("/dev/full", file);
    const sink = await JsonLinesAuditSink.open(dir, systemClock);
    await expect(sink.emit({ event: "test", code: "T0", n: 0 })).rejects.toThrow(/ENOSPC|no space/i);
    unlinkSync(file);
    // Room again: concurrent events, each looked for in the file the moment it is acknowledged.
    const inFileAtAck = await Promise.all(Array.from({ length: 40 }, (_, i) => sink.emit({ event: "test", code: "T0", n: i + 1 }).then(() => ns().includes(i + 1))));
    expect(inFileAtAck.every(Boolean)).toBe(true);
    expect(ns().sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    await sink.close();
  });

  it("searches by time, user and event name, keeps the newest matches, and skips a torn last line", async () => {
    const { JsonLinesAuditSink } = await import("../src/audit/sink.ts");
    const { mkdtempSync, appendFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const path = await import("node:path");
    const dir = mkdtempSync(path.join(tmpdir(), "azgate-audit-"));
    const sink = await JsonLinesAuditSink.open(dir, systemClock);
    expect(await sink.search({})).toEqual([]);
    const file = path.join(dir, "audit", "events.jsonl");
    const at = (m: number) => new Date(Date.UTC(2026, 10, 24, 10, m)).toISOString();
    const events = [
      { time: at(0), event: "user.login", code: "T1000I", user: "alice" },
      { time: at(1), event: "app.request", code: "T2009I", user: "alice", n: 1 },
      { time: at(2), event: "app.request.denied", code: "AZ2004W", user: "bob", n: 2 },
      { time: at(3), event: "app.requests", code: "X", user: "alice" },
      { time: at(4), event: "app.request", code: "T2009I", user: "alice", n: 3, access_request_id: "r-1" },
    ];
    appendFileSync(file, events.map((e) => JSON.stringify(e) + "\n").join("") + '{"time":"2026-11-24T10:05:00.000Z","event":"app.requ');
    expect((await sink.search({})).length).toBe(5);
    expect((await sink.search({ user: "alice" })).map((e) => e.event)).toEqual(["user.login", "app.request", "app.requests", "app.request"]);
    expect((await sink.search({ event: "app.request" })).map((e) => e.n)).toEqual([1, 2, 3]);
    expect((await sink.search({ since: new Date(at(2)) })).map((e) => e.time)).toEqual([at(2), at(3), at(4)]);
    expect((await sink.search({ event: "app.request", limit: 2 })).map((e) => e.n)).toEqual([2, 3]);
    expect((await sink.search({ request: "r-1" })).map((e) => e.n)).toEqual([3]);
    expect(await sink.search({ request: "r-2" })).toEqual([]);
    await sink.close();
  });
});
