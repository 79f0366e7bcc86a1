/**
 * Agents and tunnels end to end: a real proxy process, real agent processes
 * using Workload ID against the emulator, and a test client on the proxy's
 * stream API (the CLI's local proxy comes with issue 5).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, readBody, spawnAgent, startCluster, type AgentProcess, type TestCluster, type UserSession } from "../helpers/cluster.ts";
import { cli, tempDir } from "../helpers/azgate.ts";
import { stopAll } from "../helpers/stop.ts";
import { saveProfile } from "../../src/client/profile.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");

describe("agent join, reverse tunnel and Azure forwarding", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let alice: UserSession;

  beforeAll(async () => {
    cluster = await startCluster();
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    await cluster.admin.call("POST", "/v1/admin/resources", {
      text: `kind: role\nversion: v7\nmetadata: {name: azure-prod}\nspec:\n  allow:\n    app_labels: {env: prod}\n    azure_identities: ["{{internal.azure_identities}}"]\n`,
    });
    alice = await cluster.user("alice", ["azure-prod"], [READER]);
  });
  afterAll(() => stopAll(agent, cluster));

  it("stores the agent identity 0600 in a 0700 dir", () => {
    const dir = path.join(agent.dataDir, "agent");
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const f of ["host.key", "host.crt", "identity.json"]) expect(statSync(path.join(dir, f)).mode & 0o777).toBe(0o600);
  });

  it("lists the app for a user whose role allows it, through the real CLI", async () => {
    const home = tempDir("azgate-home-");
    await saveProfile({ proxy: cluster.proxy.addr, user: "alice", cluster: "e2e", ca_pem: cluster.target.ca_pem }, alice.keyPem, alice.certPem, home);
    const text = await cli(["apps", "ls"], { home });
    expect(text.stderr).toBe("");
    expect(text.stdout).toMatch(/^Application\s+Description\s+Type\s+Public Address\s+Labels/m);
    expect(text.stdout).toMatch(/^azure-cli\s+.*Azure\s+.*env=prod/m);
    const json = JSON.parse((await cli(["apps", "ls", "--format", "json"], { home })).stdout);
    expect(json).toEqual([expect.objectContaining({ name: "azure-cli", cloud: "Azure", labels: { env: "prod" }, servers: 1, azure_identities: [READER] })]);
    const yaml = (await cli(["apps", "ls", "--format", "yaml"], { home })).stdout;
    expect(yaml).toMatch(/- name: azure-cli/);
  });

  it("hides apps the user's roles do not allow", async () => {
    await cluster.admin.call("POST", "/v1/admin/resources", { text: `kind: role\nversion: v7\nmetadata: {name: dev-only}\nspec:\n  allow:\n    app_labels: {env: dev}\n` });
    const bob = await cluster.user("bob", ["dev-only"]);
    expect((await bob.api.call<{ items: unknown[] }>("GET", "/v1/apps")).items).toEqual([]);
    await expect(bob.appSession("azure-cli", READER)).rejects.toThrow(/app "azure-cli" not found/);
  });

  it("forwards ARM calls with a real token that the client never sees", async () => {
    const app = await alice.appSession("azure-cli", READER);
    try {
      const placeholder = await app.placeholder("https://management.core.windows.net/");
      const before = fx.emu.requests.length;
      const res = await app.request(`https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01`, {
        headers: [["authorization", `Bearer ${placeholder}`], ["accept", "application/json"]],
      });
      const body = await readBody(res);
      expect(res.status).toBe(200);
      expect(JSON.parse(body).value.map((g: { name: string }) => g.name)).toContain("myResourceGroup");
      const trailer = await res.trailer();
      expect(trailer?.timings.total_ms).toBeGreaterThan(0);

      const seen = fx.emu.requests.slice(before).find((r) => r.host === "management.azure.com" && r.path.includes("/resourcegroups"));
      const real = seen?.authorization?.replace(/^Bearer /, "");
      expect(real).toBeTruthy();
      expect(real).not.toBe(placeholder);
      expect(JSON.parse(Buffer.from(real!.split(".")[1], "base64url").toString()).xms_mirid).toBe(READER);
      // Nothing the client received carries the real token.
      expect(JSON.stringify(res.headers) + body + JSON.stringify(trailer)).not.toContain(real!.split(".")[2]);
      // Hop-by-hop and azgate headers are not forwarded.
      expect(Object.keys(seen!.headers).filter((h) => h.startsWith("x-azgate") || h === "x-forwarded-host")).toEqual([]);
    } finally {
      app.close();
    }
  });

  it("passes a request without Authorization through unchanged", async () => {
    const app = await alice.appSession("azure-cli", READER);
    try {
      const res = await app.request(`https://management.azure.com/subscriptions?api-version=2019-11-01`, { resource: null });
      expect(res.status).toBe(401);
      expect(await readBody(res)).toMatch(/AuthenticationFailed|InvalidAuthenticationToken/);
    } finally {
      app.close();
    }
  });

  it("authorises every stream against current roles: a refused host, an identity no longer allowed, a deleted role", async () => {
    await cluster.admin.call("POST", "/v1/admin/resources", {
      text: `kind: role\nversion: v7\nmetadata: {name: temp-reader}\nspec: {allow: {app_labels: {env: prod}, azure_identities: ["${READER}"]}}\n`,
    });
    const erin = await cluster.user("erin", ["temp-reader"]);
    const app = await erin.appSession("azure-cli", READER);
    try {
      const refused = await app.request("https://example.com/");
      expect(refused.status).toBe(403);
      expect(await readBody(refused)).toMatch(/example\.com is not an Azure API host/);

      const ok = await app.request("https://management.azure.com/subscriptions?api-version=2019-11-01");
      expect(ok.status).toBe(200);
      await readBody(ok);

      // A deny added to the role takes effect on the next request of an open session.
      await cluster.admin.call("POST", "/v1/admin/resources", {
        force: true,
        text: `kind: role\nversion: v7\nmetadata: {name: temp-reader}\nspec: {allow: {app_labels: {env: prod}, azure_identities: ["${READER}"]}, deny: {azure_identities: ["${READER.toUpperCase()}"]}}\n`,
      });
      // The proxy also closes the open tunnel when it hears of the change (tunnels.ts): a request that beats the close is refused 403
      // (and the close may still cut that refusal's body short: then it is the close that says why).
      const outcome = () =>
        app
          .request("https://management.azure.com/subscriptions?api-version=2019-11-01")
          .then(async (res) => `${res.status} ${await readBody(res)}`)
          .catch((err: Error) => `closed ${err.message}`);
      expect(await outcome()).toMatch(/^(403|closed) .*denies Azure identity/);

      await cluster.admin.call("DELETE", "/v1/admin/resources/role/temp-reader");
      // A new tunnel with the same certificate: refused at its opening, or its first request is.
      const redialled = await app.redial().then(outcome, (err: Error) => `refused ${err.message}`);
      expect(redialled).toMatch(/^(403|closed|refused) .*no role allows/);
    } finally {
      app.close();
    }
    const events = readFileSync(path.join(cluster.proxy.dataDir, "audit", "events.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const mine = events.filter((e) => e.user === "erin");
    const request = { azure_identity: READER, app: "azure-cli", method: "GET", host: "management.azure.com", path: "/subscriptions", query: "api-version=2019-11-01" };
    expect(mine.filter((e) => e.event === "app.request.start")).toEqual([expect.objectContaining(request)]);
    const done = mine.filter((e) => e.event === "app.request");
    expect(done).toEqual([expect.objectContaining({ ...request, status: 200, bytes_in: 0, success: true })]);
    expect(done[0].bytes_out).toBeGreaterThan(20);
    expect(done[0].azure_request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(done[0].duration_ms).toBeGreaterThanOrEqual(0);
    // Each refusal audited where it happened: a request (app.request.denied), the open tunnel (app.session.closed: the
    // deny's request may beat the close, then both are) or a new tunnel (app.tunnel.denied).
    const reasons = mine.filter((e) => ["app.request.denied", "app.session.closed", "app.tunnel.denied"].includes(e.event)).map((e) => e.reason as string);
    expect(reasons[0]).toMatch(/example\.com/);
    expect(reasons.at(-1)).toMatch(/no role allows/);
    expect(reasons.slice(1, -1).length).toBeGreaterThanOrEqual(1);
    expect(reasons.slice(1, -1).every((r) => /denies Azure identity/.test(r))).toBe(true);
    // Secrets never reach the audit log.
    expect(JSON.stringify(events)).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\./);
  });

  it("refuses an app session for an identity the user's roles do not allow", async () => {
    await expect(alice.appSession("azure-cli", IDENTITY("teleport-contributor"))).rejects.toThrow(/no role allows Azure identity/);
  });
});
