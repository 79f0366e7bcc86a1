/**
 * Rotating the cluster's CAs under load, with real processes (issue 34's
 * "done when"): a proxy, a real agent (Workload ID against the emulator), a
 * running `azgate proxy azure` and a load generator sending ARM GETs at 16
 * kept-alive connections through it the whole time. A full manual rotation of
 * the host CA and of the user CA, a semi-automatic one over a short grace
 * period, and a rollback from update_servers: zero failed requests, and the
 * real `az group list` works before, during (every phase) and after. An agent
 * stopped before init and started after standby is refused with the new pin
 * and the command; after joining again as told it serves. Then the same host
 * and user rotations on two PostgreSQL replicas: one replica advances the
 * phase, the other follows and serves the workstation. Each phase's load runs a few seconds, not minutes: zero
 * failed requests is the assertion. The load is paced (PACE_MS) and the
 * waits ask the rotation report in process, so the file fits in about 90 s
 * on two cores. (The phase logic case by case is
 * test/rotation-proxy.test.ts, in process.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, spawnAgent, startClusterWithAgent, workstationHome, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, parseExports, startCli, tempDir, type LongRunningCli } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";
import { stopAll } from "../helpers/stop.ts";
import { placeholderFrom, startArmLoad, type ArmLoad } from "../helpers/arm-load.ts";
import { startReplicaCluster, type ReplicaCluster } from "../helpers/replicas.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { loadAgentState } from "../../src/agent/state.ts";
import { ApiClient } from "../../src/api/client.ts";
import { loadCredentials, loadProfile, saveProfile } from "../../src/client/profile.ts";
import { caPin } from "../../src/pki/pin.ts";
import { x509 } from "../../src/pki/x509.ts";
import type { PingResponse } from "../../src/api/types.ts";

const fx = useEmulator({ projectToken: true });

const READER = IDENTITY("teleport-reader");
const CONNECTIONS = 16;
/**
 * Each connection's pause between requests. Unpaced, the 16 connections take both cores (about 200
 * requests a second through five processes) and every CLI run and az call of the rotation waits behind
 * them (the file took 200 s); paced, requests are still in flight through every phase change.
 */
const PACE_MS = 100;

/** A workstation with a running `proxy azure` and the load through it. */
interface Workstation {
  home: string;
  proxy: LongRunningCli;
  exportsText: string;
  env: Record<string, string>;
  load: ArmLoad;
}

