/**
 * The replica load run: many concurrent az-style requests (an ARM GET with a
 * placeholder bearer token, as az sends through the local proxy) spread over
 * client sessions that the balancer spreads over the replicas. Bounded in
 * count and in time; loopback only. Used by the load test and npm run bench.
 */
import { readBody } from "./cluster.ts";
import type { ReplicaCluster } from "./replicas.ts";

const URL_RGS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01";

export interface LoadResult {
  concurrency: number;
  requests: number;
  errors: string[];
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

export async function replicaLoad(cluster: ReplicaCluster, o: { concurrency: number; requests: number; timeLimitMs: number; sessions?: number }): Promise<LoadResult> {
  const sessions = await Promise.all(Array.from({ length: o.sessions ?? 10 }, () => cluster.appSession()));
  try {
    for (const s of sessions) await readBody(await s.request(URL_RGS)); // warm: tunnels, certificates, the agent's token
    const errors: string[] = [];
    const times: number[] = [];
    let issued = 0;
    const deadline = Date.now() + o.timeLimitMs;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: o.concurrency }, async (_, i) => {
        const session = sessions[i % sessions.length];
        while (issued < o.requests && Date.now() < deadline) {
          issued++;
          const t = performance.now();
          try {
            const res = await session.request(URL_RGS);
            const body = await readBody(res);
            if (res.status === 200) times.push(performance.now() - t);
            else errors.push(`HTTP ${res.status}: ${body.slice(0, 200)}`);
          } catch (e) {
            errors.push((e as Error).message);
          }
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    times.sort((a, b) => a - b);
    return { concurrency: o.concurrency, requests: times.length + errors.length, errors, seconds, rps: times.length / seconds, p50: pct(times, 50), p99: pct(times, 99) };
  } finally {
    for (const s of sessions) s.close();
  }
}

export function describeLoad(r: LoadResult): string {
  return `${r.requests} requests, ${r.concurrency} concurrent, through 2 replicas: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.errors.length} errors (${r.seconds.toFixed(1)} s)`;
}
