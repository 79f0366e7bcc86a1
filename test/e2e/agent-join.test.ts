/**
 * Joining, end to end with real processes: each failure says what to do, and
 * a joined agent renews its host certificate over the tunnel.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, readBody, spawnAgent, startCluster, type TestCluster } from "../helpers/cluster.ts";
import { tempDir } from "../helpers/azgate.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });

async function failedJoin(agent: ReturnType<typeof spawnAgent>): Promise<string> {
  const code = await new Promise<number | null>((r) => (agent.child.exitCode !== null ? r(agent.child.exitCode) : agent.child.once("exit", (c) => r(c))));
  expect(code).not.toBe(0);
  return agent.output();
}

describe("agent join", () => {
  let cluster: TestCluster;
  let other: TestCluster;
  beforeAll(async () => {
    // Short host certificates, so renewal happens within the test.
    [cluster, other] = await Promise.all([startCluster({ env: { AZGATE_HOST_CERT_TTL: "9s" } }), startCluster({ clusterName: "other-cluster" })]);
  });
  afterAll(() => stopAll(cluster, other));

  it("refuses a used-up token and says to create a new one", async () => {
    const token = await cluster.joinToken({ uses: 1 });
    const first = spawnAgent({ proxy: cluster.proxy, fx, token });
    await first.waitFor(/tunnel to .* is up/);
    await first.stop();
    const out = await failedJoin(spawnAgent({ proxy: cluster.proxy, fx, token }));
    expect(out).toMatch(/ERROR: the join token is used up \(1 of 1 joins\); create a new one on the proxy: azgate admin tokens add --type=app/);
  });

  it("refuses an expired token", async () => {
    const token = await cluster.joinToken({ ttl: "1s" });
    // 1 s is the shortest token life, and the proxy's clock is its own process's: the token must really expire.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await failedJoin(spawnAgent({ proxy: cluster.proxy, fx, token }))).toMatch(/ERROR: the join token expired .* ago; create a new one/);
  });

  it("refuses a user invite used as a join token (wrong type)", async () => {
    const { invite_token } = await cluster.admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name: "carol", roles: ["access"] });
    expect(await failedJoin(spawnAgent({ proxy: cluster.proxy, fx, token: invite_token }))).toMatch(/ERROR: this is a user invite, not a join token; create a new one/);
  });

  it("refuses a wrong CA pin before sending the token", async () => {
    const token = await cluster.joinToken();
    const agent = spawnAgent({ proxy: { ...cluster.proxy, pin: other.proxy.pin }, fx, token });
    expect(await failedJoin(agent)).toMatch(/ERROR: CA pin mismatch: the proxy at .* presented sha256:[0-9a-f]+, expected sha256:[0-9a-f]+; check the pin/);
    const tokens = await cluster.admin.call<{ items: { id: string; uses?: number }[] }>("GET", "/v1/admin/resources/token");
    expect(tokens.items.every((t) => !t.uses)).toBe(true);
  });

  it("refuses a data dir that belongs to another cluster", async () => {
    const dataDir = tempDir("azgate-agent-");
    const agent = spawnAgent({ proxy: other.proxy, fx, token: await other.joinToken(), dataDir });
    await agent.waitFor(/tunnel to .* is up/);
    await agent.stop();
    const out = await failedJoin(spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken(), dataDir }));
    expect(out).toMatch(/ERROR: the data dir .* belongs to cluster "other-cluster".*use another --data-dir, or delete/);
  });

  it("reuses its stored identity on restart without a token, and renews its certificate before expiry", async () => {
    const dataDir = tempDir("azgate-agent-");
    const first = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken(), dataDir });
    await first.waitFor(/tunnel to .* is up/);
    // Its own line, on stdout: not ordered with the tunnel's log line on stderr (on Deno it came later once).
    await first.waitFor(/Host ID:\s+\S+\n/);
    const hostId = /Host ID:\s+(\S+)/.exec(first.output())?.[1];
    await first.stop();
    const again = spawnAgent({ proxy: cluster.proxy, fx, dataDir });
    try {
      await again.waitFor(/tunnel to .* is up/);
      await again.waitFor(/Host ID:\s+\S+\n/);
      expect(/Host ID:\s+(\S+)/.exec(again.output())?.[1]).toBe(hostId);
      // 9 s certificates renew at 6 s; the proxy closes a tunnel whose certificate expired, and the agent comes back with the new one.
      await again.waitFor(/host certificate renewed/, 20_000);
      await again.waitFor(/host certificate renewed[\s\S]*host certificate renewed/, 20_000);
      await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: r}\nspec: {allow: {app_labels: {"*": "*"}, azure_identities: ["${IDENTITY("teleport-reader")}"]}}\n` });
      const dave = await cluster.user("dave", ["r"]);
      const app = await dave.appSession("azure-cli", IDENTITY("teleport-reader"));
      const res = await app.request("https://management.azure.com/subscriptions?api-version=2019-11-01");
      expect(res.status).toBe(200);
      await readBody(res);
      app.close();
    } finally {
      await again.stop();
    }
  });
});
