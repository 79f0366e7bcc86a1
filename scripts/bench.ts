/**
 * npm run bench: what the tunnels cost, on loopback.
 *  - ARM GETs straight to the emulator vs through client stream -> proxy ->
 *    agent -> emulator (p50, p99, requests per second);
 *  - a large blob up and down through the same path (MB/s), against direct;
 *  - the Debian `az group list` straight to the emulator vs through
 *    `azgate az` (median of several runs, and the difference in ms), and
 *    vs az alone with the exports of a running `azgate proxy azure`;
 *  - how fast the single binary starts: `dist/azgate --help`, median of 10
 *    (built first, so the figure is this checkout's);
 *  - two proxy replicas on PostgreSQL behind a TCP balancer: 1,000
 *    concurrent az-style requests (throughput, p50, p99, errors).
 * Real processes for the proxy and the agent; the emulator and the clients
 * run in this process. Figures only: nothing here passes or fails.
 */
import https from "node:https";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { startEmulator } from "../src/emulator/server.ts";
import { cli, startCli, startProxyProcess, tempDir } from "../test/helpers/azgate.ts";
import { runCommand } from "../test/helpers/run.ts";
import { saveProfile } from "../src/client/profile.ts";
import { IDENTITY, readBody, spawnAgent, startCluster } from "../test/helpers/cluster.ts";
import { Outbound } from "../src/agent/outbound.ts";
import { identityHttpClient } from "../src/agent/identity-http.ts";
import { AzureTokenProvider } from "../src/agent/tokens.ts";
import type { EmulatorFixture } from "../test/helpers/emulator.ts";
import { startReplicaCluster } from "../test/helpers/replicas.ts";
import { describeLoad, replicaLoad } from "../test/helpers/replica-load.ts";

void startProxyProcess;
const N = Number(process.env.BENCH_REQUESTS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const BLOB_MIB = Number(process.env.BENCH_BLOB_MIB ?? 256);
const URL_SUBS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01";
const AZ_RUNS = Number(process.env.BENCH_AZ_RUNS ?? 7);
const REPLICA_CONCURRENCY = Number(process.env.BENCH_REPLICA_CONCURRENCY ?? 1000);
const REPLICA_REQUESTS = Number(process.env.BENCH_REPLICA_REQUESTS ?? 10_000);
const READER = IDENTITY("teleport-reader");
const CONTRIBUTOR = IDENTITY("teleport-contributor");

function pct(sorted: number[], p: number) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function load(name: string, once: () => Promise<void>) {
  for (let i = 0; i < 50; i++) await once(); // warm up
  const times: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < N) {
        const t = performance.now();
        await once();
        times.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - started) / 1000;
  times.sort((a, b) => a - b);
  return { name, p50: pct(times, 50), p99: pct(times, 99), rps: times.length / secs };
}

function zeros(total: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream({ pull(c) {
    if (sent >= total) return c.close();
    const n = Math.min(256 * 1024, total - sent);
    sent += n;
    c.enqueue(new Uint8Array(n));
  } }, { highWaterMark: 0 });
}

async function drain(body: ReadableStream<Uint8Array>): Promise<number> {
  let n = 0;
  const r = body.getReader();
  for (;;) {
    const { done, value } = await r.read();
    if (done) return n;
    n += value.length;
  }
}

