/**
 * Version skew (issue 35 part 4): a proxy serves agents and clients of its
 * own version and one minor behind (0.x), and refuses older ones naming both
 * versions and the next step. Played through a real proxy in this process:
 * an agent claiming two minors behind at the tunnel's upgrade, the same in a
 * heartbeat (an agent too old to send its version at the upgrade), and a
 * client's API call; each refusal audited as version.refused.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiClient } from "../src/api/client.ts";
import { callControl } from "../src/api/control.ts";
import type { HostCertificate } from "../src/api/types.ts";
import { LEGACY_VERSION, oldestServed, VERSION_HEADER, versionRefusal } from "../src/api/version.ts";
import { configSchema } from "../src/config/schema.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import { addToken } from "../src/proxy/admin.ts";
import { resolveCaller } from "../src/proxy/caller.ts";
import { pemOf } from "../src/proxy/cluster.ts";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { dialTunnel } from "../src/tunnel/dial.ts";
import { systemClock } from "../src/util/clock.ts";
import { VERSION } from "../src/version.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";

const [MAJOR, MINOR] = VERSION.split(".").map(Number);
const TWO_BEHIND = `${MAJOR}.${MINOR - 2}.9`;
const ONE_BEHIND = `${MAJOR}.${MINOR - 1}.0`;

describe("the rule (api/version.ts)", () => {
  it("serves its own version, one minor behind and newer; refuses two behind, naming both versions and the next step", () => {
    expect(MAJOR).toBe(0);
    expect(MINOR).toBeGreaterThanOrEqual(2);
    for (const v of [VERSION, `${MAJOR}.${MINOR}.7`, ONE_BEHIND, `${MAJOR}.${MINOR + 1}.0`, "1.0.0", `${VERSION}-rc.1`]) expect(versionRefusal(v, "agent"), v).toBeNull();
    const e = versionRefusal(TWO_BEHIND, "agent")!;
    expect(e.code).toBe("version_unsupported");
    expect(e.status).toBe(426);
    expect(e.message).toContain(`azgate ${TWO_BEHIND}`);
    expect(e.message).toContain(`azgate ${VERSION}`);
    expect(e.message).toContain(`upgrade the agent to ${VERSION}`);
    expect(e.message).toContain(`${oldestServed()} and later`);
    expect(versionRefusal("latest", "client")?.code).toBe("version_unsupported");
    // A caller that sends no version is of the last release that did not.
    expect(versionRefusal(undefined, "client")).toBe(versionRefusal(LEGACY_VERSION, "client"));
    // From 1.0: one major behind.
    expect(versionRefusal("1.9.0", "agent", "2.3.0")).toBeNull();
    expect(versionRefusal("0.9.0", "agent", "2.3.0")?.message).toContain("1.0 and later");
  });
});

describe("through a proxy", () => {
  let proxy: RunningProxy;
  let agent: { key: CryptoKey; cert: HostCertificate };
  const hostCa = () => pemOf(proxy.ctx.cluster.host.cert);
  const dial = (version: string) => dialTunnel({ baseUrl: proxy.url, path: "/v1/tunnel/agent", caPems: [hostCa()], key: agent.key, certPem: agent.cert.cert_pem, session: {}, clock: systemClock, version });
  const refusals = () => proxy.ctx.audit.search({ event: "version.refused" });

  beforeAll(async () => {
    const config = configSchema.parse({ cluster_name: "skew", proxy: { listen: "127.0.0.1:0" }, auth: { second_factor: "off" } });
    proxy = await startProxy({ ...config, data_dir: tempDir("azgate-skew-") }, new FakeClock());
    const admin = await resolveCaller(proxy.ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: proxy.ctx.localAdminSession });
    const { token } = await addToken(proxy.ctx, admin, "app", "1h");
    const keys = await generateKeyPair();
    const cert = await new ApiClient({ baseUrl: proxy.url, ca_pem: hostCa() }).call<HostCertificate>("POST", "/v1/join", { token, type: "app", public_key_pem: await publicKeyToPem(keys.publicKey), host_name: "old-agent" });
    agent = { key: keys.privateKey, cert };
  }, 30_000);
  afterAll(() => proxy?.close());

  it("an agent claiming two minors behind is refused at the upgrade, both versions named, and audited", async () => {
    const err = await dial(TWO_BEHIND).then(() => null, (e: unknown) => e as { code: string; message: string });
    expect(err?.code).toBe("version_unsupported");
    expect(err?.message).toContain(TWO_BEHIND);
    expect(err?.message).toContain(VERSION);
    const events = await refusals();
    expect(events.at(-1)).toMatchObject({ code: "AZ0002W", host_id: agent.cert.host_id, peer: "agent", peer_version: TWO_BEHIND, version: VERSION, error_code: "version_unsupported", success: false });
  });

  it("one minor behind is served; a heartbeat claiming two behind (an agent older than the header) is refused and audited", async () => {
    const session = await dial(ONE_BEHIND);
    try {
      const ok = await callControl(session, "heartbeat", { type: "heartbeat", host_name: "old-agent", version: ONE_BEHIND, apps: [] });
      expect(ok.ok).toBe(true);
      const before = (await refusals()).length;
      const refused = await callControl(session, "heartbeat", { type: "heartbeat", host_name: "old-agent", version: TWO_BEHIND, apps: [] });
      expect(refused).toMatchObject({ ok: false, code: "version_unsupported" });
      expect(!refused.ok && refused.message).toContain(VERSION);
      const events = await refusals();
      expect(events.length).toBe(before + 1);
      expect(events.at(-1)).toMatchObject({ host_id: agent.cert.host_id, peer_version: TWO_BEHIND });
    } finally {
      session.close();
    }
  });

  it("a client's API call from two minors behind is refused with 426 before anything else; /v1/ping still answers", async () => {
    const { createApi } = await import("../src/proxy/api.ts");
    const api = createApi(proxy.ctx, { publicUrl: () => proxy.publicUrl, registry: proxy.registry });
    const res = await api.fetch(new Request("https://local/v1/auth/login", { method: "POST", headers: { "content-type": "application/json", [VERSION_HEADER]: TWO_BEHIND }, body: JSON.stringify({ user: "x", password: "y", public_key_pem: "z" }) }));
    expect(res.status).toBe(426);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("version_unsupported");
    expect(body.error.message).toContain(TWO_BEHIND);
    expect(body.error.message).toContain(VERSION);
    const ping = await api.fetch(new Request("https://local/v1/ping", { headers: { [VERSION_HEADER]: TWO_BEHIND } }));
    expect(ping.status).toBe(200);
    expect(((await ping.json()) as { version: string }).version).toBe(VERSION);
  });
});
