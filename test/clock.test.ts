/**
 * Time is an input (src/util/clock.ts): the one interface, the fake clock the
 * tests move, and a guard that keeps the sources reading the time through it.
 */
import { describe, expect, it } from "vitest";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { systemClock } from "../src/util/clock.ts";
import { FakeClock, settle } from "./helpers/fake-clock.ts";

const SRC = path.resolve(import.meta.dirname, "../src");

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? filesUnder(full) : full.endsWith(".ts") ? [full] : [];
  });
}

/**
 * Where the machine's clock may be read directly: the clock itself, and the
 * emulator, which stands in for Azure and Entra ID (their clocks are not
 * azgate's). The web UI's script runs in the browser.
 */
const MAY_READ_THE_MACHINE = ["util/clock.ts", "emulator/", "proxy/web/assets.ts"];

describe("the clock", () => {
  it("nothing in src reads the machine's time but through a Clock (Date.now(), new Date() with no argument)", () => {
    const readers = filesUnder(SRC)
      .map((f) => path.relative(SRC, f))
      .filter((f) => !MAY_READ_THE_MACHINE.some((allowed) => f.startsWith(allowed)))
      .flatMap((f) =>
        readFileSync(path.join(SRC, f), "utf8")
          .split("\n")
          .flatMap((line, i) => (/\bDate\.now\(\)|new Date\(\)/.test(line.replace(/\/\/.*$/, "")) ? [`${f}:${i + 1}: ${line.trim()}`] : [])),
      );
    expect(readers).toEqual([]);
  });

  it("a fake clock runs each timer at its own time, in order, and only when moved", () => {
    const clock = new FakeClock(1_000_000);
    const seen: string[] = [];
    clock.after(300, () => seen.push(`once@${clock.now()}`));
    const every = clock.every(100, () => seen.push(`every@${clock.now()}`));
    const cancelled = clock.after(50, () => seen.push("never"));
    cancelled.cancel();
    expect(seen).toEqual([]);
    clock.advance(250);
    expect(seen).toEqual(["every@1000100", "every@1000200"]);
    every.cancel();
    clock.advance(1_000);
    expect(seen).toEqual(["every@1000100", "every@1000200", "once@1000300"]);
    expect(clock.now()).toBe(1_001_250);
    expect(clock.waiting).toBe(0);
    expect(() => clock.advance(-1)).toThrow(/forward only/);
  });

  it("the system clock waits past setTimeout's 24.8-day limit instead of firing at once, and cancels", async () => {
    let fired = false;
    const t = systemClock.after(2 ** 31 + 5_000, () => (fired = true)).unref();
    await settle();
    await new Promise((r) => setTimeout(r, 5));
    expect(fired).toBe(false);
    t.cancel();
    expect(Math.abs(systemClock.now() - Date.now())).toBeLessThan(1_000);
  });

  // The CI's time-travel run (scripts/test-all.mjs) sets AZGATE_EXPECT_CLOCK_AFTER to a time 399 days past
  // its own start: a run that did not move the clock (libfaketime not loaded) fails here instead of passing idly.
  it.runIf(!!process.env.AZGATE_EXPECT_CLOCK_AFTER)("in the time-travel run, the clock really is moved", () => {
    expect(Date.now()).toBeGreaterThan(Number(process.env.AZGATE_EXPECT_CLOCK_AFTER));
  });
});
