/**
 * The per-address login limit (proxy/rate-limit.ts), attacked (the second
 * outside attack's F9): a flood of other addresses must not hand an address
 * at its limit a fresh one, and the addresses of one IPv6 host (its /64)
 * share one limit.
 */
import { describe, expect, it } from "vitest";
import { limitKey, LoginRateLimiter, MAX_TRACKED } from "../src/proxy/rate-limit.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const refused = (f: () => void) => {
  try {
    f();
    return false;
  } catch (e) {
    expect((e as { code: string }).code).toBe("rate_limited");
    return true;
  }
};

describe("the per-address login limit", () => {
  it("an address at its limit stays there while more than MAX_TRACKED other addresses try, as long as it keeps trying; its minute ends by the clock", () => {
    const clock = new FakeClock();
    const limiter = new LoginRateLimiter(clock, 30);
    for (let i = 0; i < 30; i++) limiter.check("203.0.113.7");
    expect(refused(() => limiter.check("203.0.113.7"))).toBe(true);
    for (let i = 0; i <= MAX_TRACKED; i++) {
      limiter.check(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      if (i % 1000 === 0) expect(refused(() => limiter.check("203.0.113.7"))).toBe(true);
    }
    expect(refused(() => limiter.check("203.0.113.7"))).toBe(true);
    clock.advance(60_001);
    expect(refused(() => limiter.check("203.0.113.7"))).toBe(false);
  });

  it("counts an IPv6 host by its /64, in every spelling, and an IPv4-mapped address as its IPv4 address", () => {
    expect(limitKey("2001:db8:1:2:3:4:5:6")).toBe("2001:db8:1:2::/64");
    expect(limitKey("[2001:DB8:1:2::ffff]")).toBe("2001:db8:1:2::/64");
    expect(limitKey("2001:db8:0001:0002:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(limitKey("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(limitKey("fe80::1%eth0")).toBe("fe80:0:0:0::/64");
    expect(limitKey("::ffff:198.51.100.4")).toBe("198.51.100.4");
    expect(limitKey("198.51.100.4")).toBe("198.51.100.4");
    const limiter = new LoginRateLimiter(new FakeClock(), 3);
    for (const a of ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]) limiter.check(a);
    expect(refused(() => limiter.check("2001:db8:1:2:dead:beef:0:4"))).toBe(true);
    expect(refused(() => limiter.check("2001:db8:1:3::1"))).toBe(false);
  });
});
