/**
 * The control calls on an agent's tunnel (src/api/control.ts), typed on both
 * ends: the proxy refuses a malformed request with `bad_request` and audits
 * it; the caller refuses a malformed answer. The proxy's real state, an
 * in-memory tunnel pair, a fake clock.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { AppRegistry, type AgentTunnel } from "../src/proxy/registry.ts";
import { serveAgentStream } from "../src/proxy/tunnels.ts";
import { callControl } from "../src/api/control.ts";
import { controlCall, respondJsonMeta } from "../src/tunnel/index.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import type { Identity } from "../src/pki/identity.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { tempDir } from "./helpers/azgate.ts";
import { VERSION } from "../src/version.ts";

const agent: Identity = { kind: "host", name: "host-1", roles: ["app"], traits: {}, azure_identities: [], login_method: "join-token", session_id: "s" };
let ctx: ProxyContext;
let close: () => Promise<void>;
const clock = new FakeClock();
beforeAll(async () => {
  ({ ctx, close } = await openState(tempDir("azgate-control-"), { clusterName: "c", settings: settingsFrom(configSchema.parse({})), purpose: "control tests", clock }));
});
afterAll(() => close?.());

function agentTunnel(registry: AppRegistry) {
  const tunnel = { id: "t1", hostId: "host-1", hostName: "host-1", connectedAt: clock.now() } as AgentTunnel;
  const pair = memoryPair({}, { onStream: (s) => void serveAgentStream(ctx, registry, { id: "replica-1", peers: async () => [] }, tunnel, agent, s) });
  tunnel.session = pair.acceptor;
  return { tunnel, agentSide: pair.dialer };
}

describe("control calls", () => {
  it("a well-formed heartbeat registers the agent's apps and is answered in the typed shape", async () => {
    const registry = new AppRegistry(clock);
    const { agentSide } = agentTunnel(registry);
    const answer = await callControl(agentSide, "heartbeat", { type: "heartbeat", host_name: "h", version: VERSION, apps: [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: { env: "prod" } }] });
    expect(answer).toMatchObject({ ok: true, cluster_name: "c", proxy_id: "replica-1", peers: [] });
    expect(registry.all("azure-cli").map((s) => s.app.labels)).toEqual([{ env: "prod" }]);
  });

  it("a malformed heartbeat is refused with bad_request, naming the field, audited; nothing is registered", async () => {
    const registry = new AppRegistry(clock);
    const { agentSide } = agentTunnel(registry);
    for (const bad of [
      { type: "heartbeat", host_name: "h", version: VERSION, apps: [{ name: "Bad Name!", labels: {} }] },
      { type: "heartbeat", host_name: "x".repeat(300), version: VERSION, apps: [] },
      { type: "heartbeat", host_name: "h", version: VERSION, apps: "azure-cli" },
      { type: "renew" },
    ]) {
      const answer = await controlCall<Record<string, unknown>>(agentSide, bad);
      expect(answer).toMatchObject({ ok: false, code: "bad_request", message: expect.stringMatching(/^malformed (heartbeat|renew) \(/) });
    }
    expect(registry.all()).toEqual([]);
    const refused = await ctx.audit.search({ event: "agent.control.refused" });
    expect(refused.map((e) => e.call)).toEqual(["heartbeat", "heartbeat", "heartbeat", "renew"]);
    expect(refused.every((e) => e.host_id === "host-1" && e.error_code === "bad_request" && e.success === false)).toBe(true);
  });

  it("the caller refuses a malformed answer instead of trusting its type", async () => {
    const pair = memoryPair({}, { onStream: (s) => respondJsonMeta(s, { ok: true, interval_ms: "soon", peers: "all of them" }) });
    await expect(callControl(pair.dialer, "heartbeat", { type: "heartbeat", host_name: "h", version: VERSION, apps: [] })).rejects.toMatchObject({ code: "bad_request", message: expect.stringContaining("the answer to heartbeat is malformed") });
    const facts = memoryPair({}, { onStream: (s) => respondJsonMeta(s, { ok: true, client_id: "x; rm -rf /", principal_id: "p", tenant_id: "t" }) });
    await expect(callControl(facts.dialer, "identity_facts", { type: "identity_facts", identity: "/x" })).rejects.toMatchObject({ code: "bad_request" });
  });
});
