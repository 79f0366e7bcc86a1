/**
 * The failed-sign-in lockout (auth.lockout): a user's attempts within the
 * window, and the lock they earn. An attempt is counted before it is judged
 * (the password hash and the code take time): attempts sent all at once
 * each take a place in the count first, so no more than `maxAttempts` are
 * ever judged in a window, and the one that fills it locks the user unless
 * it succeeds. A success clears the count. Used by the password sign-in,
 * the passkey sign-in's first half, the password asked again before a first
 * passkey, and a review's authenticator code.
 */
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import { formatDuration } from "../util/duration.ts";
import type { ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";

interface Failures {
  times: number[];
  locked_until?: number;
}

/**
 * Which count: a sign-in's (password, passkey begin, the password again before
 * a first passkey), or a review's authenticator code, counted apart so that
 * wrong passwords anyone can send never block a signed-in reviewer.
 */
export type Kind = "login" | "review";
const keyOf = (kind: Kind, user: string) => (kind === "login" ? KEYS.loginFailures(user) : KEYS.reviewFailures(user));

/** How long the user stays locked from now: 0 when not locked. */
export async function lockedFor(ctx: ProxyContext, user: string, kind: Kind = "login"): Promise<number> {
  const until = (await ctx.backend.get<Failures>(keyOf(kind, user)))?.value.locked_until ?? 0;
  return Math.max(0, until - ctx.clock.now());
}

/** Why a locked-out attempt was refused, for the audit log (never for an anonymous caller). */
export function lockedReason(remainingMs: number): string {
  return `locked for ${formatDuration(remainingMs)} more after too many failed login attempts (azgate admin users reset lifts it)`;
}

/**
 * Counts one attempt of `user`'s now. `locked`: a lock was in force already
 * (refuse without judging). `locking`: this attempt filled the window and
 * set the lock, which stands unless it succeeds (then `failed(...)` is not
 * called and `succeeded` clears it).
 */
export async function countAttempt(ctx: ProxyContext, user: string, kind: Kind = "login"): Promise<{ locked: number; locking: boolean; at: number }> {
  const { maxAttempts, windowMs, lockMs } = ctx.settings.lockout;
  const key = keyOf(kind, user);
  // Until the count lands: a conflict is another attempt counting itself; after many, refuse (fail closed).
  for (let attempt = 0; attempt < 100; attempt++) {
    const now = ctx.clock.now();
    const item = await ctx.backend.get<Failures>(key);
    if (item?.value.locked_until && item.value.locked_until > now) return { locked: item.value.locked_until - now, locking: false, at: now };
    const times = [...(item?.value.times ?? []).filter((t) => t > now - windowMs), now];
    const next: Failures = times.length >= maxAttempts ? { times, locked_until: now + lockMs } : { times };
    try {
      await ctx.backend.compareAndSwap(key, item?.revision ?? null, next, { expires: new Date(next.locked_until ?? now + windowMs) });
      return { locked: 0, locking: !!next.locked_until, at: now };
    } catch (e) {
      if ((e as AzgateError).code !== "compare_failed") throw e;
    }
  }
  throw new AzgateError("rate_limited", "too many sign-in attempts at once for this user; try again in a moment");
}

/** A counted attempt failed: when it was the one that set the lock, the lock is audited. */
export async function failed(ctx: ProxyContext, user: string, counted: { locking: boolean }, remoteAddr?: string): Promise<void> {
  if (!counted.locking) return;
  const until = ctx.clock.now() + ctx.settings.lockout.lockMs;
  await ctx.audit.emit(audit("USER_LOCKED_OUT", { user, until: new Date(until).toISOString(), remote_addr: remoteAddr }));
}

/**
 * A counted attempt that proved one factor of two (a passkey sign-in's
 * password): it neither fails nor succeeds, so it is taken out of the count
 * again, with the lock it set if it set one. Failures before it stay.
 */
export async function uncount(ctx: ProxyContext, user: string, counted: { locking: boolean; at: number }): Promise<void> {
  const key = KEYS.loginFailures(user);
  for (let attempt = 0; attempt < 100; attempt++) {
    const item = await ctx.backend.get<Failures>(key);
    if (!item) return;
    const i = item.value.times.indexOf(counted.at);
    if (i < 0) return;
    const times = item.value.times.filter((_, j) => j !== i);
    const next: Failures = counted.locking ? { times } : { ...item.value, times };
    try {
      await ctx.backend.compareAndSwap(key, item.revision, next, item.expires ? { expires: new Date(item.expires) } : {});
      return;
    } catch (e) {
      if ((e as AzgateError).code !== "compare_failed") throw e;
    }
  }
}

/** Both factors given: the count starts again. */
export async function succeeded(ctx: ProxyContext, user: string, kind: Kind = "login"): Promise<void> {
  await ctx.backend.delete(keyOf(kind, user));
}

/** An administrator's reset, or new credentials from an invite: both counts start again. */
export async function clearAll(ctx: ProxyContext, user: string): Promise<void> {
  await ctx.backend.delete(KEYS.loginFailures(user));
  await ctx.backend.delete(KEYS.reviewFailures(user));
}
