/**
 * `azgate demo --check`: the path a person takes after `azgate demo`, run
 * and judged step by step: apps ls, apps login, the local proxy, a separate
 * client process with @azure/identity and an Azure SDK pipeline, the audit
 * trail, the real-token invariant, and (when installed) the real az.
 */
import { spawn } from "node:child_process";
import { currentSession, loginApp, startLocalProxy } from "../client/azure-session.ts";
import { azVersion, findAz, usesMsal } from "../client/az.ts";
import { selfCommand } from "../runtime/index.ts";
import type { AppView } from "../api/types.ts";
import type { ClientStep } from "./check-client.ts";
import type { RunningDemo } from "./start.ts";
import { DEMO_APP, DEMO_IDENTITY_NAME } from "./seed.ts";

export type Outcome = "PASS" | "FAIL" | "SKIP";

export async function checkDemo(demo: RunningDemo, report: (outcome: Outcome, step: string, detail: string) => void): Promise<boolean> {
  let failed = false;
  const step = async (name: string, fn: () => Promise<string>): Promise<boolean> => {
    try {
      report("PASS", name, await fn());
      return true;
    } catch (e) {
      failed = true;
      report("FAIL", name, (e as Error).message);
      return false;
    }
  };
  const session = await currentSession();

  await step(`apps ls lists ${DEMO_APP}`, async () => {
    const { items } = await session.client.call<{ items: AppView[] }>("GET", "/v1/apps");
    if (!items.some((a) => a.name === DEMO_APP)) throw new Error(`apps: ${items.map((a) => a.name).join(", ") || "none"}`);
    return items.map((a) => a.name).join(", ");
  });
  if (!(await step(`apps login ${DEMO_APP} --azure-identity ${DEMO_IDENTITY_NAME}`, async () => (await loginApp(session, DEMO_APP, DEMO_IDENTITY_NAME)).identity))) return false;

  const opened = await startLocalProxy(DEMO_APP);
  try {
    report("PASS", "local proxy with the emulated token endpoints", opened.env.HTTPS_PROXY);
    let clientOutput = "";
    let clientSteps: ClientStep[] = [];
    await step("a separate client process, configured only by the proxy azure exports", async () => {
      const run = await runSelf(["demo-client", "--subscription", demo.emulator.world.subscriptions[0].id], { ...process.env, ...opened.env });
      clientOutput = run.stdout + run.stderr;
      const steps = JSON.parse(run.stdout.trim().split("\n").pop() || "null") as ClientStep[] | null;
      if (!steps) throw new Error(`no result (exit ${run.code}): ${clientOutput.slice(0, 500)}`);
      clientSteps = steps;
      return `exit ${run.code}`;
    });
    // The client's own steps, under the line that started it.
    for (const s of clientSteps) {
      report(s.ok ? "PASS" : "FAIL", `  ${s.name}`, s.detail);
      if (!s.ok) failed = true;
    }
    await step("no token the emulator issued reached the client", async () => {
      const leaked = [...demo.emulator.issuedTokens].filter((t) => clientOutput.includes(t) || clientOutput.includes(t.split(".")[2]));
      if (leaked.length) throw new Error(`${leaked.length} real token(s) in the client's output`);
      return `${demo.emulator.issuedTokens.size} issued, none seen by the client`;
    });
    await step("the proxy audited each forwarded request", async () => {
      const events = await demo.proxy.ctx.audit.search({ user: demo.user, event: "app.request" });
      const done = events.filter((e) => e.event === "app.request");
      if (done.length === 0) throw new Error("no app.request event");
      const last = done[done.length - 1];
      return `${done.length} app.request event(s); last: ${last.method} ${last.host}${last.path} -> ${last.status}`;
    });
    await checkAz(opened.env, opened.identity, step, report);
  } finally {
    await opened.proxy.close();
  }
  return !failed;
}

async function checkAz(env: Record<string, string>, identity: string, step: (name: string, fn: () => Promise<string>) => Promise<boolean>, report: (o: Outcome, s: string, d: string) => void) {
  let az: string;
  try {
    az = findAz();
  } catch (e) {
    report("SKIP", "az group list through azgate", (e as Error).message);
    return;
  }
  const azEnv = { ...process.env, ...env, AZURE_CORE_COLLECT_TELEMETRY: "false" };
  await step("az login --identity through azgate", async () => {
    const version = await azVersion(az);
    const res = await runCommand(az, ["login", "--identity", usesMsal(version) ? "--resource-id" : "--username", identity, "-o", "none"], azEnv);
    if (res.code !== 0) throw new Error(res.stderr.trim().split("\n").pop() ?? `exit ${res.code}`);
    return `az ${version ?? "(version unknown)"}`;
  });
  await step("az group list through azgate", async () => {
    const res = await runCommand(az, ["group", "list", "-o", "json"], azEnv);
    if (res.code !== 0) throw new Error(res.stderr.trim().split("\n").pop() ?? `exit ${res.code}`);
    return (JSON.parse(res.stdout) as { name: string }[]).map((g) => g.name).join(", ");
  });
}

function runSelf(args: string[], env: NodeJS.ProcessEnv) {
  const [cmd, argv] = selfCommand(args);
  return runCommand(cmd, argv, env);
}

function runCommand(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
