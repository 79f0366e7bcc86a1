/**
 * A clock the test moves. It starts at the real time of the test's start
 * (never a fixed date: certificates and fixtures made with the real clock
 * stay valid, and a test that says "an hour later" means an hour after now,
 * on any day it runs). `advance` runs the timers that fall due on the way,
 * each at its own time, in order.
 */
import type { Clock, Timer } from "../../src/util/clock.ts";

interface Pending {
  at: number;
  every?: number;
  fn: () => void;
  seq: number;
}

export class FakeClock implements Clock {
  private current: number;
  private readonly pending = new Set<Pending>();
  private seq = 0;

  constructor(start = Date.now()) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  date(): Date {
    return new Date(this.current);
  }

  after(ms: number, fn: () => void): Timer {
    return this.add({ at: this.current + Math.max(0, ms), fn, seq: this.seq++ });
  }

  every(ms: number, fn: () => void): Timer {
    const step = Math.max(1, ms);
    return this.add({ at: this.current + step, every: step, fn, seq: this.seq++ });
  }

  /** Moves the time forward by `ms`, running each timer that falls due at its own time. */
  advance(ms: number): void {
    if (ms < 0) throw new Error("a fake clock moves forward only; make a new one to start earlier");
    const end = this.current + ms;
    for (;;) {
      const next = [...this.pending].filter((p) => p.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!next) break;
      this.current = next.at;
      if (next.every) next.at += next.every;
      else this.pending.delete(next);
      next.fn();
    }
    this.current = end;
  }

  /** Moves the time and then lets the work the timers started settle (promise jobs and I/O callbacks). */
  async tick(ms: number): Promise<void> {
    this.advance(ms);
    await settle();
  }

  /** Timers waiting to run. */
  get waiting(): number {
    return this.pending.size;
  }

  private add(p: Pending): Timer {
    this.pending.add(p);
    const timer: Timer = { cancel: () => void this.pending.delete(p), unref: () => timer };
    return timer;
  }
}

/** Lets promise jobs and I/O callbacks already started run to their next wait. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}
