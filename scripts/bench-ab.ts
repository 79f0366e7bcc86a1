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
 */
import "reflect-metadata";
import path from "node:path";
import { cpuTicksOf, inRounds, load, median } from "./bench-measure.ts";

const roots = (process.env.AB ?? "").split(",").filter(Boolean).map((r) => path.resolve(r));
if (roots.length !== 2) throw new Error("AB=<checkout A>,<checkout B> (each with node_modules)");
const ROUNDS = Number(process.env.ROUNDS ?? 16);
const PER = Number(process.env.PER ?? 300);
const CONC = Number(process.env.CONC ?? 1);
const URL_SUBS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01";

const { startEmulator } = await import(path.join(roots[0], "src/emulator/server.ts"));
const { tempDir } = await import(path.join(roots[0], "test/helpers/azgate.ts"));
const dir = tempDir("azgate-ab-");
const emu = await startEmulator({ dir });
const tokenFile = path.join(dir, "sa-token");
const projection = await emu.issuer.project(tokenFile, { namespace: "teleport-ns", serviceAccount: "teleport-azure-cli-aks-service-account" });
const fx = { emu, dir, tokenFile };

interface Side {
  root: string;
  once: () => Promise<void>;
  pids: number[];
  p50: number[];
  cpuMs: number[][];
  stop: () => Promise<void>;
}
const sides: Side[] = [];
for (const root of roots) {
  const { startCluster, spawnAgent, IDENTITY, readBody } = await import(path.join(root, "test/helpers/cluster.ts"));
  const reader = IDENTITY("teleport-reader");
  const cluster = await startCluster({});
  const agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
  await agent.waitFor(/tunnel to .* is up/);
  await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: bench}\nspec: {allow: {app_labels: {"*": "*"}, azure_identities: ["${reader}"]}}\n` });
  const user = await cluster.user("bench", ["bench"]);
  const app = await user.appSession("azure-cli", reader);
  const once = async () => {
    const res = await app.request(URL_SUBS);
    await readBody(res);
    if (res.status !== 200) throw new Error(`${root}: ${res.status}`);
  };
  for (let i = 0; i < 500; i++) await once(); // warm, as a proxy that runs for days is
  sides.push({ root, once, pids: [cluster.proxy.child.pid!, agent.child.pid!], p50: [], cpuMs: [[], []], stop: async () => (app.close(), await agent.stop(), await cluster.stop()) });
}

await inRounds(sides.length, ROUNDS, async (i) => {
  const s = sides[i];
  const before = s.pids.map(cpuTicksOf);
  const { times } = await load(s.once, CONC, PER);
  s.p50.push(median(times));
  // Ticks are 10 ms.
  s.pids.forEach((pid, j) => s.cpuMs[j].push(((cpuTicksOf(pid) - before[j]) * 10) / PER));
});

console.log(`${ROUNDS} interleaved rounds of ${PER} ARM GETs, ${CONC} at a time`);
for (const s of sides) console.log(`${s.root}: p50 ${median(s.p50).toFixed(3)} ms; CPU per request: proxy ${median(s.cpuMs[0]).toFixed(3)} ms, agent ${median(s.cpuMs[1]).toFixed(3)} ms`);
const diff = sides[1].p50.map((v, i) => v - sides[0].p50[i]);
console.log(`B - A, p50: median ${median(diff).toFixed(3)} ms (${diff.filter((d) => d < 0).length} of ${diff.length} rounds lower); rounds: ${diff.map((d) => d.toFixed(2)).join(" ")}`);
for (const s of sides) await s.stop();
projection.stop();
await emu.close();
process.exit(0);
