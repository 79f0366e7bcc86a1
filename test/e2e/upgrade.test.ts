/**
 * Upgrades (issue 35 part 4): the previous release's data dir and database
 * dump (test/fixtures/upgrade/, made by scripts/make-upgrade-fixtures.ts
 * from azgate 0.1) boot with this azgate, the migrations logged once, and
 * pass the seed guide's walkthrough: alice logs in with the password she set
 * then, the agent re-joins from its old data dir, `apps ls`, `apps login`,
 * `az group list` and `status` work, and the audit log the old proxy wrote
 * still reads (with the new events after it).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cpSync, readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { ApiClient } from "../../src/api/client.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { POSTGRES_SCHEMA } from "../../src/storage/postgres-schema.ts";
import { cli, startProxyProcess, tempDir, type ProxyProcess } from "../helpers/azgate.ts";
import { spawnAgent, type AgentProcess } from "../helpers/cluster.ts";
import { useEmulator } from "../helpers/emulator.ts";
import { startPostgres, type TestPostgres } from "../helpers/postgres.ts";
import { stopAll } from "../helpers/stop.ts";

const FIXTURES = path.resolve(import.meta.dirname, "../fixtures/upgrade");
const fixture = JSON.parse(readFileSync(path.join(FIXTURES, "fixture.json"), "utf8")) as { made_by: string; users: Record<string, string>; ca_pins: { file: string; postgres: string } };
/** The schema azgate 0.1's database has (its azgate_schema rows in the dump). */
const PREVIOUS_POSTGRES_SCHEMA = 4;
const fx = useEmulator({ projectToken: true });

let pg: TestPostgres;
beforeAll(async () => {
  pg = await startPostgres();
}, 60_000);
afterAll(() => pg?.stop());

/** A database holding the dump, restored with psql as an operator would. */
async function restoredDatabase(): Promise<string> {
  const url = await pg.database("upgraded");
  const u = new URL(url);
  const bin = spawnSync("sh", ["-c", "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1"], { encoding: "utf8" }).stdout.trim();
  const r = spawnSync(path.join(bin, "psql"), ["-h", u.hostname, "-p", u.port, "-U", u.username, "-d", "upgraded", "-v", "ON_ERROR_STOP=1", "-q", "-f", path.join(FIXTURES, "postgres/dump.sql")], { env: { ...process.env, PGPASSWORD: decodeURIComponent(u.password) }, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`psql: ${r.stderr}`);
  return url;
}

describe.each(["file", "postgres"] as const)("the previous release's %s state, with this azgate", (kind) => {
  let proxy: ProxyProcess;
  let agent: AgentProcess;
  let dataDir: string;
  const home = tempDir("azgate-upgrade-home-");
  const run = (args: string[], input?: string) => cli(args, { home, input, env: { HOME: home } });

  beforeAll(async () => {
    dataDir = kind === "file" ? tempDir("azgate-upgrade-") : tempDir("azgate-upgrade-pg-");
    if (kind === "file") cpSync(path.join(FIXTURES, "file/data"), dataDir, { recursive: true });
    const args = ["--second-factor", "off"];
    if (kind === "postgres") {
      const config = path.join(dataDir, "azgate.yaml");
      (await import("node:fs")).writeFileSync(config, `storage:\n  type: postgres\n  conn_string: ${await restoredDatabase()}\n`);
      args.push("--config", config);
    }
    proxy = await startProxyProcess({ dataDir, home, clusterName: "upgrade", args });
  }, 90_000);
  afterAll(() => stopAll(agent, proxy));

  it("boots on it: the same cluster and CA pin, its migrations logged", async () => {
    expect(proxy.pin).toBe(fixture.ca_pins[kind]);
    // The file backend's data dir is 0.1's (schema 1, none recorded); on PostgreSQL the data dir is new and the database is 0.1's.
    if (kind === "file") expect(proxy.output()).toMatch(/data dir .*: schema 1 -> 2/);
    if (kind === "postgres" && POSTGRES_SCHEMA > PREVIOUS_POSTGRES_SCHEMA) expect(proxy.output()).toContain(`PostgreSQL schema ${PREVIOUS_POSTGRES_SCHEMA} -> ${PREVIOUS_POSTGRES_SCHEMA + 1}`);
  });

  it("the agent re-joins from its old data dir with a new token, and the seed walkthrough passes as alice", async () => {
    const local = (await readLocalAdmin(dataDir))!;
    const admin = new ApiClient({ baseUrl: local.url, ca_pem: local.ca_pem }, { keyPem: local.key_pem, certPem: local.cert_pem });
    const { token } = await admin.call<{ token: string }>("POST", "/v1/admin/tokens", { type: "app", ttl: "1h" });
    const agentDir = tempDir("azgate-upgrade-agent-");
    cpSync(path.join(FIXTURES, kind, "agent"), agentDir, { recursive: true });
    agent = spawnAgent({ proxy, fx, token, dataDir: agentDir });
    await agent.waitFor(/tunnel to .* is up/, 60_000);

    const login = await run(["login", "--proxy", proxy.addr, "--ca-pin", proxy.pin, "--user", "alice"], `${fixture.users.alice}\n`);
    expect(login.stderr + login.stdout).not.toMatch(/ERROR/);
    expect(login.code).toBe(0);
    const ls = await run(["apps", "ls"]);
    expect(ls.stdout).toMatch(/^azure-cli\s/m);
    const appLogin = await run(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"]);
    expect(appLogin.stderr).not.toMatch(/ERROR/);
    expect(appLogin.code).toBe(0);
    const groups = await run(["az", "group", "list", "-o", "json"]);
    expect(groups.code).toBe(0);
    expect(JSON.parse(groups.stdout).map((g: { name: string }) => g.name)).toContain("myResourceGroup");
    const status = await run(["status"]);
    expect(status.stdout).toContain("alice");
    expect((await run(["apps", "logout"])).code).toBe(0);
  }, 180_000);

  it("the audit log the old proxy wrote reads, with this proxy's events after it", async () => {
    const res = await cli(["admin", "--data-dir", dataDir, "audit", "ls", "--format", "json", "--limit", "100000"], { home });
    expect(res.code).toBe(0);
    const events = JSON.parse(res.stdout) as { event: string; user?: string; name?: string; time: string }[];
    const made = events.filter((e) => e.event === "user.create").map((e) => e.name);
    expect(made).toEqual(expect.arrayContaining(["alice", "bob"]));
    const requests = events.filter((e) => e.event === "app.request" && e.user === "alice");
    expect(requests.length).toBeGreaterThanOrEqual(2); // the old cluster's request and this one's az group list
    expect(events.filter((e) => e.event === "proxy.start").length).toBeGreaterThanOrEqual(2);
    expect(events.map((e) => e.time)).toEqual([...events.map((e) => e.time)].sort());
  });
});
