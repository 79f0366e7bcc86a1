/**
 * The one way azgate reads the time. Everything that decides by the time
 * (certificates, proofs and the replay cache, sessions, locks, grants, review
 * deadlines, schedules, the outbox's back-off and expiry, rate limits, the
 * backends' expiry, sweepers) takes a Clock. The real one (`systemClock`) is
 * chosen once, where a mode starts, and passed down; tests pass a fake one
 * that they move (test/helpers/fake-clock.ts), so a test that states a date
 * gets the same answer on any day it is run.
 *
 * Not here, on purpose: watchdogs on I/O (a connect or a control call that
 * takes too long) and elapsed times that only measure (metrics, an audit
 * event's duration_ms) use the runtime's own timers and performance.now();
 * they decide nothing about access.
 */
export interface Timer {
  cancel(): void;
  /** Lets the process exit while this timer waits (a sweeper must not keep a CLI alive). */
  unref(): Timer;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** `now()` as a Date. */
  date(): Date;
  /** Runs `fn` once, `ms` from now. */
  after(ms: number, fn: () => void): Timer;
  /** Runs `fn` every `ms` until cancelled. */
  every(ms: number, fn: () => void): Timer;
}

/** setTimeout's longest delay; longer waits are chained. */
const MAX_DELAY = 2 ** 31 - 1;

function realTimer(handle: ReturnType<typeof setTimeout>, clear: (h: ReturnType<typeof setTimeout>) => void): Timer {
  const timer: Timer = {
    cancel: () => clear(handle),
    unref: () => {
      (handle as { unref?: () => void }).unref?.();
      return timer;
    },
  };
  return timer;
}

/** The machine's clock and the runtime's timers: the one real clock, used where a mode starts. */
export const systemClock: Clock = {
  now: () => Date.now(),
  date: () => new Date(),
  after(ms, fn) {
    // A wait past setTimeout's limit (a certificate's end weeks away) is chained instead of firing at once.
    if (ms > MAX_DELAY) {
      let inner: Timer | undefined;
      let unrefd = false;
      const outer = realTimer(
        setTimeout(() => {
          inner = systemClock.after(ms - MAX_DELAY, fn);
          if (unrefd) inner.unref();
        }, MAX_DELAY),
        clearTimeout,
      );
      const chained: Timer = {
        cancel: () => (outer.cancel(), inner?.cancel()),
        unref: () => ((unrefd = true), outer.unref(), inner?.unref(), chained),
      };
      return chained;
    }
    return realTimer(setTimeout(fn, Math.max(0, ms)), clearTimeout);
  },
  every: (ms, fn) => realTimer(setInterval(fn, Math.max(1, Math.min(ms, MAX_DELAY))), clearInterval),
};
