import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemClock } from "../src/util/clock.ts";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { establishTrust } from "../src/api/trust.ts";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { loadConfig } from "../src/config/load.ts";
import { createAuthority } from "../src/pki/authority.ts";
import { tempDir } from "./helpers/azgate.ts";
import { readLocalAdmin } from "../src/proxy/local-admin.ts";
import { request } from "../src/runtime/index.ts";

/** How a client decides to trust a proxy, against a real proxy serving TLS from its host CA. */
let proxy: RunningProxy;
const dataDir = tempDir("azgate-trust-");
let addr: string;
beforeAll(async () => {
  const config = loadConfig({ flags: [[["proxy", "listen"], "127.0.0.1:0"], [["cluster_name"], "trust"]] });
  proxy = await startProxy({ ...config, data_dir: dataDir }, systemClock);
  addr = `127.0.0.1:${proxy.port}`;
});
afterAll(async () => proxy?.close());

describe("establishing trust in a proxy", () => {
  it("without a pin, a web-PKI failure asks for --ca-pin (unless the user confirms the pin shown)", async () => {
    await expect(establishTrust({ proxy: addr })).rejects.toMatchObject({ code: "trust_required", message: expect.stringContaining(`--ca-pin ${proxy.caPins[0]}`) });
    let shown = "";
    const ok = await establishTrust({ proxy: addr, confirm: async (pin) => ((shown = pin), true) });
    expect(shown).toBe(proxy.caPins[0]);
    expect(ok.ping.cluster_name).toBe("trust");
    expect(ok.target.ca_pem).toContain("BEGIN CERTIFICATE");
    await expect(establishTrust({ proxy: addr, confirm: async () => false })).rejects.toMatchObject({ code: "trust_required" });
  });

  it("a CA saved at an earlier login is used as is, and a changed CA is refused", async () => {
    const { target } = await establishTrust({ proxy: addr, caPin: proxy.caPins[0] });
    expect((await establishTrust({ proxy: addr, knownCaPems: [target.ca_pem!] })).ping.cluster_name).toBe("trust");
    const other = (await createAuthority("host", "other", new Date())).cert.toString("pem");
    await expect(establishTrust({ proxy: addr, knownCaPems: [other] })).rejects.toMatchObject({ code: "cert_untrusted", message: expect.stringContaining("no longer presents the CA trusted at your last login") });
    // Two remembered (a profile that learnt both while the CA rotated, the retired one first): the one the proxy serves is enough.
    expect((await establishTrust({ proxy: addr, knownCaPems: [other, target.ca_pem!] })).ping.cluster_name).toBe("trust");
  });

  it("the offline admin path trusts exactly the certificate the proxy serves: another fingerprint is refused before a byte is sent", async () => {
    const local = (await readLocalAdmin(dataDir))!;
    expect(local.cert_sha256).toMatch(/^[0-9A-F:]{95}$/);
    const ok = await request(`${local.url}/v1/ping`, { certSha256: local.cert_sha256 });
    expect(ok.status).toBe(200);
    const other = local.cert_sha256!.replace(/^../, (h) => (h === "00" ? "01" : "00"));
    await expect(request(`${local.url}/v1/ping`, { certSha256: other })).rejects.toThrow(/presented certificate [0-9a-f]{64}, not the pinned certificate/);
  });

  it("a wrong pin is refused, naming the pin the proxy presented", async () => {
    await expect(establishTrust({ proxy: addr, caPin: "sha256:" + "0".repeat(64) })).rejects.toMatchObject({ code: "cert_untrusted", message: expect.stringContaining(proxy.caPins[0]) });
  });

  it("says what is wrong instead of a library's words: a malformed pin before any dial, a port that does not speak TLS", async () => {
    await expect(establishTrust({ proxy: addr, caPin: "abc" })).rejects.toMatchObject({ code: "bad_parameter", message: expect.stringContaining('--ca-pin "abc" is not a CA pin: it is sha256: and 64 hex digits') });
    const plain = http.createServer((_req, res) => res.end("hello"));
    await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
    try {
      const port = (plain.address() as AddressInfo).port;
      await expect(establishTrust({ proxy: `127.0.0.1:${port}`, caPin: proxy.caPins[0] })).rejects.toMatchObject({ code: "connection_failed", message: expect.stringContaining("that port does not speak TLS") });
    } finally {
      plain.close();
    }
  });
});
