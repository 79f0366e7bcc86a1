/**
 * Two checkouts of azgate side by side: A/B of a change's cost per ARM GET.
 *
 *   git worktree add /tmp/azgate-a <base> && ln -s "$PWD/node_modules" /tmp/azgate-a/
 *   AB=/tmp/azgate-a,. npx tsx scripts/bench-ab.ts
 *
 * Each checkout runs its own proxy and agent processes against one emulator;
 * rounds alternate between them (ROUNDS, PER requests each, CONC at a time),
 * so the machine's slow moments hit both alike. Prints each side's median p50
 * and CPU per request of its proxy and agent, and the median of each round's
 * difference (B minus A), with every round's. Figures only, as npm run bench.
 *
 * MODE=sdk-kept or MODE=sdk-new measures the SDK path instead: each side's
 * own `azgate proxy azure` process, HTTPS through its printed HTTPS_PROXY
 * with kept connections, or with a new connection (a new CONNECT and TLS
 * handshake) per request as @azure/core-rest-pipeline makes them; the CPU
 * column then adds the local proxy's.
 *
 * MODE=stream-up or MODE=stream-down moves STREAM_MIB (32) MiB per request
 * through each side's tunnel to a sink in this process (a PUT's body counted
 * and dropped, a GET answered with zeros), as npm run bench's streaming rows;
 * it prints MB/s and CPU per MiB instead (SELF=1 adds this process's, which
 * plays both the client and the sink).
 *
 * PG=1 runs each side's proxy on PostgreSQL (state and audit log; a local
 * server started here), where an audit event is a committed transaction.
 *
 * BIN=1 runs each side's processes as its single binary (dist/azgate, built
 * first by its own scripts/build-binary.mjs), as the image and releases ship
 * them; BIN=a or BIN=b only that side's. Otherwise they run through tsx, whose
 * transform names every function (esbuild's keepNames): a closure made per
 * request or per tunnel costs more there than in the bundle.
 */
import "reflect-metadata";
import path from "node:path";
import http from "node:http";
import https from "node:https";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { HttpsProxyAgent } from "https-proxy-agent";
import { cpuTicksOf, inRounds, load, median, sink, SINK_HOST, warm, zeros } from "./bench-measure.ts";

const roots = (process.env.AB ?? "").split(",").filter(Boolean).map((r) => path.resolve(r));
if (roots.length !== 2) throw new Error("AB=<checkout A>,<checkout B> (each with node_modules)");
const ROUNDS = Number(process.env.ROUNDS ?? 16);
const PER = Number(process.env.PER ?? 300);
const CONC = Number(process.env.CONC ?? 1);
const MODE = process.env.MODE ?? "arm";
const URL_SUBS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01";

const { startEmulator } = await import(path.join(roots[0], "src/emulator/server.ts"));
const { tempDir } = await import(path.join(roots[0], "test/helpers/azgate.ts"));
const dir = tempDir("azgate-ab-");
const STREAM_MIB = Number(process.env.STREAM_MIB ?? 32);
const streaming = MODE.startsWith("stream-");
const emu = await startEmulator({ dir, extraHosts: { [SINK_HOST]: sink } });
const tokenFile = path.join(dir, "sa-token");
const projection = await emu.issuer.project(tokenFile, { namespace: "teleport-ns", serviceAccount: "teleport-azure-cli-aks-service-account" });
const fx = { emu, dir, tokenFile };

