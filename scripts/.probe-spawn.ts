// temporary probe (not committed): when does dist/azgate az spawn az, and when does it exit?
import path from "node:path";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { startEmulator } from "../src/emulator/server.ts";
import { cli, tempDir } from "../test/helpers/azgate.ts";
import { saveProfile } from "../src/client/profile.ts";
import { IDENTITY, spawnAgent, startCluster } from "../test/helpers/cluster.ts";
import type { EmulatorFixture } from "../test/helpers/emulator.ts";

const dir = tempDir("probe-");
const emu = await startEmulator({ dir });
const tokenFile = path.join(dir, "sa-token");
const projection = await emu.issuer.project(tokenFile, { namespace: "teleport-ns", serviceAccount: "teleport-azure-cli-aks-service-account" });
const fx = { emu, dir, tokenFile } as EmulatorFixture;
const cluster = await startCluster();
const agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
await agent.waitFor(/tunnel to .* is up/);
await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: bench}\nspec: {allow: {app_labels: {"*": "*"}, azure_identities: ["${IDENTITY("teleport-reader")}"]}}\n` });
const user = await cluster.user("bench", ["bench"]);
const home = tempDir("probe-home-");
await saveProfile({ proxy: cluster.proxy.addr, user: user.name, cluster: "e2e", ca_pem: cluster.target.ca_pem }, user.keyPem, user.certPem, home);
const login = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"], { home, env: { HOME: home } });
console.log("apps login", login.code);
const binary = path.resolve(import.meta.dirname, "../dist/azgate");
const stamp = path.join(dir, "stamp");
const spawnAt: number[] = [];
const exitAt: number[] = [];
for (let i = 0; i < 11; i++) {
  const t0 = BigInt(Date.now()) * 1_000_000n;
  const t = performance.now();
  const r = spawnSync(binary, ["az", "version"], { env: { ...process.env, HOME: home, AZGATE_HOME: home, PATH: `/tmp/probe:${process.env.PATH}`, AZ_STAMP: stamp } });
  exitAt.push(performance.now() - t);
  if (r.status !== 0) console.log(r.stderr.toString());
  spawnAt.push(Number(BigInt(readFileSync(stamp, "utf8").trim()) - t0) / 1e6);
}
const med = (x: number[]) => [...x].sort((a, b) => a - b)[Math.floor(x.length / 2)];
console.log(`az spawned at ${med(spawnAt).toFixed(0)} ms (median of 11), azgate exited at ${med(exitAt).toFixed(0)} ms`);
const help: number[] = [];
for (let i = 0; i < 11; i++) { const t = performance.now(); execFileSync(binary, ["--help"], { stdio: "ignore" }); help.push(performance.now() - t); }
console.log(`--help ${med(help).toFixed(0)} ms`);
await agent.stop(); await cluster.stop(); projection.stop(); await emu.close(); process.exit(0);
