/**
 * The review's attacks on the audit export over the file sink
 * (audit/file-cursor.ts, proxy/audit-export/exporter.ts), kept: a rotation
 * that renames the current file while the exporter lists or opens it (the
 * reader lost the rest of the renamed file), a clock set back (a rotated
 * file named by an earlier day sorted ahead of one already read), long and
 * torn lines, a cursor naming a reused inode. No event may be skipped.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import fs, { appendFileSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { JsonLinesAuditSink } from "../src/audit/sink.ts";
import { FileBackend } from "../src/storage/file.ts";
import { AuditExporter } from "../src/proxy/audit-export/exporter.ts";
import type { Clock, Timer } from "../src/util/clock.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";
import { collector, fileExport, firstSeen } from "./helpers/file-export.ts";

const DAY = 86_400_000;
const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

/** A clock that can be set anywhere, backwards included (an NTP step, a wrong RTC corrected). */
class SettableClock implements Clock {
  constructor(public t: number) {}
  now() {
    return this.t;
  }
  date() {
    return new Date(this.t);
  }
  after(): Timer {
    const t: Timer = { cancel: () => undefined, unref: () => t };
    return t;
  }
  every(): Timer {
    return this.after();
  }
}

describe("file sink: reading while the sink rotates", () => {
  it("a rotation between listing the files and opening events.jsonl: no event is skipped", async () => {
    const clock = new FakeClock(Date.parse("2026-12-07T10:00:00.000Z"));
    const { dir, audit, target, x } = await fileExport("azgate-attack-rot-", clock, closers);

    const emit = async (n: number) => (clock.advance(1), audit.emit({ event: "app.request", code: "T2009I", n }));
    for (let n = 0; n < 2; n++) await emit(n);
    expect(await x.drain()).toBe(2); // cursor: after event 1, in events.jsonl (inode X)
    for (let n = 2; n < 5; n++) await emit(n); // written to X, not yet exported

    // The sink rotates (a new day) right after the reader listed the files and stat'ed events.jsonl,
    // before it opens events.jsonl by name: the name now is the new file.
    const realOpen = fs.promises.open.bind(fs.promises);
    let armed = true;
    vi.spyOn(fs.promises, "open").mockImplementation(async (file: fs.PathLike | fs.promises.FileHandle, flags?: string | number, mode?: fs.Mode) => {
      if (armed && flags === "r" && String(file).endsWith(`${path.sep}events.jsonl`)) {
        armed = false;
        clock.advance(DAY);
        for (let n = 5; n < 15; n++) await emit(n); // a rename of X to events-2026-12-07.jsonl, then a new events.jsonl
      }
      return realOpen(file as fs.PathLike, flags, mode);
    });
    await x.drain();
    vi.restoreAllMocks();
    await x.drain();
    expect(readdirSync(path.join(dir, "audit")).sort()).toEqual(["events-2026-12-07.jsonl", "events.jsonl"]);
    // Every event reached the target (in order, first seen).
    expect(firstSeen(target.got)).toEqual(Array.from({ length: 15 }, (_, i) => i));
  });

  it("stress: an exporter polling while the sink rotates by size every few events misses none (real timing, no mocks)", async () => {
    const clock = new FakeClock();
    const { audit, target, x } = await fileExport("azgate-attack-stress-", clock, closers, { maxFileBytes: 900 });
    const N = 1000;
    let writing = true;
    const writer = (async () => {
      for (let n = 0; n < N; n++) {
        clock.advance(1);
        await audit.emit({ event: "app.request", code: "T2009I", n });
      }
      writing = false;
    })();
    while (writing) await x.drain();
    await writer;
    await x.drain();
    const seen = firstSeen(target.got);
    const missing = Array.from({ length: N }, (_, i) => i).filter((n) => !seen.includes(n));
    expect({ missing: missing.length, first: missing.slice(0, 10) }).toEqual({ missing: 0, first: [] });
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => i));
  }, 120_000);
});

