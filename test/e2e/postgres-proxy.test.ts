/**
 * Proxies on PostgreSQL (issue 8, part 1): real proxy processes configured
 * through the environment, on a real PostgreSQL server. Two replicas started
 * together share one cluster (one set of CAs), users, invites and the audit
 * log; a replica started later with an empty data dir joins the same cluster.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, startProxyProcess, tempDir, type ProxyProcess } from "../helpers/azgate.ts";
import { startPostgres, type TestPostgres } from "../helpers/postgres.ts";
import { stopAll } from "../helpers/stop.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { ApiClient } from "../../src/api/client.ts";
import { generateKeyPair, publicKeyToPem } from "../../src/pki/keys.ts";

describe("proxies on PostgreSQL", () => {
  let server: TestPostgres;
  let env: Record<string, string>;
  const proxies: ProxyProcess[] = [];
  const start = async () => {
    const p = await startProxyProcess({ dataDir: tempDir("azgate-replica-"), home: tempDir("azgate-home-"), args: ["--second-factor", "off"], env });
    proxies.push(p);
    return p;
  };
  const target = async (p: ProxyProcess) => ({ baseUrl: `https://127.0.0.1:${p.port}`, ca_pem: (await readLocalAdmin(p.dataDir))!.ca_pem });
  const admin = async (p: ProxyProcess) => {
    const local = (await readLocalAdmin(p.dataDir))!;
    return new ApiClient({ baseUrl: local.url, ca_pem: local.ca_pem }, { keyPem: local.key_pem, certPem: local.cert_pem });
  };

  beforeAll(async () => {
    server = await startPostgres();
    env = { AZGATE_STORAGE_TYPE: "postgres", AZGATE_STORAGE_CONN_STRING: await server.database("azgate_proxies") };
  }, 60_000);
  afterAll(() => stopAll(...proxies, server));

  it("two replicas started together make one cluster: same CA pin, shared users, invites and audit", async () => {
    const [a, b] = await Promise.all([start(), start()]);
    expect(a.pin).toBe(b.pin);

    // An invite made through A is accepted through B; the user logs in through B and is known to A.
    const { invite_token } = await (await admin(a)).call<{ invite_token: string }>("POST", "/v1/admin/users", { name: "alice", roles: ["access"], traits: {} });
    const password = "correct horse battery staple";
    await new ApiClient(await target(b)).call("POST", `/v1/invites/${invite_token}/accept`, { password });
    const keys = await generateKeyPair();
    const login = await new ApiClient(await target(b)).call<{ cert_pem: string }>("POST", "/v1/auth/login", { user: "alice", password, public_key_pem: await publicKeyToPem(keys.publicKey) });
    expect(login.cert_pem).toContain("BEGIN CERTIFICATE");
    const users = await cli(["admin", "--data-dir", a.dataDir, "users", "ls"], { home: tempDir() });
    expect(users.stdout).toMatch(/alice\s+access/);

    // Both replicas write to one audit log: A lists the login B audited.
    const audit = await cli(["admin", "--data-dir", a.dataDir, "audit", "ls", "--event", "user.login", "--user", "alice", "--format", "json"], { home: tempDir() });
    expect(audit.code, audit.stderr).toBe(0);
    expect(JSON.parse(audit.stdout)).toEqual([expect.objectContaining({ event: "user.login", user: "alice", success: true, method: "password" })]);
  });

  it("a replica started later on an empty data dir joins the same cluster", async () => {
    const c = await start();
    expect(c.pin).toBe(proxies[0].pin);
    const users = await cli(["admin", "--data-dir", c.dataDir, "users", "ls", "--format", "json"], { home: tempDir() });
    expect(JSON.parse(users.stdout).map((u: { metadata: { name: string } }) => u.metadata.name)).toContain("alice");
  });

  it("NUL bytes in names never reach PostgreSQL: a clear refusal and an audit event, not a 500", async () => {
    const a = proxies[0];
    const api = new ApiClient(await target(a));
    const keys = await generateKeyPair();
    const since = Date.now() - 1000;
    await expect(api.call("POST", "/v1/auth/login", { user: "ali\u0000ce", password: "x", public_key_pem: await publicKeyToPem(keys.publicKey) })).rejects.toMatchObject({ code: "login_failed" });
    await expect(api.call("POST", "/v1/sso/login", { connector: "corp\u0000x", public_key_pem: await publicKeyToPem(keys.publicKey), redirect_url: "http://127.0.0.1:9/callback", secret_hash: "a".repeat(64) })).rejects.toMatchObject({ code: "bad_parameter" });
    await expect((await admin(a)).call("GET", "/v1/admin/resources/user/x%00y")).rejects.toMatchObject({ code: "bad_parameter" });
    const { items } = await (await admin(a)).call<{ items: { event: string; success?: boolean; error?: string; time: string }[] }>("GET", "/v1/admin/audit?event=user.login");
    expect(items.filter((e) => Date.parse(e.time) >= since)).toContainEqual(expect.objectContaining({ success: false, error: "malformed user name" }));
  });

  it("refuses to start on a database it cannot reach, saying so", async () => {
    const bad = await startProxyProcess({
      dataDir: tempDir("azgate-replica-"),
      home: tempDir("azgate-home-"),
      env: { AZGATE_STORAGE_TYPE: "postgres", AZGATE_STORAGE_CONN_STRING: "postgres://azgate:secret-in-url@127.0.0.1:1/azgate" },
    }).catch((e: Error) => e);
    expect(bad).toBeInstanceOf(Error);
    expect((bad as Error).message).toMatch(/PostgreSQL: .*ECONNREFUSED/);
    // The connection string's password is never printed.
    expect((bad as Error).message).not.toContain("secret-in-url");
  });
});
