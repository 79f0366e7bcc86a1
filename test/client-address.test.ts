import { describe, expect, it } from "vitest";
import { clientAddress } from "../src/proxy/client-address.ts";
import { inCidrs, isCidr } from "../src/net/address-policy.ts";
import { loadConfig } from "../src/config/load.ts";

/** Who the caller is behind a front: X-Forwarded-For only as far as trusted fronts vouch for it. */
describe("the caller's address behind a front", () => {
  const fronts = ["10.0.0.0/8", "fd00::/8"];

  it("without trusted fronts, or from an untrusted socket, the header is ignored (a client cannot pick its address)", () => {
    expect(clientAddress("198.51.100.7", "203.0.113.1", [])).toBe("198.51.100.7");
    expect(clientAddress("198.51.100.7", "203.0.113.1", fronts)).toBe("198.51.100.7");
  });

  it("through trusted fronts, the rightmost address no front vouches for; what the client wrote further left is not used", () => {
    expect(clientAddress("10.1.2.3", "198.51.100.7", fronts)).toBe("198.51.100.7");
    expect(clientAddress("10.1.2.3", "203.0.113.66, 198.51.100.7", fronts)).toBe("198.51.100.7");
    expect(clientAddress("10.1.2.3", "203.0.113.66, 198.51.100.7, 10.9.9.9", fronts)).toBe("198.51.100.7");
    expect(clientAddress("::ffff:10.1.2.3", "2001:db8::5", fronts)).toBe("2001:db8::5");
    expect(clientAddress("fd00::1", "198.51.100.7", fronts)).toBe("198.51.100.7");
    // Every hop is a front: the leftmost is as close to the caller as anyone knows.
    expect(clientAddress("10.1.2.3", "10.4.4.4, 10.5.5.5", fronts)).toBe("10.4.4.4");
    expect(clientAddress("10.1.2.3", undefined, fronts)).toBe("10.1.2.3");
  });

  it("ranges: IPv4, IPv6, single addresses, IPv4-mapped sockets; junk matches nothing", () => {
    expect(inCidrs("10.255.0.1", ["10.0.0.0/8"])).toBe(true);
    expect(inCidrs("11.0.0.1", ["10.0.0.0/8"])).toBe(false);
    expect(inCidrs("127.0.0.1", ["127.0.0.1"])).toBe(true);
    expect(inCidrs("::ffff:127.0.0.1", ["127.0.0.1/32"])).toBe(true);
    expect(inCidrs("fd12::9", ["fd00::/8"])).toBe(true);
    expect(inCidrs("not-an-ip", ["0.0.0.0/0"])).toBe(false);
    expect(["10.0.0.0/8", "fd00::/8", "127.0.0.1"].every(isCidr)).toBe(true);
    expect(["10.0.0.0/33", "10.0.0/8", "x", "10.0.0.0/8/1"].some(isCidr)).toBe(false);
  });

  it("proxy.trusted_proxies refuses what is not a range, naming the field", () => {
    expect(() => loadConfig({ flags: [[["proxy", "trusted_proxies"], ["10.0.0.0/8", "ingress"]]] })).toThrow(/proxy\.trusted_proxies\[1\]: must be an IP address or a CIDR range/);
    expect(loadConfig({ flags: [[["proxy", "trusted_proxies"], ["10.0.0.0/8"]]] }).proxy.trusted_proxies).toEqual(["10.0.0.0/8"]);
  });
});
