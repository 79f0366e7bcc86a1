/**
 * Two proxy replicas on one PostgreSQL behind a TCP load balancer, one
 * agent, the emulator (issue 8, part 2). The agent reaches one replica
 * through the balancer, learns of the other and holds a tunnel to both;
 * clients succeed through either; a replica killed with SIGKILL mid-traffic
 * costs only the requests in flight on it, and after the client reconnects
 * requests keep succeeding, with no user, role or acknowledged audit event lost.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import path from "node:path";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, openAppSession, readBody, SEED_DIR, spawnAgent, type AgentProcess, type AppSession } from "../helpers/cluster.ts";
import { cli, startProxyProcess, tempDir, type ProxyProcess } from "../helpers/azgate.ts";
import { startPostgres, type TestPostgres } from "../helpers/postgres.ts";
import { startTcpBalancer, type TcpBalancer } from "../helpers/tcp-balancer.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { ApiClient, type ApiTarget } from "../../src/client/api.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../../src/pki/keys.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const SUBS = "https://management.azure.com/subscriptions?api-version=2019-11-01";

describe("proxy replicas", () => {
  let db: TestPostgres;
  let lb: TcpBalancer;
  let a: ProxyProcess;
  let b: ProxyProcess;
  let agent: AgentProcess;
  let env: Record<string, string>;
  let aliceApi: (t: ApiTarget) => ApiClient;
  const targetOf = async (p: ProxyProcess | TcpBalancer) => ({ baseUrl: `https://127.0.0.1:${p.port}`, ca_pem: (await readLocalAdmin(a.dataDir))!.ca_pem });
  const replica = () =>
    startProxyProcess({ dataDir: tempDir("azgate-replica-"), home: tempDir("azgate-home-"), args: ["--second-factor", "off", "--advertise-addr", "127.0.0.1:0", "--public-addr", lb.addr], env });

  beforeAll(async () => {
    db = await startPostgres();
    env = { AZGATE_STORAGE_TYPE: "postgres", AZGATE_STORAGE_CONN_STRING: await db.database("azgate_replicas") };
    lb = await startTcpBalancer();
    [a, b] = await Promise.all([replica(), replica()]);
    lb.backends = [a.port, b.port];

    const local = (await readLocalAdmin(a.dataDir))!;
    const admin = new ApiClient({ baseUrl: local.url, ca_pem: local.ca_pem }, { keyPem: local.key_pem, certPem: local.cert_pem });
    await admin.call("POST", "/v1/admin/resources", { text: readFileSync(path.join(SEED_DIR, "azure-cli-access-internal.yaml"), "utf8") });
    const { invite_token } = await admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name: "alice", roles: ["access", "azure-cli-access"], traits: { azure_identities: [READER] } });
    const password = "correct horse battery staple";
    const viaLb = new ApiClient(await targetOf(lb));
    await viaLb.call("POST", `/v1/invites/${invite_token}/accept`, { password });
    const keys = await generateKeyPair();
    const login = await viaLb.call<{ cert_pem: string }>("POST", "/v1/auth/login", { user: "alice", password, public_key_pem: await publicKeyToPem(keys.publicKey) });
    const keyPem = await privateKeyToPem(keys.privateKey);
    aliceApi = (t) => new ApiClient(t, { keyPem, certPem: login.cert_pem });

    const { token } = await admin.call<{ token: string }>("POST", "/v1/admin/tokens", { type: "app", ttl: "1h" });
    agent = spawnAgent({ proxy: { ...a, addr: lb.addr }, fx, token });
    // One tunnel through the balancer, then one straight to the replica it did not reach.
    await agent.waitFor(/opening a tunnel/);
    await agent.waitFor(/tunnel to .* is up[\s\S]*tunnel to .* is up/);
  }, 90_000);
  afterAll(async () => {
    await agent?.stop();
    for (const p of [a, b]) await p?.stop();
    await lb?.close();
    await db?.stop();
  });

  it("the agent holds a tunnel to each replica, and clients succeed through either", async () => {
    for (const p of [a, b]) {
      const t = await targetOf(p);
      const { items } = await aliceApi(t).call<{ items: { name: string }[] }>("GET", "/v1/apps");
      expect(items.map((i) => i.name), `apps on replica ${p.port}`).toEqual(["azure-cli"]);
      const app = await openAppSession(t, aliceApi(t), "azure-cli", READER);
      try {
        const res = await app.request(SUBS);
        expect(res.status).toBe(200);
        expect(JSON.parse(await readBody(res)).value.length).toBeGreaterThan(0);
      } finally {
        app.close();
      }
    }
  });

  it("keeps serving after a replica is killed mid-traffic, once clients reconnect, losing nothing acknowledged", async () => {
    const lbTarget = await targetOf(lb);
    let ok = 0;
    let failedInFlight = 0;
    let stop = false;
    // A client as the local proxy is one: it dials again (through the balancer) when its tunnel drops.
    const worker = async () => {
      let app: AppSession | null = null;
      while (!stop) {
        try {
          app ??= await openAppSession(lbTarget, aliceApi(lbTarget), "azure-cli", READER);
          const res = await app.request(SUBS);
          await readBody(res);
          if (res.status === 200) ok++;
          else throw new Error(`HTTP ${res.status}`);
        } catch {
          failedInFlight++;
          app?.close();
          app = null;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      app?.close();
    };
    const workers = Array.from({ length: 6 }, () => worker());
    await new Promise((r) => setTimeout(r, 1_500));
    await a.stop("SIGKILL");
    lb.backends = [b.port]; // the balancer's health check takes the dead replica out
    await new Promise((r) => setTimeout(r, 1_000));
    const afterReconnect = ok;
    await new Promise((r) => setTimeout(r, 2_000));
    stop = true;
    await Promise.all(workers);
    // Only requests in flight at the kill (and dials that raced it) failed; then every worker kept succeeding.
    expect(failedInFlight).toBeLessThanOrEqual(workers.length * 3);
    expect(ok - afterReconnect).toBeGreaterThan(20);

    // Nothing acknowledged is lost: the user, her roles, and an audit start event for every answered request.
    const survivor = aliceApi(await targetOf(b));
    const me = await survivor.call<{ name: string; roles: string[] }>("GET", "/v1/whoami");
    expect(me).toMatchObject({ name: "alice", roles: ["access", "azure-cli-access"] });
    const audit = await cli(["admin", "--data-dir", b.dataDir, "audit", "ls", "--event", "app.request.start", "--user", "alice", "--limit", "100000", "--format", "json"], { home: tempDir() });
    expect(audit.code, audit.stderr).toBe(0);
    expect(JSON.parse(audit.stdout).length).toBeGreaterThanOrEqual(ok);
  });

  it("a replica that comes back is found by the agent again", async () => {
    const mark = agent.output().length;
    const c = await replica();
    try {
      lb.backends = [b.port, c.port];
      await agent.waitFor(/opening a tunnel/, 30_000, mark);
      await agent.waitFor(/tunnel to .* is up/, 30_000, mark);
      const t = await targetOf(c);
      const app = await openAppSession(t, aliceApi(t), "azure-cli", READER);
      try {
        expect((await app.request(SUBS)).status).toBe(200);
      } finally {
        app.close();
      }
    } finally {
      await c.stop();
    }
  });
});
