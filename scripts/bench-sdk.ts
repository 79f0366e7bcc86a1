/**
 * The path an SDK user takes, measured from outside (npm run bench, part
 * "sdk"): an HTTPS client through a running `azgate proxy azure`'s printed
 * HTTPS_PROXY, trusting its printed CA, with a token fetched once from its
 * IDENTITY_ENDPOINT, against the emulator, beside the same requests straight
 * to the emulator. Twice: with kept connections (an agent with keep-alive),
 * and with a new connection per request, as @azure/core-rest-pipeline does
 * behind HTTPS_PROXY (it builds an HttpsProxyAgent without keep-alive: every
 * request a new CONNECT and TLS handshake with the local proxy). Then the
 * real @azure/arm-resources with ManagedIdentityCredential, in a process of
 * its own (NODE_EXTRA_CA_CERTS is read at start-up), as it behaves behind
 * HTTPS_PROXY: its own c1 and c16 figures beside the direct ones.
 */
import http from "node:http";
import https from "node:https";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { spawn } from "node:child_process";
import { HttpsProxyAgent } from "https-proxy-agent";
import { inRounds, load, median, pct, warm } from "./bench-measure.ts";
import { tempDir } from "../test/helpers/azgate.ts";

/** One request's outcome is drained and checked; a client is `once`. */
type Once = () => Promise<void>;

export interface SdkRow {
  name: string;
  p50: number;
  added: number | null;
  rps: number;
  share: number | null;
}

/** GET `url` with `agent`, trusting `ca`, the body drained; throws unless 200. */
function get(url: string, agent: https.Agent | false, ca: string, headers: Record<string, string>, lookup?: (host: string) => { host: string; port: number }): Promise<void> {
  const u = new URL(url);
  const to = lookup?.(u.hostname);
  return new Promise((resolve, reject) => {
    const req = https.request(
      // protocol "https:" in the options: https-proxy-agent 7 keeps its sockets only when the request says it is https.
      { protocol: "https:", host: to?.host ?? u.hostname, port: to?.port ?? 443, servername: u.hostname, path: u.pathname + u.search, method: "GET", agent, ca, headers: { host: u.host, ...headers } },
      (res) => {
        res.on("data", () => undefined);
        res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`GET ${url}: ${res.statusCode}`))));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** The token a client gets once from the printed IDENTITY_ENDPOINT (App Service's dialect, as @azure/identity asks). */
async function tokenFrom(env: Record<string, string>, resource: string): Promise<string> {
  const u = new URL(env.IDENTITY_ENDPOINT);
  u.searchParams.set("resource", resource);
  u.searchParams.set("api-version", "2019-08-01");
  // The endpoint is the local proxy's loopback one (plain HTTP) or an emulated host reached through it (HTTPS).
  const agent = u.protocol === "https:" ? new HttpsProxyAgent(env.HTTPS_PROXY, { ca: readFileSync(env.NODE_EXTRA_CA_CERTS, "utf8") }) : undefined;
  const body = await new Promise<string>((resolve, reject) => {
    (u.protocol === "https:" ? https : http)
      .get(u, { agent, ca: readFileSync(env.NODE_EXTRA_CA_CERTS, "utf8"), headers: { "x-identity-header": env.IDENTITY_HEADER } }, (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`token: ${res.statusCode} ${text}`))));
      })
      .on("error", reject);
  });
  agent?.destroy();
  return JSON.parse(body).access_token;
}

/**
 * The four raw rows (direct and through proxy azure, kept and new
 * connections) in interleaved rounds, then the SDK's in its own process.
 */
