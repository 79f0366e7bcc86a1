/**
 * What npm run bench and scripts/bench-ab.ts measure with: a process's CPU
 * time, a load of requests, medians and percentiles, interleaved rounds, and
 * the sink the streaming rows move their bytes to.
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
 * Requests enough for V8 to have compiled a path's code, as it has in a proxy
 * that runs for days. Every azgate process optimises a few hundred functions
 * over its first few thousand requests (node --trace-opt: 50 a block of 500
 * at first, none after about 5,000), and one request at a time took 5.6 ms
 * on the first of those blocks and 2.8 after them: a bench warmed with 500
 * measured the JIT at work. A tenth one at a time, the rest `concurrency`
 * at a time (it is quicker, and exercises the same code).
 */
export const WARMUP = Number(process.env.BENCH_WARMUP ?? 6000);

export async function warm(once: () => Promise<void>, requests = WARMUP, concurrency = 16): Promise<void> {
  const alone = Math.ceil(requests / 10);
  await load(once, 1, alone);
  await load(once, concurrency, requests - alone);
}

/** A path's run in one round that has not ended in this long has stalled (BENCH_STALL_S; a round takes seconds). */
const STALL_MS = Number(process.env.BENCH_STALL_S ?? 180) * 1000;

/**
 * Runs every one of `count` paths once per round, `rounds` times, starting
 * each round one path further on, so a slow moment of the machine hits them
 * all alike. A run that stalls fails the bench, naming the path (`names`),
 * rather than leaving it waiting for ever with nothing printed.
 */
export async function inRounds(count: number, rounds: number, run: (path: number, round: number) => Promise<void>, names: readonly string[] = []): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < count; k++) {
      const i = (k + r) % count;
      await withinStallLimit(run(i, r), `${names[i] ?? `path ${i + 1}`}, round ${r + 1} of ${rounds}`);
    }
  }
}

async function withinStallLimit<T>(running: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bench: ${what} did not end in ${STALL_MS / 1000} s: stalled, so the bench stops (BENCH_STALL_S sets the limit)`)), STALL_MS);
  });
  try {
    return await Promise.race([running, stalled]);
  } finally {
    clearTimeout(timer);
  }
}

/** The host the streaming rows' sink answers as (the emulator's extraHosts): a fast stand-in for Azure's data plane. */
export const SINK_HOST = "benchsink.blob.core.windows.net";

/** `total` zero bytes, in 256 KiB chunks, made as they are read. */
export function zeros(total: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({ pull(c) {
    if (sent >= total) return c.close();
    const n = Math.min(256 * 1024, total - sent);
    sent += n;
    c.enqueue(new Uint8Array(n));
  } }, { highWaterMark: 0 });
}

/** The sink: a PUT's body is counted and dropped, a GET returns ?size zero bytes. */
export async function sink(req: Request): Promise<Response> {
  if (req.method === "PUT") {
    let n = 0;
    for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) n += chunk.length;
    return new Response(null, { status: 201, headers: { "x-bench-bytes": String(n) } });
  }
  const size = Number(new URL(req.url).searchParams.get("size") ?? 0);
  return new Response(zeros(size), { headers: { "content-length": String(size) } });
}
