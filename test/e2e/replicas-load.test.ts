/**
 * Load through two replicas (issue 8): 1,000 concurrent az-style request
 * streams, bounded in count and time, on loopback, with zero errors. The
 * figures are printed, not asserted (npm run bench prints them too).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { useEmulator } from "../helpers/emulator.ts";
import { startReplicaCluster, type ReplicaCluster } from "../helpers/replicas.ts";
import { describeLoad, replicaLoad } from "../helpers/replica-load.ts";

const fx = useEmulator({ projectToken: true });

describe("load through two replicas", () => {
  let cluster: ReplicaCluster;
  beforeAll(async () => {
    cluster = await startReplicaCluster(fx);
  }, 90_000);
  // Stopping after the load can take a while on Deno (each process is killed 30 s after its signal at worst).
  afterAll(async () => cluster?.stop(), 150_000);

  it("carries 1,000 concurrent request streams with zero errors, over both replicas", async () => {
    const requests = 4000;
    const result = await replicaLoad(cluster, { concurrency: 1000, requests, timeLimitMs: 120_000 });
    console.log(`[load] ${describeLoad(result)}`);
    expect(result.errors.slice(0, 5)).toEqual([]);
    expect(result.requests).toBe(requests);
    // The balancer spread the sessions: both replicas forwarded requests.
    for (const replica of cluster.replicas) {
      const port = /Diagnostics:\s+http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(replica.output())![1];
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const forwarded = Number(/^azgate_requests_total\{[^}]*status="200"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
      expect(forwarded, `requests forwarded by replica ${replica.port}`).toBeGreaterThan(500);
    }
  }, 180_000);
});
