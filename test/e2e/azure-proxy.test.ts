/**
 * `azgate proxy azure` end to end: a real proxy, a real agent, the emulator,
 * and clients in other processes that know only the exports it printed: the
 * Debian az, @azure/identity with an ARM SDK (both endpoint styles), and
 * Python's azure-identity with azure-mgmt-resource. Then the refusals at the
 * local proxy, the audit trail, and a search of everything that reached the
 * workstation for the tokens the emulator issued.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readFileSync, readdirSync, statSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { networkInterfaces } from "node:os";
import path from "node:path";
import { findIssuedTokens, useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, startClusterWithAgent, workstationHome, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { azgateCommand, cli, parseExports, startCli, startProxyProcess, tempDir, type LongRunningCli } from "../helpers/azgate.ts";
import { connectThrough, rawRequest, startTrafficRecorder } from "../helpers/local-proxy.ts";
import { runCommand, runJsonClient } from "../helpers/run.ts";
import { buildGoClient } from "../helpers/go.ts";
import { stopAll } from "../helpers/stop.ts";
import { loadAppSession, type StoredAppSession } from "../../src/client/app-store.ts";
import { sendsInterimContinue } from "../../src/runtime/index.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const SUBSCRIPTION = "00000000-0000-0000-0000-000000000000";
const JS_CLIENT = path.resolve(import.meta.dirname, "../clients/js-msi-arm.mjs");
const PY_CLIENT = path.resolve(import.meta.dirname, "../clients/py-msi-arm.py");
const PY_DEFAULT = path.resolve(import.meta.dirname, "../clients/py-default.py");
const MSAL_CLIENT = path.resolve(import.meta.dirname, "../clients/msal-mi-arm.mjs");
const JS_DEFAULT = path.resolve(import.meta.dirname, "../clients/js-default.mjs");
const MS_REST_CLIENT = path.resolve(import.meta.dirname, "../clients/ms-rest-nodeauth-arm.mjs");

type ClientResult = { ok: boolean; message?: string; claims?: Record<string, unknown>; groups?: string[]; dialects?: string[] };

describe("azgate proxy azure, used from another process", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let home: string;
  let proxy: LongRunningCli;
  let exportsText: string;
  let env: Record<string, string>;
  let port: number;
  let session: StoredAppSession;
  /** Everything the workstation side printed, for the final token search. */
  const seen: string[] = [];
  const keep = <T extends { stdout: string; stderr: string }>(r: T): T => (seen.push(r.stdout, r.stderr), r);
  /** The token dialects `proxy azure --debug` logged since output offset `from`. */
  const dialectsSince = (from: number) => [...new Set([...proxy.output().slice(from).matchAll(/\[azgate\] token for \S+ \(([a-z0-9-]+) dialect/g)].map((m) => m[1]))];
  const client = async (script: string, extra: Record<string, string | undefined>) => {
    const clientEnv = Object.fromEntries(Object.entries({ ...env, HOME: home, SUBSCRIPTION, ...extra }).filter((e): e is [string, string] => e[1] !== undefined));
    const from = proxy.output().length;
    const res = await runJsonClient<ClientResult>(script, [], clientEnv);
    seen.push(JSON.stringify(res));
    return { ...res, dialects: dialectsSince(from) };
  };

  beforeAll(async () => {
    ({ cluster, agent } = await startClusterWithAgent(fx));
    const alice = await cluster.user("alice", ["azure-cli-access"], [READER, IDENTITY("teleport-contributor")]);
    home = await workstationHome(cluster, alice);
    const profile = { proxy: cluster.proxy.addr, user: "alice", cluster: "e2e", ca_pem: cluster.target.ca_pem };
    const login = keep(await cli(["apps", "login", "azure-cli", "--azure-identity", READER.toUpperCase()], { home, env: { HOME: home } }));
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain(`Your identity: ${READER}\n`);
    proxy = await startCli(["proxy", "azure", "--format", "unix", "--debug"], { home, env: { HOME: home }, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
    // What a user pastes into the other shell: the export lines.
    exportsText = proxy.output().split("\n").filter((l) => l.startsWith("export ")).join("\n");
    env = parseExports(exportsText);
    port = Number(/Started Azure proxy on http:\/\/127\.0\.0\.1:(\d+)\./.exec(proxy.output())?.[1]);
    session = (await loadAppSession(profile, "azure-cli", home))!;
  });
  afterAll(() => stopAll(proxy, agent, cluster));

  it("prints where it listens, the --port hint, and every export a client needs", () => {
    expect(port).toBeGreaterThan(0);
    expect(proxy.output()).toContain("To avoid port randomization, you can choose the listening port using the --port flag.");
    for (const name of ["AZURE_CONFIG_DIR", "HTTPS_PROXY", "HTTP_PROXY", "MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS"]) {
      expect(env[name], name).toBeTruthy();
    }
    expect(env.HTTPS_PROXY).toBe(`http://127.0.0.1:${port}`);
    expect(env.MSI_ENDPOINT).toBe(`https://azure-msi.azgate.invalid/${env.IDENTITY_HEADER}`);
    // App Service's older name for the same secret (session-env.ts says why that is safe).
    expect(env.MSI_SECRET).toBe(env.IDENTITY_HEADER);
    expect(statSync(env.NODE_EXTRA_CA_CERTS).mode & 0o777).toBe(0o600);
    // Python parses REQUESTS_CA_BUNDLE on every connection: the local CA alone by default; SSL_CERT_FILE (read once by Go) keeps the system's roots.
    expect(env.REQUESTS_CA_BUNDLE).toBe(session.caFile);
    expect(readFileSync(env.REQUESTS_CA_BUNDLE, "utf8").match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    expect(env.SSL_CERT_FILE).toBe(session.bundleFile);
    expect(readFileSync(env.SSL_CERT_FILE, "utf8").match(/BEGIN CERTIFICATE/g)!.length).toBeGreaterThan(10);
    // The same set azgate exec gives a command: the user's own credentials unset, then what each runtime and tool reads.
    expect(proxy.output()).toMatch(/^unset AZURE_CLIENT_SECRET AZURE_CLIENT_CERTIFICATE_PATH .*AZURE_USERNAME AZURE_PASSWORD .*ARM_CLIENT_SECRET/m);
    expect(env).toMatchObject({ AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential", AZURE_TENANT_ID: fx.emu.world.tenant_id, AZURE_CLIENT_ID: "00000000-0000-4000-8000-000000000002", ARM_USE_MSI: "true", ARM_SUBSCRIPTION_ID: SUBSCRIPTION, NO_PROXY: "127.0.0.1,localhost,::1" });
  });

  it("a second shell that sources the exports runs az group list", async () => {
    const from = proxy.output().length;
    const res = keep(await runCommand("/bin/sh", ["-c", `${exportsText}\naz group list -o json`], { HOME: home }));
    expect(res.code, res.stderr).toBe(0);
    expect(dialectsSince(from)).toEqual(["cloud-shell"]);
    expect(JSON.parse(res.stdout).map((g: { name: string }) => g.name)).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
  });

  it("@azure/identity ManagedIdentityCredential with the ARM SDK, App Service style (IDENTITY_ENDPOINT)", async () => {
    for (const resourceId of [undefined, READER]) {
      const res = await client(JS_CLIENT, { RESOURCE_ID: resourceId });
      expect(res.ok, res.message).toBe(true);
      expect(res.claims).toMatchObject({ iss: "azgate-client", xms_mirid: READER, tid: fx.emu.world.tenant_id });
      expect(res.groups).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
      expect(res.dialects).toEqual(["app-service-2019"]);
    }
  });

  it("@azure/identity ManagedIdentityCredential with the ARM SDK, MSI_ENDPOINT alone: Azure ML style with MSI_SECRET, Cloud Shell style without", async () => {
    // MSAL's MachineLearning source takes MSI_ENDPOINT with MSI_SECRET (the secret header, api-version 2017-09-01); its CloudShell source MSI_ENDPOINT alone.
    for (const [extra, dialect] of [[{}, "app-service-2017"], [{ MSI_SECRET: undefined }, "cloud-shell"]] as const) {
      const res = await client(JS_CLIENT, { IDENTITY_ENDPOINT: undefined, IDENTITY_HEADER: undefined, ...extra });
      expect(res.ok, res.message).toBe(true);
      expect(res.claims).toMatchObject({ iss: "azgate-client", xms_mirid: READER });
      expect(res.groups).toEqual(expect.arrayContaining(["myResourceGroup"]));
      expect(res.dialects).toEqual([dialect]);
    }
  });

  it("az 2.73+'s managed-identity path (MSAL's ManagedIdentityApplication): App Service source, with and without --resource-id, then ARM", async () => {
    for (const resourceId of [undefined, READER]) {
      const res = (await client(MSAL_CLIENT, { RESOURCE_ID: resourceId })) as ClientResult & { source?: string };
      expect(res.ok, `${resourceId}: ${res.message}`).toBe(true);
      expect(res.source).toBe("AppService");
      expect(res.dialects).toEqual(["app-service-2019"]);
      expect(res.claims).toMatchObject({ iss: "azgate-client", xms_mirid: READER, appid: "00000000-0000-4000-8000-000000000002" });
      expect(res.groups).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
    }
  });

  it("Python's azure-identity with azure-mgmt-resource, both endpoint styles", async () => {
    const msiOnly = { IDENTITY_ENDPOINT: undefined, IDENTITY_HEADER: undefined };
    const cases: [Record<string, string | undefined>, string][] = [
      [{}, "app-service-2019"],
      [{ RESOURCE_ID: READER }, "app-service-2019"],
      // MSI_ENDPOINT with MSI_SECRET is its Azure ML source: App Service 2017 (the secret header) on MSI_ENDPOINT.
      [msiOnly, "app-service-2017"],
      [{ ...msiOnly, RESOURCE_ID: READER }, "app-service-2017"],
      [{ ...msiOnly, MSI_SECRET: undefined }, "cloud-shell"],
    ];
    for (const [extra, dialect] of cases) {
      const res = await client(PY_CLIENT, extra);
      expect(res.ok, `${JSON.stringify(extra)}: ${res.message}`).toBe(true);
      expect(res.claims).toMatchObject({ iss: "azgate-client", xms_mirid: READER });
      expect(res.dialects).toEqual([dialect]);
      expect(res.groups).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
    }
  });

  // On Deno too: its node:http closes each connection handed over by emit("connection") after one response,
  // so the local proxy says Connection: close there (net/connect-server.ts); node-fetch's kept-alive second
  // request hung up on the closed socket before.
  it("@azure/ms-rest-nodeauth loginWithAppServiceMSI (MSI_SECRET, a trailing slash, clientid) with ms-rest-js's ServiceClient, as the older @azure/arm-* SDKs use it", async () => {
    for (const extra of [{}, { CLIENT_ID: "00000000-0000-4000-8000-000000000002" }]) {
      const res = await client(MS_REST_CLIENT, extra);
      expect(res.ok, `${JSON.stringify(extra)}: ${res.message}`).toBe(true);
      expect(res.claims).toMatchObject({ iss: "azgate-client", xms_mirid: READER, tid: fx.emu.world.tenant_id });
      expect(res.groups).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
      expect(res.dialects).toEqual(["app-service-2017"]);
    }
    // Another identity by its client ID: refused by the token endpoint, and the client says so.
    const other = await client(MS_REST_CLIENT, { CLIENT_ID: "00000000-0000-4000-8000-000000000003" });
    expect([other.ok, other.message]).toEqual([false, expect.stringContaining("unexpected value for parameter 'clientid'")]);
  });

  it("the token endpoint refuses a wrong secret, a missing Metadata header, and another identity by client_id or resource ID", async () => {
    const msi = (p: string, headers: Record<string, string>, body: string) =>
      rawRequest(port, session.ca.certPem, "azure-msi.azgate.invalid", { method: "POST", path: p, headers: { host: "azure-msi.azgate.invalid", "content-type": "application/x-www-form-urlencoded", ...headers }, body });
    const resource = "resource=https%3A%2F%2Fmanagement.azure.com";
    const wrongPath = await msi("/0123456789abcdef0123", { metadata: "true" }, resource);
    expect([wrongPath.status, wrongPath.body]).toEqual([400, expect.stringContaining("invalid secret")]);
    const noMetadata = await msi(`/${env.IDENTITY_HEADER}`, {}, resource);
    expect([noMetadata.status, noMetadata.body]).toEqual([400, expect.stringContaining("Metadata")]);
    // teleport-contributor's client ID, while the session is teleport-reader's.
    const byClientId = await msi(`/${env.IDENTITY_HEADER}`, { metadata: "true" }, `${resource}&client_id=00000000-0000-4000-8000-000000000003`);
    expect([byClientId.status, byClientId.body]).toEqual([400, expect.stringContaining("unexpected value for parameter 'client_id'")]);
    const good = await msi(`/${env.IDENTITY_HEADER}`, { metadata: "true" }, resource);
    expect(good.status).toBe(200);
    // The session's own identity by its client ID (learnt at apps login from the agent), as Terraform and az --client-id ask.
    const ownClientId = await msi(`/${env.IDENTITY_HEADER}`, { metadata: "true" }, `${resource}&client_id=00000000-0000-4000-8000-000000000002`);
    expect(ownClientId.status, ownClientId.body).toBe(200);
    expect(JSON.parse(good.body)).toMatchObject({ token_type: "Bearer", resource: "https://management.azure.com", expires_on: expect.stringMatching(/^\d+$/) });

    const appService = (query: string, secret: string) =>
      rawRequest(port, session.ca.certPem, "azure-identity.azgate.invalid", { method: "GET", path: `/?api-version=2019-08-01&resource=https://management.azure.com${query}`, headers: { host: "azure-identity.azgate.invalid", "x-identity-header": secret } });
    const wrongHeader = await appService("", "not-the-secret");
    expect([wrongHeader.status, wrongHeader.body]).toEqual([400, expect.stringContaining("invalid secret")]);
    const other = await appService(`&mi_res_id=${encodeURIComponent(IDENTITY("teleport-contributor"))}`, env.IDENTITY_HEADER);
    expect([other.status, other.body]).toEqual([400, expect.stringContaining("unexpected value for parameter 'mi_res_id'")]);
  });

  it("answers a POST's head with 100 Continue before its body arrives (az's token POSTs would otherwise wait out a delayed ACK)", async () => {
    // As Python's http.client sends it: the head in one write, the body in the next, no Expect header.
    const socket = await connectThrough(port, "azure-msi.azgate.invalid", session.ca.certPem);
    try {
      const body = "resource=https%3A%2F%2Fmanagement.azure.com";
      let received = "";
      const arrived = (pattern: RegExp) =>
        new Promise<void>((resolve, reject) => {
          const check = () => (pattern.test(received) ? (socket.off("data", onData), resolve()) : undefined);
          const onData = (d: Buffer) => ((received += d), check());
          socket.on("data", onData);
          socket.once("close", () => reject(new Error(`closed; received: ${received}`)));
          check();
        });
      socket.write(`POST /${env.IDENTITY_HEADER} HTTP/1.1\r\nhost: azure-msi.azgate.invalid\r\nmetadata: true\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: ${body.length}\r\n\r\n`);
      // The local proxy runs on the tests' runtime; on Deno it sends no interim response (runtime/version.ts).
      const interim = sendsInterimContinue();
      if (interim) await arrived(/^HTTP\/1\.1 100 Continue\r\n\r\n/);
      socket.write(body);
      await arrived(/HTTP\/1\.1 200 OK[\s\S]*"access_token"/);
      if (!interim) expect(received).not.toContain("100 Continue");
    } finally {
      socket.destroy();
    }
  });

  it("refuses a Host header that differs from the CONNECT target, and anything but CONNECT", async () => {
    const before = fx.emu.requests.length;
    for (const host of ["attacker.example.com", "management.azure.com.attacker.example.com", "graph.microsoft.com"]) {
      const res = await rawRequest(port, session.ca.certPem, "management.azure.com", { method: "GET", path: "/subscriptions?api-version=2022-12-01", headers: { host } });
      expect(res.status, host).toBe(421);
      expect(res.body).toContain("does not match the CONNECT target (management.azure.com:443)");
    }
    expect(fx.emu.requests.slice(before).filter((r) => r.path.startsWith("/subscriptions?api-version=2022-12-01"))).toEqual([]);
    const plain = await fetch(`http://127.0.0.1:${port}/`);
    expect([plain.status, await plain.text()]).toEqual([403, expect.stringContaining("takes CONNECT for HTTPS, and serves only its token endpoint")]);
  });

  it("listens on loopback only: the machine's other addresses are refused", async () => {
    const addresses = Object.values(networkInterfaces())
      .flat()
      .filter((a) => a && !a.internal && a.family === "IPv4")
      .map((a) => a!.address);
    for (const address of addresses) {
      const outcome = await new Promise<string>((resolve) => {
        const s = net.connect(port, address);
        s.once("connect", () => (s.destroy(), resolve("connected")));
        s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
      });
      expect(outcome, address).toBe("ECONNREFUSED");
    }
  });

  it("audits one app.request event per forwarded request, with Azure's request id", async () => {
    const res = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "ls", "--user", "alice", "--event", "app.request", "--format", "json"], { home: tempDir() });
    expect(res.code, res.stderr).toBe(0);
    const events = (JSON.parse(res.stdout) as Record<string, unknown>[]).filter((e) => e.event === "app.request");
    for (const e of events) {
      expect(e).toMatchObject({ user: "alice", app: "azure-cli", azure_identity: READER, method: expect.stringMatching(/^[A-Z]+$/), host: "management.azure.com", path: expect.stringMatching(/^\//), status: expect.any(Number), bytes_in: expect.any(Number), bytes_out: expect.any(Number), duration_ms: expect.any(Number) });
      expect(typeof e.query).toBe("string");
    }
    // What reached the emulator with a token for alice's identity is exactly what was audited.
    const claims = (auth: string | undefined) => (auth?.startsWith("Bearer ") ? JSON.parse(Buffer.from(auth.split(".")[1], "base64url").toString()) : null);
    const forwarded = fx.emu.requests.filter((r) => r.host === "management.azure.com" && claims(r.authorization)?.xms_mirid === READER).map((r) => r.requestId);
    expect(forwarded.length).toBeGreaterThan(5);
    expect(events.map((e) => e.azure_request_id).sort()).toEqual([...forwarded].sort());
    const list = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "ls", "--user", "alice", "--since", "1h"], { home: tempDir() });
    expect(list.stdout).toMatch(/app\.request\s+alice\s+GET management\.azure\.com\/subscriptions\/.* -> 200 in \d+ ms/);
    const bad = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "ls", "--since", "yesterday"], { home: tempDir() });
    expect([bad.code, bad.stderr]).toEqual([1, expect.stringContaining('since: "yesterday" is not a duration')]);
  });

  it("azgate exec runs any tool with the session's identity and none of the user's own credentials: Python's and Node's DefaultAzureCredential, a Go program on go-autorest; exit code and a missing command", async () => {
    // A shell where the user also has credentials of their own: none may reach the child, or DefaultAzureCredential would take them.
    const userShell = { HOME: home, AZURE_CLIENT_SECRET: "the-users-own-secret", AZURE_CLIENT_ID: "99999999-0000-4000-8000-000000000099", AZURE_TENANT_ID: "99999999-0000-4000-8000-000000000098", AZURE_USERNAME: "me@example.com" };
    const py = keep(await cli(["exec", "--", "/usr/bin/python3", PY_DEFAULT], { home, env: userShell }));
    expect(py.code, py.stderr).toBe(0);
    const out = JSON.parse(py.stdout.trim().split("\n").pop()!) as ClientResult & { secret_seen: boolean };
    expect(out, out.message).toMatchObject({ ok: true, secret_seen: false });
    expect(out.groups).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
    expect(out.claims).toMatchObject({ iss: "azgate-client", xms_mirid: READER, tid: fx.emu.world.tenant_id, appid: "00000000-0000-4000-8000-000000000002", oid: "10000000-0000-4000-8000-000000000002" });
    const shell = keep(await cli(["exec", "--", "/bin/sh", "-c", 'echo "${AZURE_CLIENT_SECRET-unset} ${AZURE_USERNAME-unset} $AZURE_CLIENT_ID $ARM_USE_MSI $AZURE_TOKEN_CREDENTIALS $ARM_SUBSCRIPTION_ID $REQUESTS_CA_BUNDLE"; exit 7'], { home, env: userShell }));
    // Any tool may call other HTTPS services too: under exec, Python keeps the system's roots.
    expect([shell.code, shell.stdout]).toEqual([7, `unset unset 00000000-0000-4000-8000-000000000002 true ManagedIdentityCredential ${SUBSCRIPTION} ${session.bundleFile}\n`]);
    // A Node script on DefaultAzureCredential: ARM, then Key Vault (another audience, through the agent).
    const js = keep(await cli(["exec", "--", "node", JS_DEFAULT], { home, env: userShell }));
    expect(js.code, js.stderr).toBe(0);
    const jsOut = JSON.parse(js.stdout.trim()) as ClientResult & { secret?: string; secret_seen: boolean };
    expect(jsOut, jsOut.message).toMatchObject({ ok: true, secret_seen: false, secret: "emulated-secret-value", claims: { xms_mirid: READER } });
    expect(jsOut.groups).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
    // A Go program on go-autorest's adal (MSI_ENDPOINT with MSI_SECRET: App Service 2017), then an ARM GET: Go's own proxy and CA settings.
    const goClient = buildGoClient("go-msi-arm");
    const go = keep(await cli(["exec", "--", goClient], { home, env: userShell }));
    expect(go.code, go.stderr).toBe(0);
    const goOut = JSON.parse(go.stdout.trim()) as ClientResult;
    expect(goOut, goOut.message).toMatchObject({ ok: true, claims: { xms_mirid: READER, appid: "00000000-0000-4000-8000-000000000002" } });
    expect(goOut.groups).toEqual(expect.arrayContaining(["myResourceGroup", "production"]));
    const missing = await cli(["exec", "--", "no-such-tool-xyz"], { home, env: { HOME: home } });
    expect([missing.code, missing.stderr]).toEqual([1, "ERROR: no-such-tool-xyz: command not found (not on PATH)\n"]);
  });

  it("the token endpoint on loopback HTTP (IDENTITY_ENDPOINT) answers only by this port's own name, with the secret; no plain proxying, to IMDS least of all", async () => {
    expect(env.IDENTITY_ENDPOINT).toBe(`http://127.0.0.1:${port}/azgate/msi/token`);
    const get = (path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request({ host: "127.0.0.1", port, path, headers }, (res) => {
          let body = "";
          res.on("data", (d) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.end();
      });
    const q = "/azgate/msi/token?api-version=2019-08-01&resource=https://management.azure.com";
    const ok = await get(q, { host: `127.0.0.1:${port}`, "x-identity-header": env.IDENTITY_HEADER });
    expect(ok.status, ok.body).toBe(200);
    // App Service's spellings: a trailing slash, api-version 2017-09-01 with the secret header (MSI_SECRET).
    const slash = await get("/azgate/msi/token/?api-version=2017-09-01&resource=https://management.azure.com", { host: `127.0.0.1:${port}`, secret: env.MSI_SECRET });
    expect(slash.status, slash.body).toBe(200);
    expect((await get("/azgate/msi/token/x?resource=https://management.azure.com", { host: `127.0.0.1:${port}`, secret: env.MSI_SECRET })).status).toBe(403);
    expect(JSON.parse(ok.body)).toMatchObject({ token_type: "Bearer", client_id: "00000000-0000-4000-8000-000000000002" });
    // Through HTTP_PROXY (absolute form), as a client that ignores NO_PROXY sends it: the same endpoint.
    expect((await get(`http://127.0.0.1:${port}${q}`, { host: `127.0.0.1:${port}`, "x-identity-header": env.IDENTITY_HEADER })).status).toBe(200);
    // A name an attacker's page could use (DNS rebinding), no secret, IMDS, another path: refused.
    expect((await get(q, { host: `rebind.example:${port}`, "x-identity-header": env.IDENTITY_HEADER })).status).toBe(403);
    expect((await get(q, { host: `127.0.0.1:${port}` })).status).toBe(400);
    const from = proxy.output().length;
    const imds = await get("http://169.254.169.254/metadata/identity/oauth2/token?resource=x", { host: "169.254.169.254", metadata: "true" });
    expect([imds.status, JSON.parse(imds.body).error.code]).toEqual([403, "target_refused"]);
    // --debug says so (a client that ignored the exported endpoints and went to IMDS), without the query.
    await expect.poll(() => proxy.output().slice(from)).toContain("[azgate] refused plain HTTP GET 169.254.169.254/metadata/identity/oauth2/token: the azgate local proxy takes CONNECT for HTTPS");
    expect(proxy.output().slice(from)).not.toContain("resource=x");
    expect((await get("/other", { host: `127.0.0.1:${port}` })).status).toBe(403);
  });

  it('eval "$(azgate env)" starts the local proxy in the background for this shell; az works; eval "$(azgate env --unset)" stops it and unsets it all', async () => {
    const [cmd, argv] = azgateCommand([]);
    const azgate = [cmd, ...argv].map((a) => `'${a}'`).join(" ");
    const script = `eval "$(${azgate} env --ca-bundle system)" || exit 9
echo "pid=$AZGATE_ENV_PID ca=$REQUESTS_CA_BUNDLE"
az group list -o json > "$HOME/groups.json" || exit 8
eval "$(${azgate} env --unset)"
echo "after=\${HTTPS_PROXY-unset},\${AZGATE_ENV_PID-unset},\${IDENTITY_ENDPOINT-unset}"`;
    const res = keep(await runCommand("/bin/sh", ["-c", script], { HOME: home, AZGATE_HOME: home }));
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(readFileSync(path.join(home, "groups.json"), "utf8")).map((g: { name: string }) => g.name)).toEqual(expect.arrayContaining(["myResourceGroup"]));
    expect(res.stdout).toContain("after=unset,unset,unset");
    // --ca-bundle system: Python trusts the system's roots as well as the local CA (for tools that call other services too).
    expect(res.stdout).toContain(`ca=${session.bundleFile}\n`);
    const pid = Number(/pid=(\d+)/.exec(res.stdout)?.[1]);
    expect(pid).toBeGreaterThan(0);
    // --unset stopped the background proxy (SIGTERM; it closes cleanly).
    await expect.poll(() => { try { process.kill(pid, 0); return "alive"; } catch { return "gone"; } }, { timeout: 10_000 }).toBe("gone");
  });

  it("no byte that reached the workstation holds a token the emulator issued", async () => {
    // Decrypt the local proxy's answers: clients go through a recording man in the middle using the same local CA.
    const recorder = await startTrafficRecorder({ upstreamPort: port, ca: session.ca });
    const recorded = { ...env, HTTPS_PROXY: `http://127.0.0.1:${recorder.port}`, HTTP_PROXY: `http://127.0.0.1:${recorder.port}` };
    try {
      const shell = Object.entries(recorded).map(([k, v]) => `export ${k}='${v}'`).join("\n");
      for (const cmd of ["az group list -o json", "az account get-access-token -o json", "az identity show -g myResourceGroup -n teleport-reader -o json"]) {
        const res = keep(await runCommand("/bin/sh", ["-c", `${shell}\n${cmd}`], { HOME: home }));
        expect(res.code, `${cmd}: ${res.stderr}\nrecorder: ${recorder.problems().join("; ")}`).toBe(0);
      }
      const saved = env;
      env = recorded;
      for (const script of [JS_CLIENT, PY_CLIENT]) {
        const res = await client(script, {});
        expect(res.ok, `${path.basename(script)}: ${res.message}`).toBe(true);
      }
      env = saved;
    } finally {
      await recorder.close();
    }
    const traffic = recorder.received();
    expect(traffic.toString("latin1")).toContain('"name":"myResourceGroup"');
    const files = readdirSync(home, { recursive: true })
      .map((f) => path.join(home, String(f)))
      .filter((f) => statSync(f).isFile())
      .map((f) => readFileSync(f, "latin1"));
    expect(fx.emu.issuedTokens.size).toBeGreaterThan(0);
    expect(findIssuedTokens(fx, traffic)).toEqual([]);
    expect(findIssuedTokens(fx, [...seen, proxy.output(), ...files].join("\n"))).toEqual([]);
  });

  it("re-dials the proxy after it restarts: the next az command in the second shell works", async () => {
    const mark = agent.output().length;
    await cluster.proxy.stop();
    cluster.proxy = await startProxyProcess({ dataDir: cluster.proxy.dataDir, home: cluster.home, port: cluster.proxy.port, args: ["--second-factor", "off"] });
    await agent.waitFor(/tunnel to .* is up/, 20_000, mark);
    const res = await runCommand("/bin/sh", ["-c", `${exportsText}\naz group list -o json`], { HOME: home });
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout).map((g: { name: string }) => g.name)).toContain("myResourceGroup");
  });

  it("shuts down cleanly on Ctrl-C and frees the port", async () => {
    const code = await proxy.stop("SIGINT");
    // A Deno parent reports a child it sent SIGINT to as killed by SIGINT even when the child handled
    // it and exited 0 (seen with a four-line script), so the exit code is only read on Node.
    if (typeof (globalThis as { Deno?: unknown }).Deno === "undefined") expect(code, proxy.output()).toBe(0);
    const outcome = await new Promise<string>((resolve) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), resolve("connected")));
      s.once("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
    });
    expect(outcome).toBe("ECONNREFUSED");
    expect(proxy.output()).not.toMatch(/error/i);
  });
});
