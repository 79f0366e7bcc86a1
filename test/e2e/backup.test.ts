/**
 * Backup, restore and clone end to end (issue 35 part 3): while a load
 * generator writes roles and sends Azure requests through the agent,
 * `admin backup` (encrypted with a passphrase) and `admin backend clone
 * --to postgres://` are taken from the running proxy. Then the proxy is
 * stopped, and a proxy on the restored data dir, and then one on the cloned
 * database, each on the same address: the agent reconnects by itself with
 * its pin, alice logs in with her password and reaches Azure through it,
 * bob's access request is still pending, and every role written before the
 * backup began is there.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ApiClient } from "../../src/api/client.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../../src/pki/keys.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { cli, startProxyProcess, tempDir, type ProxyProcess } from "../helpers/azgate.ts";
import { IDENTITY, openAppSession, readBody, SEED_DIR, spawnAgent, startCluster, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { useEmulator } from "../helpers/emulator.ts";
import { startPostgres, type TestPostgres } from "../helpers/postgres.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const RG_LIST = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2021-04-01";
const REQUESTER = `kind: role\nversion: v7\nmetadata: {name: requester}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    request:\n      azure_identities: ["${READER}"]\n      max_duration: 1h\n`;
const role = (name: string) => `kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec:\n  allow:\n    app_labels: {env: ${name}}\n`;

describe("admin backup, restore and backend clone under load", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let pg: TestPostgres;
  let restored: ProxyProcess | undefined;
  const home = tempDir("azgate-backup-home-");
  const passFile = path.join(tempDir("azgate-backup-secret-"), "pass");
  const backupFile = path.join(tempDir("azgate-backup-out-"), "cluster.age");
  let pgUrl: string;
  let pending: string;
  const beforeBackup: string[] = [];

  beforeAll(async () => {
    pg = await startPostgres();
    pgUrl = await pg.database("cloned");
    writeFileSync(passFile, "a passphrase for the e2e backup\n", { mode: 0o600 });
    cluster = await startCluster();
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    await cluster.admin.call("POST", "/v1/admin/resources", { text: readFileSync(path.join(SEED_DIR, "azure-cli-access-internal.yaml"), "utf8") + "---\n" + REQUESTER });
    await cluster.user("alice", ["azure-cli-access"], [READER]);
    const bob = await cluster.user("bob", ["requester"]);
    pending = (await bob.api.call<{ metadata: { name: string } }>("POST", "/v1/requests", { app: "azure-cli", azure_identity: READER, duration: "30m", reason: "kept across the backup" })).metadata.name;
  }, 120_000);
  afterAll(async () => {
    await stopAll(agent, restored, cluster);
    await pg?.stop();
  });

  /** alice logs in with her password, and a request of hers goes through the agent; bob's request still waits. */
  async function sameCluster(proxy: ProxyProcess) {
    const local = (await readLocalAdmin(proxy.dataDir))!;
    const target = { baseUrl: `https://127.0.0.1:${proxy.port}`, ca_pem: local.ca_pem };
    const as = async (user: string) => {
      const keys = await generateKeyPair();
      const res = await new ApiClient(target).call<{ cert_pem: string }>("POST", "/v1/auth/login", { user, password: `correct horse battery ${user}`, public_key_pem: await publicKeyToPem(keys.publicKey) });
      return new ApiClient(target, { keyPem: await privateKeyToPem(keys.privateKey), certPem: res.cert_pem });
    };
    const session = await openAppSession(target, await as("alice"), "azure-cli", READER);
    try {
      const res = await session.request(RG_LIST);
      expect(res.status, await readBody(res)).toBe(200);
    } finally {
      session.close();
    }
    const request = await (await as("bob")).call<{ spec: { state: string } }>("GET", `/v1/requests/${pending}`);
    expect(request.spec.state).toBe("PENDING");
    const admin = new ApiClient(target, { keyPem: local.key_pem, certPem: local.cert_pem });
    const roles = new Set((await admin.call<{ items: { metadata: { name: string } }[] }>("GET", "/v1/admin/resources/role")).items.map((r) => r.metadata.name));
    for (const name of beforeBackup) expect(roles.has(name), name).toBe(true);
  }

  it("backup and clone are taken while roles are written and requests go through", async () => {
    let stop = false;
    let written = 0;
    const load = async () => {
      const alice = await cluster.user("alice-load", ["azure-cli-access"], [READER]);
      const session = await alice.appSession("azure-cli", READER);
      const writes = (async () => {
        for (let i = 0; !stop; i++) {
          await cluster.admin.call("POST", "/v1/admin/resources", { text: role(`load-${i}`) });
          beforeBackup.push(`load-${i}`);
          written++;
        }
      })();
      const requests = (async () => {
        while (!stop) await readBody(await session.request(RG_LIST));
      })();
      await Promise.all([writes, requests]);
      session.close();
    };
    const running = load();
    while (written < 20) await new Promise((r) => setTimeout(r, 50));
    const acked = beforeBackup.length;
    const backup = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "backup", backupFile, "--passphrase-file", passFile], { home });
    expect(backup.stderr).toBe("");
    expect(backup.stdout).toMatch(/^Backed up \d+ records of cluster "e2e"/);
    // The password from PGPASSWORD, as the command's help says (in the URL, every user of the machine could read it: it warns).
    const to = new URL(pgUrl);
    const password = decodeURIComponent(to.password);
    to.password = "";
    const clone = await cli(["admin", "backend", "clone", "--from", `file:${cluster.proxy.dataDir}`, "--to", to.toString()], { home, env: { PGPASSWORD: password } });
    expect(clone.stderr.replace(/^.*PostgreSQL schema.*\n/gm, "")).toBe("");
    expect(clone.stdout).toMatch(/^Cloned \d+ records of cluster "e2e"/);
    stop = true;
    await running;
    beforeBackup.splice(acked); // what was acknowledged before the backup began must be in it
    expect(readFileSync(backupFile).subarray(0, 21).toString()).toBe("age-encryption.org/v1");
    const audited = await cluster.admin.call<{ items: { event: string }[] }>("GET", "/v1/admin/audit?event=backup.create");
    expect(audited.items.length).toBe(2);
  }, 120_000);

  it("restored into a new data dir: the agent reconnects with its pin, users log in, the request is pending", async () => {
    const { port, pin } = cluster.proxy;
    await cluster.proxy.stop();
    const dataDir = tempDir("azgate-restored-");
    const res = await cli(["admin", "--data-dir", dataDir, "restore", backupFile, "--passphrase-file", passFile], { home });
    expect(res.stdout).toMatch(/^Restored \d+ records of cluster "e2e"/);
    expect(res.stdout).toContain(`Host CA pin: ${pin}`);
    const from = agent.output().length;
    restored = await startProxyProcess({ dataDir, home, port, args: ["--second-factor", "off"] });
    expect(restored.pin).toBe(pin);
    await agent.waitFor(/tunnel to .* is up/, 60_000, from);
    await sameCluster(restored);
    await restored.stop();
  }, 120_000);

  it("cloned to PostgreSQL: the same", async () => {
    const dataDir = tempDir("azgate-cloned-");
    const config = path.join(dataDir, "azgate.yaml");
    writeFileSync(config, `storage:\n  type: postgres\n  conn_string: ${pgUrl}\n`);
    const from = agent.output().length;
    restored = await startProxyProcess({ dataDir, home, port: cluster.proxy.port, args: ["--second-factor", "off", "--config", config] });
    expect(restored.pin).toBe(cluster.proxy.pin);
    await agent.waitFor(/tunnel to .* is up/, 60_000, from);
    await sameCluster(restored);
  }, 120_000);
});
