/**
 * The address links name when proxy.public_addr is not set (src/proxy/public-url.ts): the container's or
 * machine's host name when the proxy listens everywhere, as the image's default command does; localhost only
 * for a proxy on loopback, where it is true.
 */
import { describe, expect, it } from "vitest";
import { defaultPublicUrl } from "../src/proxy/public-url.ts";

describe("the default public URL", () => {
  it("names the host name when the proxy listens on every address (the image's default command), not localhost", () => {
    expect(defaultPublicUrl("0.0.0.0", 3080, "azgate-proxy-7d9f")).toEqual({ url: "https://azgate-proxy-7d9f:3080", from: "hostname" });
    expect(defaultPublicUrl("::", 3080, "Azgate.Example.COM")).toEqual({ url: "https://azgate.example.com:3080", from: "hostname" });
    expect(defaultPublicUrl("", 8443, "3f2a1b9c4d5e")).toEqual({ url: "https://3f2a1b9c4d5e:8443", from: "hostname" });
  });

  it("names localhost on loopback, and when the host name cannot stand in a URL", () => {
    expect(defaultPublicUrl("127.0.0.1", 3080, "azgate-proxy-7d9f")).toEqual({ url: "https://localhost:3080", from: "localhost" });
    for (const name of ["localhost", "my_host", "", "a..b", "box.localhost", "x".repeat(254)]) expect(defaultPublicUrl("0.0.0.0", 3080, name).from, name).toBe("localhost");
  });
});
