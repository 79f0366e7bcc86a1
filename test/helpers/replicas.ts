/**
 * Two proxy replicas on one PostgreSQL behind a TCP load balancer, one agent
 * (Workload ID against the emulator) and alice with the reader identity:
 * the setup of the replica tests and the replica load run (npm run bench).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import type { EmulatorFixture } from "./emulator.ts";
import { IDENTITY, SEED_DIR, openAppSession, spawnAgent, type AgentProcess, type AppSession } from "./cluster.ts";
import { startProxyProcess, tempDir, type ProxyProcess } from "./azgate.ts";
import { startPostgres, type TestPostgres } from "./postgres.ts";
import { startTcpBalancer, type TcpBalancer } from "./tcp-balancer.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { ApiClient, type ApiTarget } from "../../src/api/client.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../../src/pki/keys.ts";

export const READER = IDENTITY("teleport-reader");

export interface ReplicaCluster {
  db: TestPostgres;
  lb: TcpBalancer;
  replicas: ProxyProcess[];
  agent: AgentProcess;
  /** The local admin of the first replica. */
  admin: ApiClient;
  /** Starts one more replica on the same database (not added to the balancer); `advertise: false` keeps agents away. */
  addReplica(o?: { advertise?: boolean }): Promise<ProxyProcess>;
  /** How to reach a replica (or the balancer) with the cluster's CA. */
  targetOf(p: { port: number }): Promise<ApiTarget>;
  /** alice's API client against a target. */
  alice(t: ApiTarget): ApiClient;
  /** alice's login key and certificate (a workstation's profile). */
  aliceCredentials: { keyPem: string; certPem: string };
  /** An app session for alice as the reader identity, through `via` (the balancer by default). */
  appSession(via?: { port: number }): Promise<AppSession>;
  stop(): Promise<void>;
}

export async function startReplicaCluster(fx: EmulatorFixture, opts: { replicas?: number } = {}): Promise<ReplicaCluster> {
  const db = await startPostgres();
  const env = { AZGATE_STORAGE_TYPE: "postgres", AZGATE_STORAGE_CONN_STRING: await db.database("azgate_replicas") };
  const lb = await startTcpBalancer();
  const replica = (o: { advertise?: boolean } = {}) =>
    startProxyProcess({
      dataDir: tempDir("azgate-replica-"),
      home: tempDir("azgate-home-"),
      args: ["--second-factor", "off", ...(o.advertise === false ? [] : ["--advertise-addr", "127.0.0.1:0"]), "--public-addr", lb.addr, "--diag-addr", "127.0.0.1:0"],
      env,
    });
  const replicas = await Promise.all(Array.from({ length: opts.replicas ?? 2 }, () => replica()));
  lb.backends = replicas.map((r) => r.port);
  const caPem = (await readLocalAdmin(replicas[0].dataDir))!.ca_pem;
  const targetOf = async (p: { port: number }) => ({ baseUrl: `https://127.0.0.1:${p.port}`, ca_pem: caPem });

  const local = (await readLocalAdmin(replicas[0].dataDir))!;
  const admin = new ApiClient({ baseUrl: local.url, ca_pem: local.ca_pem }, { keyPem: local.key_pem, certPem: local.cert_pem });
  await admin.call("POST", "/v1/admin/resources", { text: readFileSync(path.join(SEED_DIR, "azure-cli-access-internal.yaml"), "utf8") });
  const { invite_token } = await admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name: "alice", roles: ["access", "azure-cli-access"], traits: { azure_identities: [READER] } });
  const password = "correct horse battery staple";
  const viaLb = new ApiClient(await targetOf(lb));
  await viaLb.call("POST", `/v1/invites/${invite_token}/accept`, { password });
  const keys = await generateKeyPair();
  const login = await viaLb.call<{ cert_pem: string }>("POST", "/v1/auth/login", { user: "alice", password, public_key_pem: await publicKeyToPem(keys.publicKey) });
  const keyPem = await privateKeyToPem(keys.privateKey);
  const alice = (t: ApiTarget) => new ApiClient(t, { keyPem, certPem: login.cert_pem });

  const { token } = await admin.call<{ token: string }>("POST", "/v1/admin/tokens", { type: "app", ttl: "1h" });
  const agent = spawnAgent({ proxy: { ...replicas[0], addr: lb.addr }, fx, token, args: ["--diag-addr", "127.0.0.1:0"] });
  // One tunnel through the balancer, then one straight to each replica it did not reach.
  for (let i = 0; i < replicas.length; i++) await agent.waitFor(new RegExp(Array(i + 1).fill("tunnel to .* is up").join("[\\s\\S]*")), 30_000);

  return {
    db,
    lb,
    replicas,
    agent,
    admin,
    addReplica: replica,
    targetOf,
    alice,
    aliceCredentials: { keyPem, certPem: login.cert_pem },
    async appSession(via = lb) {
      const t = await targetOf(via);
      return openAppSession(t, alice(t), "azure-cli", READER);
    },
    async stop() {
      // Each step bounded and named when it overruns (on Deno, teardown after the load test outlived 150 s).
      const bounded = (what: string, step: () => Promise<unknown>) =>
        new Promise<void>((done) => {
          const timer = setTimeout(() => {
            process.stderr.write(`[test] replica cluster: ${what} still going after 30 s; going on\n`);
            done();
          }, 30_000);
          void step().finally(() => {
            clearTimeout(timer);
            done();
          });
        });
      // KNOWN GAP (open): on Deno, the agent has been seen not to exit on SIGTERM after the 1,000-stream load; killed then.
      await bounded("agent stop", () => agent.stop());
      // By its process ID: after a first kill(), Deno's child_process sends nothing more through child.kill().
      if (agent.child.pid) {
        try {
          process.kill(agent.child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      for (const r of replicas) await bounded(`replica ${r.port} stop`, () => r.stop());
      await bounded("balancer close", () => lb.close());
      await bounded("PostgreSQL stop", () => db.stop());
    },
  };
}
