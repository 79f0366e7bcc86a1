import type { Context } from "hono";
import { AzgateError } from "../errors/index.ts";
import { socketAddress } from "./client-address.ts";
import type { Clock } from "../util/clock.ts";

/**
 * The caller's address, as client-address.ts decided it for this request:
 * the socket's, or X-Forwarded-For's as far as trusted fronts vouch for it
 * (never a header alone: a client could set it to dodge the limit).
 */
export function remoteAddr(c: Context): string {
  return (c.get("clientAddr") as string | undefined) || socketAddress(c);
}

/** The most addresses the limiter tracks at once (memory stays bounded under a flood). */
export const MAX_TRACKED = 10_000;

/**
 * The key an address is counted under: an IPv4 address itself, an IPv6
 * address by its /64 (one host is usually given a whole /64: counting each
 * address apart would give it 2^64 fresh limits). An IPv4-mapped IPv6
 * address is its IPv4 address.
 */
export function limitKey(addr: string): string {
  const a = addr.toLowerCase().replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1];
  if (!a.includes(":")) return a;
  const [head, tail = ""] = a.split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = a.includes("::") ? [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

/**
 * Per-address limit on login and invite attempts (a sliding minute), on top of
 * the per-user lockout: it slows password spraying across many users. Past
 * MAX_TRACKED addresses the least recently seen is forgotten, never all of
 * them: an address at its limit, still trying, keeps its count however many
 * other addresses come and go (it cleared the whole table, which handed a
 * sprayer a fresh limit after 10,001 other addresses).
 */
export class LoginRateLimiter {
  /** Attempt times by key, in order of the last attempt (a Map iterates in insertion order). */
  private readonly hits = new Map<string, number[]>();
  constructor(
    private readonly clock: Clock,
    private readonly perMinute = 30,
  ) {}

  check(addr: string): void {
    const now = this.clock.now();
    const key = limitKey(addr);
    const recent = (this.hits.get(key) ?? []).filter((t) => t > now - 60_000);
    const allowed = recent.length < this.perMinute;
    if (allowed) recent.push(now);
    // Last seen now, refused or not: the least recently seen is the one forgotten.
    this.hits.delete(key);
    this.hits.set(key, recent);
    if (this.hits.size > MAX_TRACKED) this.hits.delete(this.hits.keys().next().value!);
    if (!allowed) throw new AzgateError("rate_limited", "too many login attempts from this address; wait a minute and try again");
  }
}
