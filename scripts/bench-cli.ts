/**
 * npm run bench, the everyday commands as a person at a workstation feels
 * them: whole processes of the single binary, timed from spawn to exit, in
 * interleaved rounds, each beside the target it is held to:
 *  - `status` and `apps ls`: within twice `--help` plus one round trip to the
 *    proxy (a new TLS connection and one call, as a new process makes it);
 *  - `apps login` (which runs `az login --identity` through azgate): within
 *    1 s plus what `az login --identity` costs by itself, straight to the
 *    emulator;
 *  - `azgate az group list` while no agent serves the app: reported within
 *    1 s, saying so (az itself would retry the 503 for seconds).
 */
import https from "node:https";
import { runCommand, type RunResult } from "../test/helpers/run.ts";
import { spawnAgent, type TestCluster } from "../test/helpers/cluster.ts";
import type { EmulatorFixture } from "../test/helpers/emulator.ts";
import { median } from "./bench-measure.ts";

const ROUNDS = Number(process.env.BENCH_CLI_ROUNDS ?? 9);

export interface CliRow {
  name: string;
  ms: number;
  target?: { ms: number; says: string };
}

/** Runs each command once per round, `ROUNDS` times; the median wall-clock ms of each. */
async function interleaved(commands: [string, () => Promise<RunResult>, (r: RunResult) => boolean][]): Promise<number[]> {
  const times = commands.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, [name, once, ok]] of commands.entries()) {
      const t = performance.now();
      const res = await once();
      times[i].push(performance.now() - t);
      if (!ok(res)) throw new Error(`${name}: exit ${res.code}\n${res.stdout}${res.stderr}`);
    }
  }
  return times.map(median);
}

/** A new TLS connection to the proxy and one GET, as a new process makes it (no connection reused). */
function roundTrip(baseUrl: string, caPem: string): Promise<number> {
  const t = performance.now();
  return new Promise((resolve, reject) => {
    const req = https.get(`${baseUrl}/v1/ping`, { ca: caPem, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(performance.now() - t));
    });
    req.on("error", reject);
  });
}

export async function everydayCommands(opts: {
  binary: string;
  cluster: TestCluster;
  fx: EmulatorFixture;
  /** An azgate home logged in as a user whose roles allow every app and the reader identity. */
  home: string;
  /** The environment in which az logs in straight to the emulator (its IMDS). */
  directAzEnv: Record<string, string>;
  readerClientId: string;
}): Promise<CliRow[]> {
  const { binary, home } = opts;
  const env = { HOME: home, AZGATE_HOME: home, AZURE_CORE_COLLECT_TELEMETRY: "false", NO_COLOR: "1" };
  const azgate = (...args: string[]) => () => runCommand(binary, args, env);
  const ok = (r: RunResult) => r.code === 0;

  // An app whose only agent is stopped after apps login: what a user meets when the agent is down.
  const agent = spawnAgent({ proxy: opts.cluster.proxy, fx: opts.fx, token: await opts.cluster.joinToken(), app: "bench-down" });
  await agent.waitFor(/tunnel to .* is up/);
  const first = await azgate("apps", "login", "bench-down", "--azure-identity", "teleport-reader")();
  if (first.code !== 0) throw new Error(`apps login bench-down: ${first.stderr}`);
  await agent.stop();

  const rtts: number[] = [];
  for (let i = 0; i < ROUNDS; i++) rtts.push(await roundTrip(opts.cluster.target.baseUrl, opts.cluster.target.ca_pem!));
  const rtt = median(rtts);

  const [help, status, appsLs, appsLogin, azLogin, down] = await interleaved([
    ["--help", azgate("--help"), ok],
    ["status", azgate("status"), ok],
    ["apps ls", azgate("apps", "ls"), ok],
    ["apps login", azgate("apps", "login", "azure-cli", "--azure-identity", "teleport-reader"), ok],
    ["az login --identity", () => runCommand("az", ["login", "--identity", "--username", opts.readerClientId, "-o", "none"], opts.directAzEnv), ok],
    ["az with no agent", azgate("az", "--app", "bench-down", "group", "list", "-o", "none"), (r) => r.code === 1 && r.stderr.includes('no agent serves app "bench-down" right now')],
  ]);
  const twiceHelp = { ms: 2 * help + rtt, says: "2x --help + one round trip" };
  return [
    { name: "dist/azgate --help", ms: help },
    { name: "one round trip to the proxy (new TLS connection, GET /v1/ping; in this process)", ms: rtt },
    { name: "dist/azgate status (asks the proxy)", ms: status, target: twiceHelp },
    { name: "dist/azgate apps ls", ms: appsLs, target: twiceHelp },
    { name: "az login --identity, straight to the emulator", ms: azLogin },
    { name: "dist/azgate apps login azure-cli (runs az login --identity through azgate)", ms: appsLogin, target: { ms: azLogin + 1000, says: "az login --identity + 1 s" } },
    { name: "dist/azgate az group list, no agent serving the app (says so, exit 1)", ms: down, target: { ms: 1000, says: "1 s" } },
  ];
}

export function printCliRows(rows: CliRow[]): void {
  console.log(`\n| everyday command (median of ${ROUNDS} interleaved rounds, whole processes) | ms | target | met |\n|---|---:|---|---|`);
  for (const r of rows) console.log(`| ${r.name} | ${r.ms.toFixed(0)} | ${r.target ? `<= ${r.target.ms.toFixed(0)} (${r.target.says})` : ""} | ${r.target ? (r.ms <= r.target.ms ? "yes" : "NO") : ""} |`);
}
