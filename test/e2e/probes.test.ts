/**
 * Liveness and readiness for the image and the charts: the proxy's /healthz
 * and /readyz on its API port, the agent's on --diag-addr; the agent is ready
 * only while its tunnel to the proxy is up.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import https from "node:https";
import { useEmulator } from "../helpers/emulator.ts";
import { spawnAgent, startCluster, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, tempDir } from "../helpers/azgate.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });

function getJson(url: string, ca?: string): Promise<{ status: number; body: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith("https:") ? https : http).get(url, { ca }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    req.on("error", reject);
  });
}

describe("health and readiness probes", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  /** An agent with no diagnostics port: its probes on a loopback port of their own, for the image's HEALTHCHECK. */
  let bare: AgentProcess;
  beforeAll(async () => {
    cluster = await startCluster();
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken(), args: ["--diag-addr", "127.0.0.1:0"] });
    bare = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    await agent.waitFor(/Diagnostics:\s+http:\/\/127\.0\.0\.1:\d+/);
    await bare.waitFor(/tunnel to .* is up/);
  });
  afterAll(() => stopAll(agent, bare, cluster));

  it("proxy: /healthz and /readyz answer 200 on the API port", async () => {
    const base = `https://${cluster.proxy.addr}`;
    expect(await getJson(`${base}/healthz`, cluster.target.ca_pem)).toEqual({ status: 200, body: { status: "ok" } });
    expect(await getJson(`${base}/readyz`, cluster.target.ca_pem)).toEqual({ status: 200, body: { status: "ready" } });
  });

  it("azgate healthcheck (the image's HEALTHCHECK) passes against both, and refuses a non-loopback URL", async () => {
    const home = tempDir();
    const port = /Diagnostics:\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(agent.output())![1];
    const proxyCheck = await cli(["healthcheck", "--url", `https://${cluster.proxy.addr}/readyz`], { home });
    expect([proxyCheck.code, proxyCheck.stdout]).toEqual([0, expect.stringContaining("readyz: ok")]);
    expect((await cli(["healthcheck", "--url", `http://127.0.0.1:${port}/readyz`], { home })).code).toBe(0);
    const remote = await cli(["healthcheck", "--url", "https://example.com/readyz"], { home });
    expect([remote.code, remote.stderr]).toEqual([1, expect.stringContaining("must be a loopback address")]);
    const closed = await cli(["healthcheck", "--url", "http://127.0.0.1:1/readyz"], { home });
    expect(closed.code).toBe(1);
  });

  it("azgate healthcheck with no --url fits the mode running on the data dir: the proxy's port, the agent's diagnostics port, or a probe-only loopback port", async () => {
    const home = tempDir();
    const port = /Diagnostics:\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(agent.output())![1];
    const proxyCheck = await cli(["healthcheck", "--data-dir", cluster.proxy.dataDir], { home });
    expect([proxyCheck.code, proxyCheck.stdout], proxyCheck.stderr).toEqual([0, `https://127.0.0.1:${cluster.proxy.port}/readyz: ok (proxy)\n`]);
    const agentCheck = await cli(["healthcheck"], { home, env: { AZGATE_DATA_DIR: agent.dataDir } });
    expect([agentCheck.code, agentCheck.stdout], agentCheck.stderr).toEqual([0, `http://127.0.0.1:${port}/readyz: ok (agent)\n`]);
    const bareCheck = await cli(["healthcheck", "--data-dir", bare.dataDir], { home });
    expect([bareCheck.code, bareCheck.stdout], bareCheck.stderr).toEqual([0, expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+\/readyz: ok \(agent\)\n$/)]);
    // The probe-only port serves no metrics (only --diag-addr does).
    const probeOnly = new URL(bareCheck.stdout.split(": ok")[0]);
    expect((await getJson(`http://127.0.0.1:${probeOnly.port}/healthz`)).status).toBe(200);
    expect(await new Promise((resolve) => http.get(`http://127.0.0.1:${probeOnly.port}/metrics`, (res) => (res.resume(), resolve(res.statusCode))))).toBe(404);
  });

  it("agent: ready while its tunnel is up, not ready (503, with the reason) once the proxy is gone, alive throughout", async () => {
    const port = /Diagnostics:\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(agent.output())![1];
    const base = `http://127.0.0.1:${port}`;
    expect(await getJson(`${base}/readyz`)).toEqual({ status: 200, body: { status: "ready" } });
    await cluster.proxy.stop();
    let ready = await getJson(`${base}/readyz`);
    for (let i = 0; i < 50 && ready.status === 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ready = await getJson(`${base}/readyz`);
    }
    expect(ready).toEqual({ status: 503, body: { status: "not ready", reason: "no tunnel to the proxy" } });
    expect(await getJson(`${base}/healthz`)).toEqual({ status: 200, body: { status: "ok" } });
    // The image's HEALTHCHECK says so for the agent, not for a proxy it never ran.
    const check = await cli(["healthcheck", "--data-dir", agent.dataDir], { home: tempDir() });
    expect([check.code, check.stderr]).toEqual([1, expect.stringContaining(`http://127.0.0.1:${port}/readyz answered 503`)]);
  });
});