async function main() {
  // First, while nothing else runs: start-up is what a person feels at a quiet workstation.
  const binary = ensureBinary();
  const startup = binaryStartup(binary);

  const dir = tempDir("azgate-bench-");
  const emu = await startEmulator({ dir });
  const tokenFile = path.join(dir, "sa-token");
  const projection = await emu.issuer.project(tokenFile, { namespace: "teleport-ns", serviceAccount: "teleport-azure-cli-aks-service-account" });
  const fx = { emu, dir, tokenFile } as EmulatorFixture;
  const cluster = await startCluster();
  const agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
  await agent.waitFor(/tunnel to .* is up/);
  await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: bench}\nspec: {allow: {app_labels: {"*": "*"}, azure_identities: ["${READER}", "${CONTRIBUTOR}"]}}\n` });
  const user = await cluster.user("bench", ["bench"]);
  const app = await user.appSession("azure-cli", READER);
  const blobApp = await user.appSession("azure-cli", CONTRIBUTOR);

  // Direct: the same requests with real tokens, straight to the emulator over keep-alive HTTPS.
  const outbound = new Outbound({ connectTo: { host: "127.0.0.1", port: emu.httpsPort }, caPem: emu.caPem });
  const tokens = new AzureTokenProvider({ env: { AZURE_CLIENT_ID: "00000000-0000-0000-0000-000000000001", AZURE_TENANT_ID: emu.world.tenant_id, AZURE_FEDERATED_TOKEN_FILE: tokenFile }, httpClient: identityHttpClient(outbound) });
  const armToken = (await tokens.getToken(READER, "https://management.core.windows.net//.default")).token;
  const blobToken = (await tokens.getToken(CONTRIBUTOR, "https://storage.azure.com/.default")).token;
  const pinned = await outbound.pinTrusted("management.azure.com", 443);
  const direct = async (url: string, method = "GET", token = armToken, body?: ReadableStream<Uint8Array>, headers: [string, string][] = []) => {
    const res = await outbound.send(new URL(url), pinned, { method, headers: [["authorization", `Bearer ${token}`], ...headers], body });
    const n = await drain(res.body);
    if (res.status >= 300) throw new Error(`direct ${method} ${url}: ${res.status}`);
    return n;
  };

  const rows = [
    await load("ARM GET, direct to the emulator", async () => void (await direct(URL_SUBS))),
    await load("ARM GET, client stream -> proxy -> agent", async () => {
      const res = await app.request(URL_SUBS);
      await readBody(res);
      if (res.status !== 200) throw new Error(`tunnel: ${res.status}`);
    }),
  ];

  const size = BLOB_MIB * 1024 * 1024;
  const blobUrl = (n: string) => `https://teleportdemostore.blob.core.windows.net/reports/${n}`;
  const put = [["x-ms-blob-type", "BlockBlob"], ["content-length", String(size)]] as [string, string][];
  const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
  let t = performance.now();
  await direct(blobUrl("bench-direct.bin"), "PUT", blobToken, zeros(size), put);
  const directUp = mbps(size, performance.now() - t);
  t = performance.now();
  await direct(blobUrl("bench-direct.bin"), "GET", blobToken);
  const directDown = mbps(size, performance.now() - t);
  t = performance.now();
  const up = await blobApp.request(blobUrl("bench-tunnel.bin"), { method: "PUT", resource: "https://storage.azure.com", headers: put, body: zeros(size) });
  await readBody(up);
  const tunnelUp = mbps(size, performance.now() - t);
  t = performance.now();
  const down = await blobApp.request(blobUrl("bench-tunnel.bin"), { resource: "https://storage.azure.com" });
  const got = await drain(down.body);
  const tunnelDown = mbps(got, performance.now() - t);

  const az = await azBench(emu, cluster, user, binary);
  app.close();
  blobApp.close();
  await agent.stop();
  await cluster.stop();
  const replicas = await replicaBench(fx);

  console.log(`\nazgate bench (${process.version}, ${N} requests, concurrency ${CONCURRENCY}, loopback; proxy and agent are separate processes)\n`);
  console.log("| path | p50 ms | p99 ms | req/s |\n|---|---:|---:|---:|");
  for (const r of rows) console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.rps.toFixed(0)} |`);
  console.log(`\n| ${BLOB_MIB} MiB blob | upload MB/s | download MB/s |\n|---|---:|---:|`);
  console.log(`| direct to the emulator | ${directUp.toFixed(0)} | ${directDown.toFixed(0)} |`);
  console.log(`| through client stream, proxy and agent | ${tunnelUp.toFixed(0)} | ${tunnelDown.toFixed(0)} |`);

  console.log(`\n| az group list (median of ${AZ_RUNS} interleaved rounds) | ms | vs direct |\n|---|---:|---:|`);
  for (const r of az) console.log(`| ${r.name} | ${r.median.toFixed(0)} | ${r === az[0] ? "" : `${r.median - az[0].median >= 0 ? "+" : ""}${(r.median - az[0].median).toFixed(0)} ms`} |`);

  console.log(`\n| single binary | median ms (10 runs) |\n|---|---:|`);
  for (const [name, ms] of startup) console.log(`| ${name} | ${ms.toFixed(0)} |`);

  console.log(`\n| two proxy replicas on PostgreSQL | |\n|---|---|`);
  console.log(`| ${REPLICA_CONCURRENCY} concurrent az-style requests | ${replicas} |`);

  outbound.close();
  projection.stop();
  await emu.close();
  void https;
  process.exit(0);
}

function ensureBinary(): string {
  const root = path.resolve(import.meta.dirname, "..");
  const binary = path.join(root, "dist/azgate");
  execFileSync(process.execPath, [path.join(root, "scripts/build-binary.mjs")], { stdio: "inherit" });
  return binary;
}

/** Start-up of the single binary, against the same CLI through tsx. */
function binaryStartup(binary: string): [string, number][] {
  const root = path.resolve(import.meta.dirname, "..");
  const median = (cmd: string, args: string[]) => {
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      execFileSync(cmd, args, { stdio: "ignore" });
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    return (times[4] + times[5]) / 2;
  };
  return [
    ["dist/azgate --help", median(binary, ["--help"])],
    ["dist/azgate --version", median(binary, ["--version"])],
    ["node bin/azgate.mjs --help (tsx, for comparison)", median(process.execPath, [path.join(root, "bin/azgate.mjs"), "--help"])],
  ];
}

/** Wall-clock of whole `az group list` processes, as a user feels them. */
/** 1,000 concurrent request streams through two replicas behind a balancer (needs Debian's PostgreSQL). */
async function replicaBench(fx: EmulatorFixture): Promise<string> {
  let cluster;
  try {
    cluster = await startReplicaCluster(fx);
  } catch (e) {
    return `skipped: ${(e as Error).message.split("\n")[0]}`;
  }
  try {
    return describeLoad(await replicaLoad(cluster, { concurrency: REPLICA_CONCURRENCY, requests: REPLICA_REQUESTS, timeLimitMs: 120_000 }));
  } finally {
    await cluster.stop();
  }
}

async function azBench(emu: Awaited<ReturnType<typeof startEmulator>>, cluster: Awaited<ReturnType<typeof startCluster>>, user: Awaited<ReturnType<Awaited<ReturnType<typeof startCluster>>["user"]>>, binary: string) {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  type Variant = [name: string, once: () => Promise<{ code: number; stderr: string }>];
  /** Interleaved rounds (each round runs every variant once), so a slow moment of the machine hits them all alike. */
  const interleaved = async (variants: Variant[]) => {
    for (const [name, once] of variants) {
      const first = await once(); // warm-up (and a check that it works at all)
      if (first.code !== 0) throw new Error(`${name}: ${first.stderr}`);
    }
    const times = variants.map(() => [] as number[]);
    for (let i = 0; i < AZ_RUNS; i++) {
      for (const [v, [name, once]] of variants.entries()) {
        const t = performance.now();
        const res = await once();
        times[v].push(performance.now() - t);
        if (res.code !== 0) throw new Error(`${name}: ${res.stderr}`);
      }
    }
    return variants.map(([name], v) => ({ name, median: median(times[v]) }));
  };

  // Direct: az logged in through the emulator's IMDS, talking to the emulator's ARM.
  const dir = tempDir("azgate-bench-az-");
  const directEnv = { HOME: dir, AZURE_CONFIG_DIR: `${dir}/azure`, AZURE_CORE_COLLECT_TELEMETRY: "false", HTTPS_PROXY: `http://127.0.0.1:${emu.proxyPort}`, HTTP_PROXY: `http://127.0.0.1:${emu.proxyPort}`, REQUESTS_CA_BUNDLE: emu.caFile };
  const login = await runCommand("az", ["login", "--identity", "--username", "00000000-0000-4000-8000-000000000002", "-o", "none"], directEnv);
  if (login.code !== 0) throw new Error(`az login against the emulator: ${login.stderr}`);

  // Through azgate: a workstation logged in as the bench user, az logged in through apps login.
  const home = tempDir("azgate-bench-home-");
  await saveProfile({ proxy: cluster.proxy.addr, user: user.name, cluster: "e2e", ca_pem: cluster.target.ca_pem }, user.keyPem, user.certPem, home);
  const env = { HOME: home, AZURE_CORE_COLLECT_TELEMETRY: "false" };
  const appLogin = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"], { home, env });
  if (appLogin.code !== 0) throw new Error(`apps login: ${appLogin.stderr}`);
  const proxy = await startCli(["proxy", "azure", "--format", "unix"], { home, env, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
  const exports = proxy.output().split("\n").filter((l) => l.startsWith("export ")).join("\n");
  try {
    return await interleaved([
      ["az, direct to the emulator", () => runCommand("az", ["group", "list", "-o", "none"], directEnv)],
      ["azgate az, from source through tsx (starts the local proxy each time)", () => cli(["az", "group", "list", "-o", "none"], { home, env })],
      ["dist/azgate az (the single binary)", () => runCommand(binary, ["az", "group", "list", "-o", "none"], { ...env, AZGATE_HOME: home })],
      ["az with the exports of a running azgate proxy azure", () => runCommand("/bin/sh", ["-c", `${exports}\naz group list -o none`], env)],
    ]);
  } finally {
    await proxy.stop();
  }
}

await main();
