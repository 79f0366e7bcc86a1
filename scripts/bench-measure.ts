/**
 * What npm run bench and scripts/bench-ab.ts measure with: a process's CPU
 * time, a load of requests, medians and percentiles, and interleaved rounds.
 */
import { readFileSync } from "node:fs";

/** A process's CPU time so far (user + system), in clock ticks: 100 a second here (Linux). */
export function cpuTicksOf(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The p-th percentile of sorted figures. */
export function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** `requests` requests, `concurrency` at a time: each one's time in ms (sorted), and requests per second. */
export async function load(once: () => Promise<void>, concurrency: number, requests: number): Promise<{ times: number[]; rps: number }> {
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next++ < requests) {
        const t = performance.now();
        await once();
        times.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  return { times, rps: times.length / secs };
}

/**
 * Runs every one of `count` paths once per round, `rounds` times, starting
 * each round one path further on, so a slow moment of the machine hits them
 * all alike.
 */
export async function inRounds(count: number, rounds: number, run: (path: number, round: number) => Promise<void>): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < count; k++) await run((k + r) % count, r);
  }
}
