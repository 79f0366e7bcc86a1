/**
 * What azgate refuses on the workstation path, end to end with the Debian az,
 * a real proxy, a real agent and the emulator: a role that denies every
 * identity, a role taken away after login, a deleted user, an expired app
 * certificate, and a machine without az.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, startClusterWithAgent, workstationHome, type AgentProcess, type TestCluster, type UserSession } from "../helpers/cluster.ts";
import { cli, parseExports, startCli } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";
import { rawRequest } from "../helpers/local-proxy.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");

describe("refusals on the workstation path", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;

  /** A logged-in workstation for `user`: its own azgate home, used by `azgate ...` calls. */
  async function workstation(user: UserSession) {
    const home = await workstationHome(cluster, user);
    return { home, azgate: (args: string[], env: Record<string, string> = {}) => cli(args, { home, env: { HOME: home, ...env } }) };
  }

  beforeAll(async () => {
    ({ cluster, agent } = await startClusterWithAgent(fx, ["azure-cli-access-internal.yaml", "no-azure-identities.yaml"]));
  });
  afterAll(() => stopAll(agent, cluster));

  it("a no-azure-identities role (deny '*') wins over every allow, at apps login and at the proxy", async () => {
    const erin = await cluster.user("erin", ["azure-cli-access", "no-azure-identities"], [READER]);
    const ws = await workstation(erin);
    const ls = await ws.azgate(["apps", "ls"]);
    expect(ls.stdout).toContain("azure-cli");
    for (const flag of [[], ["--azure-identity", "teleport-reader"]]) {
      const res = await ws.azgate(["apps", "login", "azure-cli", ...flag]);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain("ERROR: no Azure identities available, check your permissions");
    }
    // A client that skips azgate's own check is refused by the proxy.
    await expect(erin.appSession("azure-cli", READER)).rejects.toThrow(/denied/);
  });

  it("a role taken away after login refuses the next request", async () => {
    const bob = await cluster.user("bob", ["azure-cli-access"], [READER]);
    const ws = await workstation(bob);
    expect((await ws.azgate(["apps", "login", "azure-cli"])).code).toBe(0);
    expect((await ws.azgate(["az", "group", "list", "-o", "json"])).code).toBe(0);
    await cluster.admin.call("PATCH", "/v1/admin/users/bob", { roles: ["auditor"] });
    const res = await ws.azgate(["az", "group", "list", "-o", "json"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('ERROR: (access_denied) azgate: no role allows app "azure-cli"');
  });

  it("a user deleted after login is refused on the next request", async () => {
    const carol = await cluster.user("carol", ["azure-cli-access"], [READER]);
    const ws = await workstation(carol);
    expect((await ws.azgate(["apps", "login", "azure-cli"])).code).toBe(0);
    await cluster.admin.call("DELETE", "/v1/admin/resources/user/carol");
    const res = await ws.azgate(["az", "group", "list", "-o", "json"]);
    expect(res.code).toBe(1);
    // The proxy refuses the session's tunnel at once: azgate az says why and stops az (no retries against a 401).
    expect(res.stderr).toContain('ERROR: user "carol" no longer exists');
    expect(res.stderr).not.toContain("Is the azgate proxy up?");
  });

  it("an expired app certificate: the running local proxy and azgate az both refuse", { timeout: 90_000 }, async () => {
    // The app certificate never outlives the login certificate: log in for 30 s, enough for apps login
    // (which runs az login) and one az command on a machine running two test files at once (15 s was
    // not, once); then the real processes must see it end. The wait is real: the processes read the clock.
    const dave = await cluster.user("dave", ["azure-cli-access"], [READER], { ttlMs: 30_000 });
    const expires = Date.now() + 30_000;
    const ws = await workstation(dave);
    expect((await ws.azgate(["apps", "login", "azure-cli"])).code).toBe(0);
    const proxy = await startCli(["proxy", "azure", "--format", "unix"], { home: ws.home, env: { HOME: ws.home }, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
    try {
      const exports = proxy.output().split("\n").filter((l) => l.startsWith("export ")).join("\n");
      const before = await runCommand("/bin/sh", ["-c", `${exports}\naz group list -o json`], { HOME: ws.home });
      expect(before.code, before.stderr).toBe(0);
      await new Promise((r) => setTimeout(r, Math.max(expires - Date.now(), 0) + 1500));
      const after = await runCommand("/bin/sh", ["-c", `${exports}\naz group list -o json`], { HOME: ws.home });
      expect(after.code).not.toBe(0);
      expect(after.stderr).toContain('azgate app session for "azure-cli" expired at');
      // Every client hears why at CONNECT, before a TLS handshake with an expired local certificate.
      const env = parseExports(exports);
      await expect(rawRequest(Number(new URL(env.HTTPS_PROXY).port), readFileSync(env.NODE_EXTRA_CA_CERTS, "utf8"), "management.azure.com", { method: "GET", path: "/", headers: { host: "management.azure.com" } })).rejects.toThrow(
        /CONNECT management\.azure\.com: 403 azgate app session for "azure-cli" expired at/,
      );
      expect(proxy.output()).toContain('The app session for "azure-cli" expired at');
    } finally {
      await proxy.stop();
    }
    const res = await ws.azgate(["az", "group", "list"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/ERROR: your session for app "azure-cli" expired at .*; run azgate apps login azure-cli again/);
  });

  it("without az on PATH: apps login still logs into the app and says az login was skipped; azgate az explains", async () => {
    const frank = await cluster.user("frank", ["azure-cli-access"], [READER]);
    const ws = await workstation(frank);
    const login = await ws.azgate(["apps", "login", "azure-cli"], { PATH: "/nonexistent" });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain(`Logged into Azure app "azure-cli".\nYour identity: ${READER}\n`);
    expect(login.stdout).toMatch(/the Azure CLI \(az\) is not installed or not on PATH[\s\S]*az login was skipped/);
    const az = await ws.azgate(["az", "group", "list"], { PATH: "/nonexistent" });
    expect(az.code).toBe(1);
    expect(az.stderr).toMatch(/ERROR: the Azure CLI \(az\) is not installed or not on PATH; install it/);
    // az installed later: the app session has no az login yet, and azgate says what to run (not az's "Please run 'az login'").
    const later = await ws.azgate(["az", "group", "list"]);
    expect(later.code).toBe(1);
    expect(later.stderr).toContain('ERROR: az is not logged in for app "azure-cli": the last apps login did not finish its az login; run azgate apps login azure-cli again');
  });

  it("with the proxy down, azgate az says so at once instead of letting az retry (runs last: it stops the proxy)", async () => {
    const gina = await cluster.user("gina", ["azure-cli-access"], [READER]);
    const ws = await workstation(gina);
    expect((await ws.azgate(["apps", "login", "azure-cli"])).code).toBe(0);
    await cluster.proxy.stop();
    const res = await ws.azgate(["az", "group", "list", "-o", "json"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/ERROR: cannot open a tunnel to https:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.*; az was not run to the end\. Is the azgate proxy up\?/);
    // az was stopped because the dial failed (az alone would retry a 502 for about 8 s, then print its own error).
    expect(res.stderr).not.toContain("HTTPSConnectionPool");

    // A proxy address that takes the connection and never answers (a dead load balancer): a command that ends
    // at once ends azgate at once, with its exit code; the dial still under way is given up, not waited out.
    // The agent goes first: its own redials would land in the black hole and hold it open for their timeout.
    await agent.stop();
    const held: Promise<void>[] = [];
    const blackhole = createServer((s) => {
      held.push(new Promise((r) => s.once("close", () => r())));
      s.resume(); // read (and drop) what comes, so the client's close is seen; never answer
    });
    await new Promise<void>((ok, fail) => blackhole.once("error", fail).listen(cluster.proxy.port, "127.0.0.1", () => ok()));
    try {
      const started = Date.now();
      const quick = await Promise.race([ws.azgate(["exec", "--", "sh", "-c", "exit 7"]), new Promise<null>((r) => setTimeout(() => r(null), 30_000))]);
      expect(quick, "azgate was still waiting for its dial 30 s after the command ended").not.toBeNull();
      expect(quick!.code, quick!.stderr).toBe(7);
      expect(Date.now() - started, "azgate waited for the dial").toBeLessThan(10_000);
      // Whatever the dial had opened (it may not have got as far as connecting) is closed.
      await Promise.all(held);
    } finally {
      blackhole.close();
    }
  }, 120_000);
});