interface Side {
  root: string;
  once: () => Promise<void>;
  pids: number[];
  p50: number[];
  rps: number[];
  cpuMs: number[][];
  stop: () => Promise<void>;
}
const sides: Side[] = [];
// PG=1: each side's proxy keeps its state and audit log in PostgreSQL (its own database), as replicas do.
const pg = process.env.PG === "1" ? await (await import(path.join(roots[0], "test/helpers/postgres.ts"))).startPostgres() : null;
const BIN = (process.env.BIN ?? "").toLowerCase();
for (const [i, root] of roots.entries()) {
  // The helpers spawn AZGATE_TEST_CLI_BINARY when it is set (test/helpers/azgate.ts), read as each process starts.
  if (BIN === "1" || BIN.includes("ab"[i])) {
    execFileSync(process.execPath, [path.join(root, "scripts/build-binary.mjs")], { stdio: "inherit", cwd: root });
    process.env.AZGATE_TEST_CLI_BINARY = path.join(root, "dist/azgate");
  } else delete process.env.AZGATE_TEST_CLI_BINARY;
  const { startCluster, spawnAgent, IDENTITY, readBody } = await import(path.join(root, "test/helpers/cluster.ts"));
  const reader = IDENTITY("teleport-reader");
  const cluster = await startCluster(pg ? { env: { AZGATE_STORAGE_TYPE: "postgres", AZGATE_STORAGE_CONN_STRING: await pg.database(`azgate_ab_${i}`) } } : {});
  const agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
  await agent.waitFor(/tunnel to .* is up/);
  const contributor = IDENTITY("teleport-contributor");
  await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: bench}\nspec: {allow: {app_labels: {"*": "*"}, azure_identities: ["${reader}", "${contributor}"]}}\n` });
  const user = await cluster.user("bench", ["bench"]);
  const app = await user.appSession("azure-cli", streaming ? contributor : reader);
  let once = async () => {
    const res = await app.request(URL_SUBS);
    await readBody(res);
    if (res.status !== 200) throw new Error(`${root}: ${res.status}`);
  };
  if (streaming) {
    const size = STREAM_MIB * 1024 * 1024;
    const url = `https://${SINK_HOST}/bench`;
    once = MODE === "stream-up"
      ? async () => {
          const res = await app.request(url, { method: "PUT", resource: "https://storage.azure.com", headers: [["content-length", String(size)]], body: zeros(size) });
          await readBody(res);
          if (res.status !== 201) throw new Error(`${root}: ${res.status}`);
        }
      : async () => {
          const res = await app.request(`${url}?size=${size}`, { resource: "https://storage.azure.com" });
          let n = 0;
          for await (const chunk of res.body as AsyncIterable<Uint8Array>) n += chunk.length;
          if (n !== size) throw new Error(`${root}: ${n} of ${size} bytes`);
        };
  }
  const pids = [cluster.proxy.child.pid!, agent.child.pid!, ...(process.env.SELF ? [process.pid] : [])];
  let stopLocal = async () => undefined as unknown;
  if (MODE.startsWith("sdk-")) {
    const local = await sdkPath(root, cluster, user);
    once = MODE === "sdk-new" ? local.fresh : local.kept;
    pids.push(local.pid);
    stopLocal = local.stop;
  }
  await warm(once, streaming ? 8 : undefined, streaming ? 2 : undefined); // as a proxy that runs for days is (BENCH_WARMUP)
  sides.push({ root, once, pids, p50: [], rps: [], cpuMs: pids.map(() => []), stop: async () => (await stopLocal(), app.close(), await agent.stop(), await cluster.stop()) });
}

