/**
 * Tracing across the four parts (issue 35): one `azgate az group list`
 * with the client, the proxy and the agent each exporting OTLP to a
 * receiver the test runs. Its spans make one trace, each a child of the hop
 * before (client -> proxy -> agent -> Azure), and the proxy's audit events
 * for the request carry that trace's ID.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, SEED_DIR, spawnAgent, startCluster, workstationHome, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli } from "../helpers/azgate.ts";
import { stopAll } from "../helpers/stop.ts";
import { startOtlpReceiver, type ReceivedSpan } from "../helpers/otlp.ts";
import type { AuditEvent } from "../../src/audit/sink.ts";

const fx = useEmulator({ projectToken: true });

describe("tracing", () => {
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let cluster: TestCluster;
  let agent: AgentProcess;
  let home: string;
  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    const env = { AZGATE_TRACING_ENDPOINT: otlp.endpoint };
    cluster = await startCluster({ env });
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken(), env });
    await agent.waitFor(/tunnel to .* is up/);
    await cluster.admin.call("POST", "/v1/admin/resources", { text: readFileSync(path.join(SEED_DIR, "azure-cli-access-internal.yaml"), "utf8") });
    const alice = await cluster.user("alice", ["azure-cli-access"], [IDENTITY("teleport-reader")]);
    home = await workstationHome(cluster, alice);
    const login = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"], { home, env: { HOME: home } });
    expect(login.code, login.stderr).toBe(0);
  });
  afterAll(async () => {
    await stopAll(agent, cluster);
    await otlp?.close();
  });

  it("one traced az group list: spans from the client, the proxy, the agent and the Azure call, one trace, each the child of the hop before; the audit event names the trace", async () => {
    const before = otlp.spans.length;
    const res = await cli(["az", "group", "list", "-o", "json"], { home, env: { HOME: home, AZGATE_TRACING_ENDPOINT: otlp.endpoint } });
    expect(res.code, res.stderr).toBe(0);
    // The client's spans left as it exited; the proxy's and the agent's leave within a second.
    const listCall = (s: ReceivedSpan) => s.attributes["url.path"] === "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups";
    const find = () => {
      const client = otlp.spans.slice(before).find((s) => s.service === "azgate-client" && listCall(s));
      const all = client ? otlp.spans.filter((s) => s.traceId === client.traceId) : [];
      return { client, all };
    };
    // Until each part's span is in (each process sends its batch on its own second: the proxy's may come last).
    const complete = (all: ReceivedSpan[]) => ["azgate-client", "azgate-proxy", "azgate agent", "Azure GET"].every((p) => all.some((s) => s.service === p || s.name.startsWith(p)));
    let found = find();
    for (const deadline = Date.now() + 15_000; !complete(found.all) && Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) found = find();
    const { client, all } = found;
    expect(client, `spans: ${JSON.stringify(otlp.spans.map((s) => [s.service, s.name, s.attributes["url.path"]]))} (${before} before)`).toBeDefined();
    const proxy = all.find((s) => s.service === "azgate-proxy")!;
    const agentSpan = all.find((s) => s.service === "azgate-agent" && s.name.startsWith("azgate agent"))!;
    const azure = all.find((s) => s.service === "azgate-agent" && s.name.startsWith("Azure GET"))!;
    expect([proxy, agentSpan, azure].every(Boolean), JSON.stringify(all.map((s) => [s.service, s.name]))).toBe(true);
    expect(proxy.parentSpanId).toBe(client!.spanId);
    expect(agentSpan.parentSpanId).toBe(proxy.spanId);
    expect(azure.parentSpanId).toBe(agentSpan.spanId);
    expect(azure.attributes["http.response.status_code"]).toBe(200);
    expect(azure.attributes["server.address"]).toBe("management.azure.com");
    // The request's audit events carry the trace's ID.
    const { items } = await cluster.admin.call<{ items: AuditEvent[] }>("GET", `/v1/admin/audit?event=app.request&request_id=${proxy.attributes["azgate.request_id"]}`);
    expect(items.map((e) => e.event).sort()).toEqual(["app.request", "app.request.start"]);
    expect(items.every((e) => e.trace_id === client!.traceId)).toBe(true);
  });
});
