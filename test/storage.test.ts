import { describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { FileBackend } from "../src/storage/file.ts";
import { acquireDirLock } from "../src/runtime/index.ts";
import { backendSuite } from "./helpers/backend-suite.ts";

const tmp = () => mkdtempSync(path.join(tmpdir(), "azgate-store-"));

backendSuite("file", () => FileBackend.open(tmp()));

describe("file backend on disk", () => {
  it("writes records 0600 and survives reopening", async () => {
    const dir = tmp();
    const b = await FileBackend.open(dir);
    await b.put("users/alice", { a: 1 });
    await b.close();
    const file = path.join(dir, "backend", "users", "alice.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.join(dir, "backend")).mode & 0o777).toBe(0o700);
    expect((await (await FileBackend.open(dir)).get("users/alice"))?.value).toEqual({ a: 1 });
  });

  it("removes temp files left by a write cut off by a crash, keeping the old record", async () => {
    const dir = tmp();
    const b = await FileBackend.open(dir);
    await b.put("users/alice", { v: "old" });
    const tmpFile = path.join(dir, "backend", "users", ".alice.json.tmp-deadbeef");
    writeFileSync(tmpFile, '{"key":"users/alice","value":{"v":"ne'); // torn
    const reopened = await FileBackend.open(dir);
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
    const sink = await JsonLinesAuditSink.open(dir);
    const acked: number[] = [];
    await Promise.all(Array.from({ length: 300 }, (_, i) => sink.emit({ event: "test", code: "T0", n: i }).then(() => acked.push(i))));
    const file = path.join(dir, "audit", "events.jsonl");
    const lines = readFileSync(file, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => l.n).sort((a, b) => a - b)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(acked).toHaveLength(300);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    await sink.close();
  });
});