async function openWorkstation(home: string): Promise<Workstation> {
  const login = await cli(["apps", "login", "azure-cli", "--azure-identity", READER], { home, env: { HOME: home } });
  expect(login.code, login.stderr).toBe(0);
  const proxy = await startCli(["proxy", "azure", "--format", "unix", "--debug"], { home, env: { HOME: home }, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
  const exportsText = proxy.output().split("\n").filter((l) => l.startsWith("export ")).join("\n");
  const env = parseExports(exportsText);
  const w: Workstation = { home, proxy, exportsText, env, load: await loadThrough(env) };
  await w.load.more();
  return w;
}

/** A fresh load through a workstation's running proxy azure, with the placeholder its token endpoint gives now. */
async function loadThrough(env: Record<string, string>): Promise<ArmLoad> {
  return startArmLoad({ proxyPort: Number(new URL(env.HTTPS_PROXY).port), caPem: readFileSync(env.NODE_EXTRA_CA_CERTS, "utf8"), token: await placeholderFrom(env), connections: CONNECTIONS, paceMs: PACE_MS });
}

/**
 * The load's figures so far, and a fresh load started before anything is asserted on them: a failure in one
 * case is that case's, not a "stalled" load in every case after it.
 */
async function takeLoad(w: Workstation): Promise<{ ok: number; failures: string[] }> {
  const result = await w.load.stop();
  w.load = await loadThrough(w.env);
  return result;
}

/**
 * A case that failed mid-rotation leaves it under way; the next case would be refused ("a rotation is under way").
 * Rolled back (or, past rollback, ended) here, so one failure reads as one.
 */
async function endRotations(dataDir: string, home: string): Promise<void> {
  const report = await rotationReport(dataDir);
  for (const type of ["host", "user"] as const) {
    const phase = report[type].phase;
    if (phase === "standby") continue;
    if (phase !== "rollback") await cli(["admin", "--data-dir", dataDir, "auth", "rotate", "--type", type, "--manual", "--phase", "rollback"], { home });
    await cli(["admin", "--data-dir", dataDir, "auth", "rotate", "--type", type, "--manual", "--phase", "standby"], { home });
  }
}

/** The real az, in a second shell that sourced the exports. */
async function azGroupList(w: Workstation): Promise<void> {
  const res = await runCommand("/bin/sh", ["-c", `${w.exportsText}\naz group list -o json`], { HOME: w.home });
  expect(res.code, res.stderr).toBe(0);
  expect(JSON.parse(res.stdout).map((g: { name: string }) => g.name)).toContain("myResourceGroup");
}

/** `azgate admin` on the proxy host (the data dir's local admin). */
async function admin(dataDir: string, home: string, args: string[]): Promise<string> {
  const res = await cli(["admin", "--data-dir", dataDir, ...args], { home });
  expect(res.code, `azgate admin ${args.join(" ")}: ${res.stderr}`).toBe(0);
  return res.stdout;
}

/** The rotation report `admin status` prints (GET /v1/admin/rotation), asked in process as the data dir's local admin. */
async function rotationReport(dataDir: string): Promise<{ host: { phase: string }; user: { phase: string }; waiting: { who: string; why: string }[] }> {
  // Read each time: the proxy writes the local admin's credentials again when a rotation moves its CAs.
  const local = (await readLocalAdmin(dataDir))!;
  return new ApiClient({ baseUrl: local.url, cert_sha256: local.cert_sha256, ca_pem: local.ca_pem }, { keyPem: local.key_pem, certPem: local.cert_pem }).call("GET", "/v1/admin/rotation");
}

/**
 * Waits until the rotation report lists nobody who has not moved yet (agents confirmed the CAs, renewed; app
 * sessions reissued), but for the agents in `away` (host IDs): stopped on purpose, they are listed until they
 * join again. Asked in process, not by spawning `admin status` every few hundred milliseconds.
 */
async function everyoneMoved(dataDir: string, away: string[] = [], timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    // The proxy switches its certificate and rewrites the local admin's pin as a phase moves: read in between,
    // the file's pin and the served certificate differ for a moment. Asked again (the file read again), as below.
    const report = await rotationReport(dataDir).catch((e) => {
      if ((e as { code?: string }).code !== "connection_failed" || Date.now() > until) throw e;
      return null;
    });
    if (!report) {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    const { waiting } = report;
    const left = waiting.filter((x) => !away.some((id) => x.who.includes(id)));
    if (!left.length) return;
    if (Date.now() > until) throw new Error(`still not moved after ${timeoutMs} ms: ${left.map((x) => `${x.who}: ${x.why}`).join("; ")}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const PHASES = ["init", "update_clients", "update_servers", "standby"] as const;

describe("rotating the CAs of a running cluster, under load", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let sleeper: AgentProcess;
  /** The stopped agent's host ID: admin status lists it as not moved until it joins again. */
  let sleeperId: string | undefined;
  let w: Workstation;
  const dataDir = () => cluster.proxy.dataDir;
  const ping = () => new ApiClient({ baseUrl: `https://127.0.0.1:${cluster.proxy.port}`, insecure: true }).call<PingResponse>("GET", "/v1/ping");

  /** One phase: the step (the operator's command), everyone following, the real az (unless `az` is false), and more load. */
  async function step(type: "host" | "user", phase: string, o: { az?: boolean } = {}): Promise<void> {
    const out = await admin(dataDir(), cluster.home, ["auth", "rotate", "--type", type, "--manual", "--phase", phase]);
    expect(out).toContain(`The ${type} CA is in phase ${phase}.`);
    await everyoneMoved(dataDir(), sleeperId ? [sleeperId] : []);
    // The real az and more of the load side by side: both must go through.
    await Promise.all([o.az !== false && azGroupList(w), w.load.more()]);
  }

  beforeAll(async () => {
    ({ cluster, agent } = await startClusterWithAgent(fx));
    const alice = await cluster.user("alice", ["azure-cli-access"], [READER]);
    // An agent that will be stopped before the host CA rotates, and started after.
    sleeper = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await sleeper.waitFor(/tunnel to .* is up/);
    sleeperId = (await loadAgentState(sleeper.dataDir))!.identity.host_id;
    w = await openWorkstation(await workstationHome(cluster, alice));
  }, 120_000);
  afterEach(() => endRotations(dataDir(), cluster.home));
  afterAll(() => stopAll(w?.load, w?.proxy, sleeper, agent, cluster));

  it("a full manual rotation of the host CA: az group list in every phase, zero failed requests; the proxy and the agent end on the new CA", async () => {
    await azGroupList(w);
    await sleeper.stop();
    const before = (await ping()).ca_pins;
    for (const phase of PHASES) await step("host", phase);
    const after = (await ping()).ca_pins;
    expect(after).toHaveLength(1);
    expect(after[0]).not.toBe(before[0]);
    expect(agent.output()).toMatch(/host certificate renewed[\s\S]*reopened with the renewed certificate/);
    // The workstation's profile followed (the running proxy azure stored what it learnt): it trusts the new host CA alone now.
    const profile = await profileOf(w.home);
    expect(profile.ca_pems).toBeUndefined();
    expect(await caPin(new x509.X509Certificate(profile.ca_pem!))).toBe(after[0]);
    const { failures, ok } = await takeLoad(w);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(200);
  }, 240_000);

  it("a full manual rotation of the user CA: the running proxy azure moves to the new CA on its own, azgate status says the profile took it; the old login certificate is refused with ca_retired after standby", async () => {
    const oldCreds = await credentialsOf(w.home);
    for (const phase of PHASES) {
      await step("user", phase);
      if (phase === "update_clients") {
        const status = await cli(["status"], { home: w.home, env: { HOME: w.home } });
        expect(status.code, status.stderr).toBe(0);
        expect(status.stdout).toMatch(/Certificate from:\s+azgate user CA, generation 1/);
      }
    }
    expect(w.proxy.output()).toContain("app session certificate reissued by the cluster's rotated user CA");
    const stale = await new ApiClient({ baseUrl: `https://127.0.0.1:${cluster.proxy.port}`, insecure: true }, oldCreds).call("GET", "/v1/whoami").catch((e: Error & { code?: string }) => e);
    expect((stale as { code?: string }).code).toBe("ca_retired");
    expect((stale as Error).message).toContain("run azgate login again");
    const { failures } = await takeLoad(w);
    expect(failures).toEqual([]);
  }, 240_000);

  it("a semi-automatic rotation of the user CA over a 12 s grace period: the phases follow on their own, zero failed requests", async () => {
    const out = await admin(dataDir(), cluster.home, ["auth", "rotate", "--type", "user", "--grace-period", "12s"]);
    expect(out).toContain("The user CA is in phase init (the next phases follow on their own).");
    // The operator's view while it runs.
    expect(await admin(dataDir(), cluster.home, ["status"])).toMatch(/User CA:\s+rotating: phase \w+ \(semi-automatic\)/);
    // The real az while the phases move (a phase every 4 s), and the phases as they come, asked every 200 ms.
    const during = azGroupList(w);
    const seen: string[] = [];
    const until = Date.now() + 30_000;
    for (let phase = ""; phase !== "standby"; await new Promise((r) => setTimeout(r, 200))) {
      phase = (await rotationReport(dataDir())).user.phase;
      if (seen.at(-1) !== phase) seen.push(phase);
      if (Date.now() > until) throw new Error(`the scheduled rotation did not end: phases seen ${seen.join(", ")}`);
    }
    await during;
    // The phases in their order, one at least between init and standby (a poll may miss one on a loaded machine).
    expect(seen.at(-1)).toBe("standby");
    const order = seen.map((p) => PHASES.indexOf(p as (typeof PHASES)[number]));
    expect(order.every((o, i) => o >= 0 && (i === 0 || o > order[i - 1])), seen.join(", ")).toBe(true);
    expect(seen.some((p) => p === "update_clients" || p === "update_servers")).toBe(true);
    await azGroupList(w);
    const { failures } = await takeLoad(w);
    expect(failures).toEqual([]);
  }, 120_000);

  it("a rollback from update_servers returns to the old host CA with zero failed requests", async () => {
    const before = (await ping()).ca_pins;
    // The real az where the rollback matters: served by the new CA's certificate, back on the old one, and after.
    for (const phase of ["init", "update_clients", "update_servers", "rollback", "standby"]) await step("host", phase, { az: ["update_servers", "rollback", "standby"].includes(phase) });
    expect((await ping()).ca_pins).toEqual(before);
    const { failures } = await takeLoad(w);
    expect(failures).toEqual([]);
  }, 240_000);

  it("an agent stopped before init and started after standby is refused with the new pin and the command; joined again as told, it serves", async () => {
    const pin = (await ping()).ca_pins[0];
    const back = spawnAgent({ proxy: cluster.proxy, fx, dataDir: sleeper.dataDir });
    const code = await new Promise<number | null>((r) => back.child.once("exit", (c) => r(c)));
    expect(code).not.toBe(0);
    expect(back.output()).toContain(`now presents ${pin}`);
    expect(back.output()).toContain("while it was away");
    expect(back.output()).toMatch(new RegExp(`--token <token> --ca-pin ${pin}`));
    // As told: a new token and the new pin (checked here against admin status, as the message asks).
    expect(await admin(dataDir(), cluster.home, ["status"])).toContain(pin);
    const token = await admin(dataDir(), cluster.home, ["tokens", "add", "--type", "app", "--format", "text"]);
    const rejoined = spawnAgent({ proxy: { ...cluster.proxy, pin }, fx, dataDir: sleeper.dataDir, token: token.trim() });
    sleeper = rejoined;
    await rejoined.waitFor(/tunnel to .* is up/);
    // It serves: with the other agent gone, az goes through it.
    await agent.stop();
    await azGroupList(w);
  }, 120_000);
});

/** A workstation's profile, read from its azgate home. */
async function profileOf(home: string) {
  const prev = process.env.AZGATE_HOME;
  process.env.AZGATE_HOME = home;
  try {
    return (await loadProfile())!;
  } finally {
    if (prev === undefined) delete process.env.AZGATE_HOME;
    else process.env.AZGATE_HOME = prev;
  }
}

/** A workstation's login key and certificate. */
async function credentialsOf(home: string) {
  const profile = await profileOf(home);
  const prev = process.env.AZGATE_HOME;
  process.env.AZGATE_HOME = home;
  try {
    return (await loadCredentials(profile))!;
  } finally {
    if (prev === undefined) delete process.env.AZGATE_HOME;
    else process.env.AZGATE_HOME = prev;
  }
}

describe("the same rotation on two PostgreSQL replicas", () => {
  let cluster: ReplicaCluster;
  let w: Workstation;
  const pingOf = (port: number) => new ApiClient({ baseUrl: `https://127.0.0.1:${port}`, insecure: true }).call<PingResponse>("GET", "/v1/ping");

  beforeAll(async () => {
    cluster = await startReplicaCluster(fx);
    const local = (await readLocalAdmin(cluster.replicas[0].dataDir))!;
    // alice's workstation, straight to the second replica: the phases are advanced on the first, so every
    // request of the load and of az is served by the replica that only follows the record.
    const home = tempDir("azgate-home-");
    await saveProfile({ proxy: `127.0.0.1:${cluster.replicas[1].port}`, user: "alice", cluster: "e2e", ca_pem: local.ca_pem }, cluster.aliceCredentials.keyPem, cluster.aliceCredentials.certPem, home);
    w = await openWorkstation(home);
  }, 180_000);
  afterEach(() => endRotations(cluster.replicas[0].dataDir, w.home));
  afterAll(() => stopAll(w?.load, w?.proxy, cluster));

  /** Each phase of a manual rotation advanced on the first replica; the second follows within seconds and serves through it. */
  async function rotateOnFirst(type: "host" | "user", o: { azEach: boolean }): Promise<void> {
    const [first, second] = cluster.replicas;
    for (const phase of PHASES) {
      const out = await admin(first.dataDir, w.home, ["auth", "rotate", "--type", type, "--manual", "--phase", phase]);
      expect(out).toContain(`The ${type} CA is in phase ${phase}.`);
      // The other replica serves the same phase (its ping names the same phases and host pins) within seconds.
      const seenBy = async (port: number) => {
        const p = await pingOf(port);
        return `${p.rotation?.host ?? "standby"} ${p.rotation?.user ?? "standby"} ${p.ca_pins.join()}`;
      };
      const want = await seenBy(first.port);
      expect(want.split(" ")[type === "host" ? 0 : 1]).toBe(phase);
      const until = Date.now() + 10_000;
      while ((await seenBy(second.port)) !== want) {
        if (Date.now() > until) throw new Error(`replica ${second.port} did not follow ${type} phase ${phase}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // Agents (records shared by both) and the app session (open on the second) have moved.
      await everyoneMoved(first.dataDir);
      await everyoneMoved(second.dataDir);
      await Promise.all([(o.azEach || phase === "standby") && azGroupList(w), w.load.more()]);
    }
  }

  it("one replica advances each phase of a host CA rotation, the other follows within seconds and serves a workstation through it: zero failed requests, az group list in every phase", async () => {
    await azGroupList(w);
    await rotateOnFirst("host", { azEach: true });
    const { failures, ok } = await takeLoad(w);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(200);
  }, 240_000);

  it("the same for the user CA: the session on the follower gets its certificate from the new CA there; zero failed requests, az group list after", async () => {
    await rotateOnFirst("user", { azEach: false });
    expect(w.proxy.output()).toContain("app session certificate reissued by the cluster's rotated user CA");
    const { failures } = await takeLoad(w);
    expect(failures).toEqual([]);
  }, 240_000);
});
