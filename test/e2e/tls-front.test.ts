/**
 * A proxy behind a TLS front, as deployed: Debian's nginx terminating TLS
 * with an operator's CA and re-encrypting to the proxy (ingress-nginx), and
 * a proxy serving an operator certificate itself (proxy.tls). The CA pin
 * still authenticates the cluster; the operator's CA (--proxy-ca-file,
 * AZGATE_PROXY_CA_FILE, agent.proxy_ca_file) verifies the TLS.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import path from "node:path";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, openAppSession, readBody, readBytes, spawnAgent, startCluster, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, startProxyProcess, tempDir, type ProxyProcess } from "../helpers/azgate.ts";
import { operatorCa, startNginxFront, type NginxFront, type OperatorCa } from "../helpers/tls-front.ts";
import { stopAll } from "../helpers/stop.ts";
import { ApiClient, type ApiTarget } from "../../src/api/client.ts";
import { readLocalAdmin } from "../../src/proxy/local-admin.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../../src/pki/keys.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const CONTRIBUTOR = IDENTITY("teleport-contributor");
const SERVICE_NAME = "azgate-proxy.azgate.svc";
const MiB = 1024 * 1024;
const PASSWORD = "correct horse battery staple";

const role = (name: string) =>
  `kind: role\nversion: v7\nmetadata: {name: ${name}}\nspec: {allow: {app_labels: {env: prod}, azure_identities: ["${READER}", "${CONTRIBUTOR}"]}}\n`;

/** A user made through the admin API whose password is set by accepting the invite (no CLI yet). */
async function addUser(admin: ApiClient, target: ApiTarget, name: string): Promise<void> {
  const { invite_token } = await admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name, roles: ["azure"], traits: {} });
  await new ApiClient(target).call("POST", `/v1/invites/${invite_token}/accept`, { password: PASSWORD });
}