/** A side's own `proxy azure` (apps login first, from that checkout), and GETs through its printed HTTPS_PROXY. */
async function sdkPath(root: string, cluster: any, user: any) {
  const { cli, startCli, parseExports } = await import(path.join(root, "test/helpers/azgate.ts"));
  const { saveProfile } = await import(path.join(root, "src/client/profile.ts"));
  const home = tempDir("azgate-ab-home-");
  await saveProfile({ proxy: cluster.proxy.addr, user: user.name, cluster: "e2e", ca_pem: cluster.target.ca_pem }, user.keyPem, user.certPem, home);
  const env = { HOME: home, AZURE_CORE_COLLECT_TELEMETRY: "false" };
  const login = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"], { home, env });
  if (login.code !== 0) throw new Error(`apps login: ${login.stderr}`);
  const proxy = await startCli(["proxy", "azure", "--format", "unix"], { home, env, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
  const exports: Record<string, string> = parseExports(proxy.output().split("\n").filter((l: string) => l.startsWith("export ")).join("\n"));
  const ca = readFileSync(exports.NODE_EXTRA_CA_CERTS, "utf8");
  const token = await tokenFrom(exports);
  const kept = new HttpsProxyAgent(exports.HTTPS_PROXY, { keepAlive: true, maxSockets: 16 });
  const get = (agent: https.Agent) =>
    new Promise<void>((resolve, reject) => {
      const u = new URL(URL_SUBS);
      https
        .request({ protocol: "https:", host: u.hostname, path: u.pathname + u.search, agent, ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
          res.on("data", () => undefined);
          res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`${root}: ${res.statusCode}`))));
        })
        .on("error", reject)
        .end();
    });
  return { pid: proxy.child.pid as number, kept: () => get(kept), fresh: () => get(new HttpsProxyAgent(exports.HTTPS_PROXY)), stop: async () => (kept.destroy(), await proxy.stop()) };
}

/** The token from the printed loopback IDENTITY_ENDPOINT, once. */
async function tokenFrom(env: Record<string, string>): Promise<string> {
  const u = new URL(env.IDENTITY_ENDPOINT);
  u.searchParams.set("resource", "https://management.azure.com/");
  u.searchParams.set("api-version", "2019-08-01");
  const body = await new Promise<string>((resolve, reject) =>
    http.get(u, { headers: { "x-identity-header": env.IDENTITY_HEADER } }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`token: ${res.statusCode} ${text}`))));
    }).on("error", reject),
  );
  return JSON.parse(body).access_token;
}

await inRounds(sides.length, ROUNDS, async (i) => {
  const s = sides[i];
  const before = s.pids.map(cpuTicksOf);
  const { times, rps } = await load(s.once, CONC, PER);
  s.p50.push(median(times));
  s.rps.push(rps);
  // Ticks are 10 ms.
  s.pids.forEach((pid, j) => s.cpuMs[j].push(((cpuTicksOf(pid) - before[j]) * 10) / PER));
});

console.log(`${ROUNDS} interleaved rounds of ${PER} ${streaming ? `transfers of ${STREAM_MIB} MiB` : "ARM GETs"}, ${CONC} at a time`);
console.log(`mode ${MODE}`);
const mib = streaming ? STREAM_MIB : 0;
if (streaming) for (const s of sides) console.log(`${s.root}: ${((median(s.rps) * mib * 1.048576)).toFixed(0)} MB/s; CPU per MiB: proxy ${(median(s.cpuMs[0]) / mib).toFixed(2)} ms, agent ${(median(s.cpuMs[1]) / mib).toFixed(2)} ms${s.cpuMs[2] ? `, this process ${(median(s.cpuMs[2]) / mib).toFixed(2)} ms` : ""}`);
else for (const s of sides) console.log(`${s.root}: p50 ${median(s.p50).toFixed(3)} ms, ${median(s.rps).toFixed(0)} req/s; CPU per request: proxy ${median(s.cpuMs[0]).toFixed(3)} ms, agent ${median(s.cpuMs[1]).toFixed(3)} ms${s.cpuMs[2] ? `, third (SELF: this process; else proxy azure) ${median(s.cpuMs[2]).toFixed(3)} ms` : ""}`);
const diff = sides[1].p50.map((v, i) => v - sides[0].p50[i]);
console.log(`B - A, p50: median ${median(diff).toFixed(3)} ms (${diff.filter((d) => d < 0).length} of ${diff.length} rounds lower); rounds: ${diff.map((d) => d.toFixed(2)).join(" ")}`);
for (const s of sides) await s.stop();
projection.stop();
await emu.close();
await pg?.stop();
process.exit(0);
