/**
 * Second review, audit export over the file sink (audit/file-cursor.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { renameSync } from "node:fs";
import path from "node:path";
import { REOPEN_CHECK_MS } from "../src/audit/sink.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { fileExport } from "./helpers/file-export.ts";

const closers: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c().catch(() => undefined);
});

describe("file sink: an operator's rotation (docs/operations.md: 'An operator may still rotate it by renaming the file')", () => {
  it("logrotate's rename (events.jsonl -> events.jsonl.1) while the export is behind: the events after the cursor in the renamed file still reach the target", async () => {
    const clock = new FakeClock();
    const { dir, audit, target, x } = await fileExport("azgate-attack2-logrotate-", clock, closers);
    const emit = async (n: number) => (clock.advance(1), audit.emit({ event: "app.request", code: "T2009I", n }));
    for (let n = 0; n < 2; n++) await emit(n);
    expect(await x.drain()).toBe(2);
    for (let n = 2; n < 5; n++) await emit(n); // not yet exported (the receiver was down, or the next poll had not come)
    renameSync(path.join(dir, "audit", "events.jsonl"), path.join(dir, "audit", "events.jsonl.1"));
    clock.advance(REOPEN_CHECK_MS);
    for (let n = 5; n < 7; n++) await emit(n);
    await x.drain();
    expect(target.got.map((e) => e.n)).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });
});