describe("file sink: the clock going backwards", () => {
  it("a clock corrected backwards (a wrong RTC, an NTP step) and a size rotation: no event is skipped", async () => {
    const dir = tempDir("azgate-attack-clock-");
    const clock = new SettableClock(Date.parse("2027-03-10T12:00:00.000Z")); // wrong: months ahead
    const backend = await FileBackend.open(dir, clock);
    const audit = await JsonLinesAuditSink.open(dir, clock, { maxFileBytes: 250 }); // two events a file
    closers.push(() => backend.close(), () => audit.close());
    const target = collector();
    const x = new AuditExporter({ backend, audit, clock, replica: "r1", target });
    const emit = (n: number) => (clock.t += 1, audit.emit({ event: "app.request", code: "T2009I", n }));

    await emit(0);
    await emit(1);
    expect(await x.drain()).toBe(2); // cursor in events.jsonl (C1), after event 1
    clock.t = Date.parse("2026-12-07T12:00:00.000Z"); // the clock is put right
    await emit(2); // C1 full: renamed events-2027-03-10.jsonl; C2 takes event 2
    await emit(3);
    await emit(4); // C2 full: renamed events-2026-12-07.jsonl, which sorts BEFORE C1
    await x.drain();
    // The later file is named after the earlier one's day (rotatedName never sorts a new file first).
    expect(readdirSync(path.join(dir, "audit")).sort()).toEqual(["events-2027-03-10.1.jsonl", "events-2027-03-10.jsonl", "events.jsonl"]);
    expect(firstSeen(target.got)).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("file sink: what held (regression guards)", () => {
  it("an event line of 1 MiB (past the 256 KiB read chunk) is read whole, and the events around it", async () => {
    const dir = tempDir("azgate-attack-big-");
    const clock = new FakeClock();
    const audit = await JsonLinesAuditSink.open(dir, clock);
    closers.push(() => audit.close());
    await audit.emit({ event: "a", code: "T2009I", n: 0 });
    await audit.emit({ event: "a", code: "T2009I", n: 1, big: "x".repeat(1 << 20) });
    await audit.emit({ event: "a", code: "T2009I", n: 2, big: "\u2028\"\\\u0000".repeat(100_000) });
    await audit.emit({ event: "a", code: "T2009I", n: 3 });
    const got: unknown[] = [];
    let cursor: string | null = null;
    for (;;) {
      const r = await audit.readAfter(cursor, 1);
      if (!r.events.length) break;
      got.push(r.events[0].n);
      cursor = r.cursor;
    }
    expect(got).toEqual([0, 1, 2, 3]);
  });

  it("a torn last line (crash mid-append) is passed over and the next events are read; the cursor stays valid", async () => {
    const dir = tempDir("azgate-attack-torn-");
    const clock = new FakeClock();
    let audit = await JsonLinesAuditSink.open(dir, clock);
    await audit.emit({ event: "a", code: "T2009I", n: 0 });
    const r0 = await audit.readAfter(null, 10);
    await audit.close();
    appendFileSync(path.join(dir, "audit", "events.jsonl"), '{"time":"2026-12-07T00:00:00.000Z","event":"torn","n":"torn"'.padEnd(300_000, " "));
    expect((await (await JsonLinesAuditSink.open(dir, clock)).readAfter(r0.cursor, 10)).events).toEqual([]);
    audit = await JsonLinesAuditSink.open(dir, clock);
    closers.push(() => audit.close());
    await audit.emit({ event: "a", code: "T2009I", n: 1 });
    expect((await audit.readAfter(r0.cursor, 10)).events.map((e) => e.n)).toEqual([1]);
  });

  it("a cursor whose inode now names another file (pruned, inode reused, or copied to another disk) falls back to time, not to the offset", async () => {
    const dir = tempDir("azgate-attack-ino-");
    const clock = new FakeClock();
    const audit = await JsonLinesAuditSink.open(dir, clock);
    closers.push(() => audit.close());
    for (let n = 0; n < 5; n++) (clock.advance(1), await audit.emit({ event: "a", code: "T2009I", n }));
    const ino = statSync(path.join(dir, "audit", "events.jsonl")).ino;
    const r = await audit.readAfter(null, 2);
    const [, , off, ...time] = r.cursor!.split(":");
    // The same inode, an offset and a time that do not match a line's end: read by time (event 1 again, same ms, then 2..4).
    expect((await audit.readAfter(`file:${ino}:${Number(off) + 7}:${time.join(":")}`, 10)).events.map((e) => e.n)).toEqual([1, 2, 3, 4]);
    // A cursor crafted by an API caller: bad shapes are refused as bad_parameter, never a crash.
    for (const c of ["file:1:1:x", "pg:1:1", "file:1:1:" + "9".repeat(41)]) {
      await expect(audit.readAfter(c, 10)).rejects.toMatchObject({ code: "bad_parameter" });
    }
  });
});