export async function sdkPathBench(o: {
  url: string;
  /** The emulator's address for Azure's host names, its CA, and a real token for the direct rows. */
  emulator: { port: number; caPem: string; caFile: string; proxyPort: number };
  directToken: string;
  /** The exports of a running `azgate proxy azure`. */
  env: Record<string, string>;
  requestsC1: number;
  requestsC16: number;
  rounds: number;
  warmup: number;
}): Promise<{ raw: SdkRow[]; sdk: SdkRow[] }> {
  const localCa = readFileSync(o.env.NODE_EXTRA_CA_CERTS, "utf8");
  const proxied = await tokenFrom(o.env, "https://management.azure.com/");
  const toEmulator = () => ({ host: "127.0.0.1", port: o.emulator.port });
  const kept = new https.Agent({ keepAlive: true, maxSockets: 16 });
  const keptProxy = new HttpsProxyAgent(o.env.HTTPS_PROXY, { keepAlive: true, maxSockets: 16 });
  const paths: [string, Once, string][] = [
    ["direct, kept connections", () => get(o.url, kept, o.emulator.caPem, { authorization: `Bearer ${o.directToken}` }, toEmulator), "direct-kept"],
    ["through proxy azure, kept connections", () => get(o.url, keptProxy, localCa, { authorization: `Bearer ${proxied}` }), "direct-kept"],
    ["direct, a new connection per request", () => get(o.url, false, o.emulator.caPem, { authorization: `Bearer ${o.directToken}` }, toEmulator), "direct-new"],
    // A new HttpsProxyAgent per request, as core-rest-pipeline's is per client without keep-alive: a new CONNECT and handshake each time.
    ["through proxy azure, a new connection per request", () => get(o.url, new HttpsProxyAgent(o.env.HTTPS_PROXY), localCa, { authorization: `Bearer ${proxied}` }), "direct-new"],
  ];
  for (const [, once] of paths) await warm(once, o.warmup);
  const rounds = paths.map(() => ({ p50: [] as number[], rps: [] as number[] }));
  await inRounds(paths.length, o.rounds, async (i) => {
    const c1 = await load(paths[i][1], 1, Math.ceil(o.requestsC1 / o.rounds));
    rounds[i].p50.push(pct(c1.times, 50));
    rounds[i].rps.push((await load(paths[i][1], 16, Math.ceil(o.requestsC16 / o.rounds))).rps);
  }, paths.map(([name]) => `SDK path, ${name}`));
  kept.destroy();
  keptProxy.destroy();
  const baseOf = (key: string) => paths.findIndex(([, , k], j) => k === key && j % 2 === 0);
  const raw = paths.map(([name, , key], i): SdkRow => {
    const base = baseOf(key);
    const isBase = base === i;
    return {
      name,
      p50: median(rounds[i].p50),
      added: isBase ? null : median(rounds[i].p50.map((v, r) => v - rounds[base].p50[r])),
      rps: median(rounds[i].rps),
      share: isBase ? null : median(rounds[i].rps.map((v, r) => (100 * v) / rounds[base].rps[r])),
    };
  });

  // The real SDK, in a process of its own per round (figures taken inside, after a warm-up): direct, through the
  // emulator's own CONNECT proxy (a plain TCP tunnel, so the SDK behaves as behind any HTTPS_PROXY) with a fixed
  // token; and through proxy azure with ManagedIdentityCredential. Interleaved, each round's difference taken.
  const script = path.join(tempDir("azgate-bench-sdk-"), "sdk-client.mjs");
  writeFileSync(script, SDK_CLIENT);
  const directEnv = { HTTPS_PROXY: `http://127.0.0.1:${o.emulator.proxyPort}`, NODE_EXTRA_CA_CERTS: o.emulator.caFile, DIRECT_TOKEN: o.directToken };
  const sdkRuns = [[], []] as { p50: number; rps: number }[][];
  const [c1, c16] = [Math.ceil(o.requestsC1 / o.rounds), Math.ceil(o.requestsC16 / o.rounds)];
  await inRounds(2, o.rounds, async (i) => void sdkRuns[i].push(await runSdk(script, i === 0 ? directEnv : o.env, c1, c16)), ["@azure/arm-resources, direct", "@azure/arm-resources through proxy azure"]);
  const [d, a] = sdkRuns;
  const sdk: SdkRow[] = [
    { name: "@azure/arm-resources, direct (through a plain CONNECT tunnel to the emulator)", p50: median(d.map((x) => x.p50)), added: null, rps: median(d.map((x) => x.rps)), share: null },
    {
      name: "@azure/arm-resources through proxy azure (as it behaves behind HTTPS_PROXY: a new connection per request)",
      p50: median(a.map((x) => x.p50)),
      added: median(a.map((x, r) => x.p50 - d[r].p50)),
      rps: median(a.map((x) => x.rps)),
      share: median(a.map((x, r) => (100 * x.rps) / d[r].rps)),
    },
  ];
  return { raw, sdk };
}

function runSdk(script: string, env: Record<string, string>, c1: number, c16: number): Promise<{ p50: number; rps: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, String(c1), String(c16)], { env: { ...process.env, ...env, AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential" }, stdio: ["ignore", "pipe", "inherit"], cwd: path.resolve(import.meta.dirname, "..") });
    let out = "";
    child.stdout!.on("data", (d) => (out += d));
    child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").at(-1)!)) : reject(new Error(`the SDK client exited ${code}: ${out}`))));
  });
}

/** The SDK client: resource groups listed with ResourceManagementClient, c1 then c16; prints {p50, rps}. */
const SDK_CLIENT = `
import { createRequire } from "node:module";
const require = createRequire(${JSON.stringify(path.resolve(import.meta.dirname, "..") + "/")});
const { ManagedIdentityCredential } = require("@azure/identity");
const { ResourceManagementClient } = require("@azure/arm-resources");
const [c1, c16] = process.argv.slice(2).map(Number);
const fixed = process.env.DIRECT_TOKEN;
const credential = fixed ? { getToken: async () => ({ token: fixed, expiresOnTimestamp: Date.now() + 3_600_000 }) } : new ManagedIdentityCredential();
const client = new ResourceManagementClient(credential, "00000000-0000-0000-0000-000000000000");
const once = async () => { for await (const _ of client.resourceGroups.list()) void _; };
for (let i = 0; i < 50; i++) await once();
const times = [];
for (let i = 0; i < c1; i++) { const t = performance.now(); await once(); times.push(performance.now() - t); }
times.sort((a, b) => a - b);
let next = 0;
const t0 = performance.now();
await Promise.all(Array.from({ length: 16 }, async () => { while (next++ < c16) await once(); }));
console.log(JSON.stringify({ p50: times[Math.floor(times.length / 2)], rps: c16 / ((performance.now() - t0) / 1000) }));
`;
