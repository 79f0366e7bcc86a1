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

/**
 * Per-address limit on login and invite attempts (a sliding minute), on top of
 * the per-user lockout: it slows password spraying across many users.
 */
export class LoginRateLimiter {
  private readonly hits = new Map<string, number[]>();
  constructor(
    private readonly clock: Clock,
    private readonly perMinute = 30,
  ) {}

  check(addr: string): void {
    const now = this.clock.now();
    const recent = (this.hits.get(addr) ?? []).filter((t) => t > now - 60_000);
    if (recent.length >= this.perMinute) {
      throw new AzgateError("rate_limited", "too many login attempts from this address; wait a minute and try again");
    }
    recent.push(now);
    this.hits.set(addr, recent);
    if (this.hits.size > 10_000) this.hits.clear(); // bound memory under a flood
  }
}