describe("behind nginx terminating TLS with the operator's CA", () => {
  let ca: OperatorCa;
  let cluster: TestCluster;
  let front: NginxFront;
  let agent: AgentProcess;
  const home = tempDir("azgate-home-");
  const viaFront = () => ({ ...cluster.proxy, addr: front.addr });

  beforeAll(async () => {
    const dir = tempDir("azgate-front-");
    ca = operatorCa(path.join(dir, "ca"));
    // The proxy's own certificate names the Service in-cluster clients (here: nginx) dial.
    // nginx on loopback is the one front the proxy believes about callers' addresses.
    cluster = await startCluster({ args: ["--server-names", SERVICE_NAME, "--trusted-proxies", "127.0.0.1/32"] });
    const hostCaFile = path.join(dir, "host-ca.pem");
    writeFileSync(hostCaFile, cluster.target.ca_pem!);
    front = await startNginxFront({ dir: path.join(dir, "nginx"), cert: ca.issue("front", ["localhost", "127.0.0.1"]), upstreamPort: cluster.proxy.port, upstreamCaFile: hostCaFile, upstreamName: SERVICE_NAME });
    await cluster.admin.call("POST", "/v1/admin/resources", { text: role("azure") });
    await addUser(cluster.admin, cluster.target, "alice");
  });
  afterAll(() => stopAll(agent, front, cluster));

  it("an agent joins through the front with --ca-pin and AZGATE_PROXY_CA_FILE, and serves", async () => {
    agent = spawnAgent({ proxy: viaFront(), fx, token: await cluster.joinToken(), env: { AZGATE_PROXY_CA_FILE: ca.caFile } });
    await agent.waitFor(new RegExp(`tunnel to https://${front.addr} is up`));
    // The join went through nginx (it logs a WebSocket only when it closes).
    expect(front.accessLog()).toMatch(/"POST \/v1\/join HTTP\/1.1" 200 /);
  });

  it("without the operator's CA, login says which file to pass; a wrong pin is still refused through the front", async () => {
    const noCa = await cli(["login", "--proxy", front.addr, "--ca-pin", cluster.proxy.pin, "--user", "alice"], { home: tempDir("azgate-home-"), input: `${PASSWORD}\n` });
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toMatch(/TLS certificate is not from that CA[\s\S]*--proxy-ca-file/);
    const wrongPin = `sha256:${"ab".repeat(32)}`;
    const mismatch = await cli(["login", "--proxy", front.addr, "--ca-pin", wrongPin, "--proxy-ca-file", ca.caFile, "--user", "alice"], { home: tempDir("azgate-home-"), input: `${PASSWORD}\n` });
    expect(mismatch.code).toBe(1);
    expect(mismatch.stderr).toContain(`CA pin mismatch: the proxy at ${front.addr} presented ${cluster.proxy.pin}, expected ${wrongPin}`);
  });

  it("a user logs in with --ca-pin and --proxy-ca-file, runs apps login and azgate az group list through it", async () => {
    const login = await cli(["login", "--proxy", front.addr, "--ca-pin", cluster.proxy.pin, "--proxy-ca-file", ca.caFile, "--user", "alice"], { home, input: `${PASSWORD}\n` });
    expect(login.stderr).not.toMatch(/ERROR/);
    expect(login.code).toBe(0);
    expect(login.stdout).toMatch(new RegExp(`Profile URL:\\s+https://${front.addr}`));
    // The profile remembers the front's CA: later commands need no flag.
    const apps = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"], { home, env: { HOME: home } });
    expect(apps.stderr + apps.stdout).not.toMatch(/ERROR/);
    expect(apps.code).toBe(0);
    const groups = await cli(["az", "group", "list", "-o", "json"], { home, env: { HOME: home } });
    expect(groups.code).toBe(0);
    expect(JSON.parse(groups.stdout).map((g: { name: string }) => g.name)).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
    // Both commands' tunnels closed when they ended: nginx logged the upgrades it passed on.
    expect(front.accessLog()).toMatch(/"GET \/v1\/tunnel\/client HTTP\/1.1" 101 /);
  });

  it("audit and rate limits see the caller nginx saw, not nginx, and not what the caller wrote in X-Forwarded-For", async () => {
    const publicKeyPem = await publicKeyToPem((await generateKeyPair()).publicKey);
    const login = (from: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const body = JSON.stringify({ user: "nobody", password: "wrong", public_key_pem: publicKeyPem });
        const req = https.request(
          { host: "127.0.0.1", port: front.port, localAddress: from, method: "POST", path: "/v1/auth/login", ca: readFileSync(ca.caFile, "utf8"), headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-forwarded-for": "203.0.113.9" } },
          (res) => {
            let text = "";
            res.on("data", (d) => (text += d));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on("error", reject);
        req.end(body);
      });
    const since = new Date().toISOString();
    expect((await login("127.0.0.2")).status).toBe(401);
    const { items } = await cluster.admin.call<{ items: { remote_addr?: string; time: string; user?: string }[] }>("GET", "/v1/admin/audit?event=user.login");
    expect(items.filter((e) => e.time >= since && e.user === "nobody").map((e) => e.remote_addr)).toEqual(["127.0.0.2"]);
    // The per-address limit (30 a minute) counts 127.0.0.2 alone: another caller behind the same front still gets in.
    for (let i = 0; i < 29; i++) await login("127.0.0.2");
    const limited = await login("127.0.0.2");
    expect([limited.status, JSON.parse(limited.body).error.code]).toEqual([429, "rate_limited"]);
    expect((await login("127.0.0.3")).status).toBe(401);
  });

  it("a 64 MiB blob goes up and comes back intact through nginx, the proxy and the agent", async () => {
    const target: ApiTarget = { baseUrl: `https://${front.addr}`, ca_pem: cluster.target.ca_pem, proxy_ca_pems: [readFileSync(ca.caFile, "utf8")] };
    const keys = await generateKeyPair();
    const login = await new ApiClient(target).call<{ cert_pem: string }>("POST", "/v1/auth/login", { user: "alice", password: PASSWORD, public_key_pem: await publicKeyToPem(keys.publicKey) });
    const api = new ApiClient(target, { keyPem: await privateKeyToPem(keys.privateKey), certPem: login.cert_pem });
    const app = await openAppSession(target, api, "azure-cli", CONTRIBUTOR);
    try {
      const blob = new Uint8Array(64 * MiB);
      for (let i = 0; i < blob.length; i += 4096) blob[i] = (i / 4096) & 0xff;
      const url = "https://teleportdemostore.blob.core.windows.net/reports/front.bin";
      const put = await app.request(url, { method: "PUT", resource: "https://storage.azure.com", headers: [["x-ms-blob-type", "BlockBlob"], ["content-length", String(blob.length)], ["x-ms-version", "2021-08-06"]], body: blob });
      expect(put.status).toBe(201);
      await readBody(put);
      const get = await app.request(url, { resource: "https://storage.azure.com", headers: [["x-ms-version", "2021-08-06"]] });
      expect(get.status).toBe(200);
      expect((await readBytes(get)).equals(Buffer.from(blob))).toBe(true);
    } finally {
      app.close();
    }
  });
});

describe("a proxy serving an operator certificate (proxy.tls)", () => {
  let ca: OperatorCa;
  let proxy: ProxyProcess;
  let agent: AgentProcess;
  const home = tempDir("azgate-home-");
  const dataDir = tempDir("azgate-proxy-");

  beforeAll(async () => {
    ca = operatorCa(path.join(tempDir("azgate-opca-"), "ca"));
    const cert = ca.issue("proxy", ["localhost", "127.0.0.1"]);
    proxy = await startProxyProcess({ dataDir, home: tempDir("azgate-home-"), args: ["--second-factor", "off", "--tls-cert-file", cert.certFile, "--tls-key-file", cert.keyFile] });
  });
  afterAll(() => stopAll(agent, proxy));

  it("admin --data-dir works against the running proxy, and an agent joins with agent.proxy_ca_file", async () => {
    const admin = (args: string[]) => cli(["admin", "--data-dir", dataDir, ...args], { home });
    const token = await admin(["tokens", "add", "--type=app", "--format", "text"]);
    expect(token.code, token.stderr).toBe(0);
    const joinToken = /[0-9a-f]{32,}/.exec(token.stdout)?.[0];
    expect(joinToken).toBeTruthy();
    agent = spawnAgent({ proxy, fx, token: joinToken!, args: ["--proxy-ca-file", ca.caFile] });
    await agent.waitFor(/tunnel to .* is up/);
  });

  it("a user logs in with --ca-pin and --proxy-ca-file and lists the agent's app", async () => {
    const local = await readLocalAdmin(dataDir);
    const target: ApiTarget = { baseUrl: local!.url, cert_sha256: local!.cert_sha256 };
    const admin = new ApiClient(target, { keyPem: local!.key_pem, certPem: local!.cert_pem });
    await admin.call("POST", "/v1/admin/resources", { text: role("azure") });
    await addUser(admin, target, "bob");
    const login = await cli(["login", "--proxy", proxy.addr, "--ca-pin", proxy.pin, "--proxy-ca-file", ca.caFile, "--user", "bob"], { home, input: `${PASSWORD}\n` });
    expect(login.code, login.stderr).toBe(0);
    const ls = await cli(["apps", "ls"], { home });
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/^azure-cli\s/m);
  });

  it("a certificate the machine already trusts (the operator's CA in NODE_EXTRA_CA_CERTS, as a company CA is) needs no --proxy-ca-file; the pin still decides", async () => {
    const trusted = { NODE_EXTRA_CA_CERTS: ca.caFile };
    const ok = await cli(["login", "--proxy", proxy.addr, "--ca-pin", proxy.pin, "--user", "bob"], { home: tempDir("azgate-home-"), input: `${PASSWORD}\n`, env: trusted });
    expect(ok.code, ok.stderr).toBe(0);
    const wrongPin = `sha256:${"cd".repeat(32)}`;
    const refused = await cli(["login", "--proxy", proxy.addr, "--ca-pin", wrongPin, "--user", "bob"], { home: tempDir("azgate-home-"), input: `${PASSWORD}\n`, env: trusted });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`CA pin mismatch: the proxy at ${proxy.addr} presented ${proxy.pin}, expected ${wrongPin}`);
  });
});
