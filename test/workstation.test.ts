/**
 * The workstation pieces in-process: the token endpoint emulation (both
 * protocols, every refusal), the loopback check, and the export syntax.
 */
import { systemClock } from "../src/util/clock.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { describe, expect, it } from "vitest";
import net from "node:net";
import tls from "node:tls";
import { generateKeyPair, importPrivateKeyPem, privateKeyToPem } from "../src/pki/keys.ts";
import { createLocalCa, LEAF_CACHE_SIZE, LeafMinter } from "../src/client/local-ca.ts";
import { issueServerCert } from "../src/pki/certificate.ts";
import { x509 } from "../src/pki/x509.ts";
import { verifyPlaceholder } from "../src/azure/placeholder.ts";
import { tokenEndpoint, type TokenDialect } from "../src/client/token-endpoint.ts";
import { azureEnv, IDENTITY_HOST, isLoopbackTokenPath, loopbackTokenEndpoint, MSI_HOST, tokenSecret } from "../src/client/session-env.ts";
import { MSIAppServiceTokenCredentials } from "@azure/ms-rest-nodeauth";
import type { HttpClient, HttpOperationResponse, WebResourceLike } from "@azure/ms-rest-js";
import { isLoopback } from "../src/net/connect-server.ts";
import { exportLines } from "../src/cli/shell-exports.ts";
import { usesMsal } from "../src/client/az.ts";
import { EXEC_VARIABLES, execEnv, SCRUBBED } from "../src/client/exec-env.ts";

const ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const TENANT = "11111111-1111-4111-8111-111111111111";

const CLIENT_ID = "00000000-0000-4000-8000-000000000002";
const PRINCIPAL_ID = "10000000-0000-4000-8000-000000000002";

/** The token endpoint on a fake clock (`clock` in the result): its expiry is tested by moving it. */
async function endpoint(lifeMs = 3_600_000) {
  const clock = new FakeClock();
  const expires = new Date(clock.now() + lifeMs);
  const keys = await generateKeyPair();
  const seen: TokenDialect[] = [];
  const answer = tokenEndpoint({ secret: "s3cret", identity: ID, clientId: CLIENT_ID, principalId: PRINCIPAL_ID, tenant: TENANT, signer: () => ({ key: keys.privateKey }), expires, observe: (i) => seen.push(i.dialect), clock });
  const call = async (url: string, init: RequestInit = {}) => {
    const res = await answer(new Request(url, init))!;
    return { status: res.status, body: (await res.json()) as Record<string, string> };
  };
  return { keys, expires, call, seen, clock, answer };
}

const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString()) as Record<string, unknown>;

const form = (body: string, headers: Record<string, string> = { metadata: "true" }) => ({ method: "POST", body, headers: { "content-type": "application/x-www-form-urlencoded", ...headers } });

describe("token endpoint emulation", () => {
  it("MSI_ENDPOINT (az 2.45 style POST): a placeholder for the session's identity, bounded by the app certificate", async () => {
    const { keys, expires, call, clock } = await endpoint();
    for (const body of ["resource=https%3A%2F%2Fmanagement.core.windows.net%2F", `resource=https%3A%2F%2Fmanagement.core.windows.net%2F&msi_res_id=${encodeURIComponent(ID.toLowerCase())}`]) {
      const res = await call(`https://${MSI_HOST}/s3cret`, form(body));
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ token_type: "Bearer", resource: "https://management.core.windows.net/", expires_on: String(Math.floor(expires.getTime() / 1000)) });
      const claims = verifyPlaceholder(res.body.access_token, await crypto.subtle.exportKey("jwk", keys.publicKey), ID, clock.date());
      expect(claims).toMatchObject({ tid: TENANT, resource: "https://management.core.windows.net/", xms_mirid: ID });
      expect(claims.exp).toBeLessThanOrEqual(Math.floor(expires.getTime() / 1000));
    }
  });

  it("IDENTITY_ENDPOINT (App Service GET): the header secret, no Metadata needed, mi_res_id checked", async () => {
    const { call } = await endpoint();
    const ok = await call(`https://${IDENTITY_HOST}/?api-version=2019-08-01&resource=https://vault.azure.net&mi_res_id=${encodeURIComponent(ID)}`, { headers: { "x-identity-header": "s3cret" } });
    expect([ok.status, ok.body.resource]).toEqual([200, "https://vault.azure.net"]);
    const wrong = await call(`https://${IDENTITY_HOST}/?resource=https://vault.azure.net`, { headers: { "x-identity-header": "nope" } });
    expect([wrong.status, wrong.body.error_description]).toEqual([400, "invalid secret"]);
  });

  it("refuses what it cannot answer truthfully, each with a message that says why", async () => {
    const { call } = await endpoint();
    const msi = (body: string, headers?: Record<string, string>, secret = "s3cret") => call(`https://${MSI_HOST}/${secret}`, form(body, headers));
    const cases: [Promise<{ status: number; body: Record<string, string> }>, RegExp][] = [
      [msi("resource=x", {}), /Required metadata header not specified/],
      [msi("resource=x", { metadata: "true" }, "guess"), /invalid secret/],
      [msi(""), /missing value for parameter 'resource'/],
      [msi("resource=x&client_id=00000000-0000-4000-8000-000000000099"), /unexpected value for parameter 'client_id': 00000000-0000-4000-8000-000000000099; this app session uses .*reader \(client ID 00000000-0000-4000-8000-000000000002\)/],
      [msi("resource=x&object_id=10000000-0000-4000-8000-000000000099"), /unexpected value for parameter 'object_id'/],
      [msi(`resource=x&msi_res_id=${encodeURIComponent(ID.replace("reader", "owner"))}`), /unexpected value for parameter 'msi_res_id'.*uses .*reader/],
      // No secret in any carrier, or the IMDS shape without Metadata.
      [call(`https://${IDENTITY_HOST}/?api-version=2019-08-01&resource=x`), /invalid secret/],
      [call(`https://${IDENTITY_HOST}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x`, { headers: { "x-ms-identity": "s3cret" } }), /Required metadata header not specified/],
    ];
    for (const [pending, message] of cases) {
      const res = await pending;
      expect(res.status).toBe(400);
      expect(res.body.error_description).toMatch(message);
    }
  });

  // Each client's exact token request, as its source builds it, answered and parsed the way that client parses it.
  describe("every client's dialect", () => {
    const ARM = "https://management.azure.com";

    it("MSAL (az >= 2.73, @azure/identity, MSAL Python): App Service 2019 GET, X-IDENTITY-HEADER, mi_res_id or client_id; reads expires_on", async () => {
      // msal-node src/client/ManagedIdentitySources/AppService.ts; msal/managed_identity.py _obtain_token_on_app_service
      const { call, seen } = await endpoint();
      for (const selector of [`mi_res_id=${encodeURIComponent(ID)}`, `client_id=${CLIENT_ID}`, `object_id=${PRINCIPAL_ID}`, ""]) {
        const res = await call(`https://${IDENTITY_HOST}/?api-version=2019-08-01&resource=${encodeURIComponent(ARM)}${selector ? "&" + selector : ""}`, { headers: { "x-identity-header": "s3cret" } });
        expect([selector, res.status]).toEqual([selector, 200]);
        expect(Number(res.body.expires_on) - Date.now() / 1000).toBeGreaterThan(3000);
      }
      expect(seen).toEqual(["app-service-2019", "app-service-2019", "app-service-2019", "app-service-2019"]);
    });

    it("Go azidentity: App Service GET with X-IDENTITY-HEADER only (no Metadata), principal_id; reads expires_in or expires_on", async () => {
      // Azure/azure-sdk-for-go sdk/azidentity/managed_identity_client.go createAppServiceAuthRequest
      const { call, seen } = await endpoint();
      const res = await call(`https://${IDENTITY_HOST}/msi/token?api-version=2019-08-01&resource=${encodeURIComponent(ARM)}&principal_id=${PRINCIPAL_ID}`, { headers: { "X-IDENTITY-HEADER": "s3cret" } });
      expect(res.status).toBe(200);
      expect(Number(res.body.expires_in)).toBeGreaterThan(3000);
      expect(seen).toEqual(["app-service-2019"]);
    });

    it("Terraform azurerm (go-azure-sdk): the IMDS shape, client_id only, the secret as x-ms-identity; reads only expires_in", async () => {
      // hashicorp/go-azure-sdk sdk/auth/managed_identity_authorizer.go: api-version 2018-02-01, Metadata: true, x-ms-identity when IDENTITY_HEADER is set
      const { call, seen } = await endpoint();
      const res = await call(`https://${MSI_HOST}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent("https://graph.microsoft.com/")}&client_id=${CLIENT_ID}`, { headers: { Metadata: "true", "x-ms-identity": "s3cret" } });
      expect(res.status).toBe(200);
      expect(Number.parseInt(res.body.expires_in, 10)).toBeGreaterThan(3000);
      // The claims Terraform parses (go-azure-sdk sdk/auth/claims.go): the identity's own, not placeholders.
      expect(claimsOf(res.body.access_token)).toMatchObject({ tid: TENANT, xms_mirid: ID, appid: CLIENT_ID, azp: CLIENT_ID, oid: PRINCIPAL_ID, idtyp: "app", aud: "https://graph.microsoft.com/" });
      expect(seen).toEqual(["imds"]);
    });

    it("az in App Service mode (2017): GET with the secret header, clientid, the resource not URL-encoded", async () => {
      // msrestazure azure_active_directory.py get_msi_token_webapp
      const { call, seen } = await endpoint();
      const res = await call(`https://${IDENTITY_HOST}/?resource=https://management.core.windows.net/&api-version=2017-09-01&clientid=${CLIENT_ID}`, { headers: { secret: "s3cret" } });
      expect([res.status, res.body.resource, res.body.token_type]).toEqual([200, "https://management.core.windows.net/", "Bearer"]);
      expect(seen).toEqual(["app-service-2017"]);
    });

    it("az 2.45 on the MSI_ENDPOINT path sends an object ID as client_id (its bug): accepted, as it names this identity", async () => {
      const { call, seen } = await endpoint();
      const res = await call(`https://${MSI_HOST}/s3cret`, form(`resource=${encodeURIComponent(ARM)}&client_id=${PRINCIPAL_ID}`));
      expect(res.status).toBe(200);
      expect(seen).toEqual(["cloud-shell"]);
    });
  });

  describe("App Service and Cloud Shell spellings", () => {
    const ARM = "https://management.azure.com/";
    /**
     * A request as the local proxy routes it: the emulated hosts to the endpoint, the loopback port's token
     * path (isLoopbackTokenPath, what local-proxy.ts checks) to its loopback half, anything else refused.
     */
    const route = (answer: Awaited<ReturnType<typeof endpoint>>["answer"]) => async (req: Request): Promise<Response> => {
      const url = new URL(req.url);
      if (url.hostname === "127.0.0.1") return isLoopbackTokenPath(url.pathname) ? answer.loopback(req) : new Response("serves only its token endpoint", { status: 403 });
      return (await answer(req)) ?? new Response("not intercepted", { status: 502 });
    };
    /** ms-rest-js's HttpClient over `route`: the client builds its own request, azgate answers it. */
    const httpClient = (send: (req: Request) => Promise<Response>): HttpClient => ({
      async sendRequest(req: WebResourceLike): Promise<HttpOperationResponse> {
        const res = await send(new Request(req.url, { method: req.method, headers: req.headers.rawHeaders() }));
        return { request: req, status: res.status, headers: req.headers, bodyAsText: await res.text() } as HttpOperationResponse;
      },
    });

    it("ms-rest-nodeauth loginWithAppServiceMSI: its own GET (api-version 2017-09-01, the secret header, clientid, a trailing slash) on IDENTITY_ENDPOINT or MSI_ENDPOINT", async () => {
      // @azure/ms-rest-nodeauth dist/lib/credentials/msiAppServiceTokenCredentials.js: endpoint + "/" unless it ends in one.
      const { answer, seen } = await endpoint();
      const send = route(answer);
      const urls: string[] = [];
      const recording = (req: Request) => (urls.push(req.url), send(req));
      for (const msiEndpoint of [loopbackTokenEndpoint(4567), `https://${MSI_HOST}/s3cret`]) {
        for (const clientId of [undefined, CLIENT_ID]) {
          const creds = new MSIAppServiceTokenCredentials({ msiEndpoint, msiSecret: "s3cret", clientId, httpClient: httpClient(recording) });
          const token = await creds.getToken();
          expect([msiEndpoint, clientId, token.tokenType]).toEqual([msiEndpoint, clientId, "Bearer"]);
          expect(claimsOf(token.accessToken)).toMatchObject({ xms_mirid: ID, aud: ARM });
        }
      }
      expect(urls[0]).toBe(`http://127.0.0.1:4567/azgate/msi/token/?resource=${encodeURIComponent(ARM)}&api-version=2017-09-01`);
      expect(seen).toEqual(Array(4).fill("app-service-2017"));
      // Another identity's client ID, or the wrong secret: refused, and the client says so.
      await expect(new MSIAppServiceTokenCredentials({ msiEndpoint: loopbackTokenEndpoint(4567), msiSecret: "s3cret", clientId: "00000000-0000-4000-8000-000000000099", httpClient: httpClient(send) }).getToken()).rejects.toThrow(/unexpected value for parameter 'clientid'/);
      await expect(new MSIAppServiceTokenCredentials({ msiEndpoint: loopbackTokenEndpoint(4567), msiSecret: "guess", httpClient: httpClient(send) }).getToken()).rejects.toThrow(/invalid secret/);
    });

    it("each dialect with each selector spelling: resource, clientid, client_id, object_id, principal_id, mi_res_id, msi_res_id", async () => {
      const { answer } = await endpoint();
      const send = route(answer);
      const selectors = ["", `clientid=${CLIENT_ID}`, `client_id=${CLIENT_ID}`, `object_id=${PRINCIPAL_ID}`, `principal_id=${PRINCIPAL_ID}`, `mi_res_id=${encodeURIComponent(ID)}`, `msi_res_id=${encodeURIComponent(ID.toLowerCase())}`];
      const spellings: [string, string, Record<string, string>][] = [
        ["App Service 2017 (IDENTITY_ENDPOINT, secret)", `https://${IDENTITY_HOST}/?api-version=2017-09-01&resource=${ARM}`, { secret: "s3cret" }],
        ["App Service 2017 (loopback, trailing slash)", `http://127.0.0.1:4567/azgate/msi/token/?api-version=2017-09-01&resource=${encodeURIComponent(ARM)}`, { secret: "s3cret" }],
        ["App Service 2017 (MSI_ENDPOINT with MSI_SECRET)", `https://${MSI_HOST}/s3cret?api-version=2017-09-01&resource=${encodeURIComponent(ARM)}`, { secret: "s3cret" }],
        ["App Service 2019 (X-IDENTITY-HEADER)", `https://${IDENTITY_HOST}/msi/token?api-version=2019-08-01&resource=${encodeURIComponent(ARM)}`, { "X-IDENTITY-HEADER": "s3cret" }],
        ["App Service 2019 (loopback, trailing slash)", `http://127.0.0.1:4567/azgate/msi/token/?api-version=2019-08-01&resource=${encodeURIComponent(ARM)}`, { "X-IDENTITY-HEADER": "s3cret" }],
        ["Cloud Shell GET (MSI_ENDPOINT, trailing slash)", `https://${MSI_HOST}/s3cret/?resource=${encodeURIComponent(ARM)}`, { Metadata: "true" }],
      ];
      for (const [name, url, headers] of spellings) {
        for (const selector of selectors) {
          const res = await send(new Request(`${url}${selector ? "&" + selector : ""}`, { headers }));
          const body = (await res.json()) as Record<string, string>;
          expect([name, selector, res.status, body.error_description]).toEqual([name, selector, 200, undefined]);
          expect(claimsOf(body.access_token)).toMatchObject({ xms_mirid: ID });
        }
      }
    });

    it("every secret a request carries must be the session's, and every selector it gives must name the session's identity", async () => {
      const { answer } = await endpoint();
      const send = route(answer);
      const other = "00000000-0000-4000-8000-000000000099";
      const refused: [string, RequestInit, RegExp][] = [
        // MSI_ENDPOINT's path and the secret header both carry a secret: both must be this session's.
        [`https://${MSI_HOST}/guess?resource=x`, { headers: { secret: "s3cret" } }, /invalid secret/],
        [`https://${MSI_HOST}/s3cret?resource=x`, { headers: { secret: "guess" } }, /invalid secret/],
        // The session's identity first, another second: not the first selector alone decides.
        [`https://${IDENTITY_HOST}/?resource=x&client_id=${CLIENT_ID}&mi_res_id=${encodeURIComponent(ID.replace("reader", "owner"))}`, { headers: { "x-identity-header": "s3cret" } }, /unexpected value for parameter 'mi_res_id'/],
        [`https://${IDENTITY_HOST}/?resource=x&clientid=${CLIENT_ID}&clientid=${other}`, { headers: { secret: "s3cret" } }, /unexpected value for parameter 'clientid': 00000000-0000-4000-8000-000000000099/],
        // A POST's body cannot name another identity behind the query's own.
        [`https://${MSI_HOST}/s3cret?client_id=${CLIENT_ID}`, form(`resource=x&client_id=${other}`), /unexpected value for parameter 'client_id'/],
      ];
      for (const [url, init, message] of refused) {
        const res = await send(new Request(url, init));
        expect([url, res.status]).toEqual([url, 400]);
        expect(((await res.json()) as Record<string, string>).error_description).toMatch(message);
      }
      // The loopback port serves its token path only (with or without the trailing slash).
      expect((await send(new Request("http://127.0.0.1:4567/azgate/msi/token/x?resource=x", { headers: { secret: "s3cret" } }))).status).toBe(403);
      expect((await send(new Request("http://127.0.0.1:4567/azgate/msi/tokens?resource=x", { headers: { secret: "s3cret" } }))).status).toBe(403);
    });
  });

  it("after the app certificate ends it issues nothing (its clock moved to the end, not waited for)", async () => {
    const { call, clock } = await endpoint(60_000);
    // Token times are whole seconds: two seconds before the end it still issues, for what is left.
    clock.advance(58_000);
    const before = await call(`https://${MSI_HOST}/s3cret`, form("resource=x"));
    expect(before.status).toBe(200);
    expect(Number(before.body.expires_in)).toBeLessThanOrEqual(2);
    clock.advance(2_000);
    const res = await call(`https://${MSI_HOST}/s3cret`, form("resource=x"));
    expect([res.status, res.body.error_description]).toEqual([401, expect.stringMatching(/app session expired at .*; run azgate apps login again/)]);
  });

  it("answers only its two host names", async () => {
    const keys = await generateKeyPair();
    const answer = tokenEndpoint({ secret: "s", identity: ID, tenant: TENANT, signer: () => ({ key: keys.privateKey }), expires: new Date(Date.now() + 60_000), clock: systemClock });
    expect(answer(new Request("https://management.azure.com/s"))).toBeNull();
  });
});

describe("local proxy helpers", () => {
  it("isLoopback: 127/8 and ::1 (also IPv4-mapped) only", () => {
    for (const a of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]) expect(isLoopback(a), a).toBe(true);
    for (const a of ["10.0.0.1", "192.168.1.10", "::ffff:10.0.0.1", "fe80::1", "0.0.0.0", "", undefined, "128.0.0.1", "::2"]) expect(isLoopback(a), String(a)).toBe(false);
  });

  it("prints exports in each shell's syntax, quoting only where a POSIX shell needs it", () => {
    const env = { A: "http://127.0.0.1:1", B: "/tmp/my dir/it's.pem" };
    expect(exportLines(env, "unix")).toBe(`export A=http://127.0.0.1:1\nexport B='/tmp/my dir/it'\\''s.pem'`);
    expect(exportLines(env, "powershell")).toBe(`$Env:A='http://127.0.0.1:1'\n$Env:B='/tmp/my dir/it''s.pem'`);
    expect(exportLines(env, "command-prompt")).toBe(`set A=http://127.0.0.1:1\nset B=/tmp/my dir/it's.pem`);
    expect(exportLines(env, "text")).toBe(`A=http://127.0.0.1:1\nB=/tmp/my dir/it's.pem`);
  });
});

describe("running az", () => {
  it("reuses the secret a shell already exported from proxy azure, else makes a new random one", () => {
    expect(tokenSecret({ IDENTITY_ENDPOINT: `https://${IDENTITY_HOST}`, IDENTITY_HEADER: "abc123abc123abc123ab" })).toBe("abc123abc123abc123ab");
    expect(tokenSecret({ MSI_ENDPOINT: `https://${MSI_HOST}/def456def456def456de` })).toBe("def456def456def456de");
    // What proxy azure exports now: the loopback endpoint on its port.
    expect(tokenSecret({ IDENTITY_ENDPOINT: "http://127.0.0.1:45678/azgate/msi/token", IDENTITY_HEADER: "abc123abc123abc123ab" })).toBe("abc123abc123abc123ab");
    // MSI_SECRET, as proxy azure exports it: the same secret.
    expect(tokenSecret({ IDENTITY_ENDPOINT: "http://127.0.0.1:45678/azgate/msi/token", IDENTITY_HEADER: "abc123abc123abc123ab", MSI_SECRET: "abc123abc123abc123ab" })).toBe("abc123abc123abc123ab");
    // Someone else's endpoint is not ours to reuse: a VM's, or App Service's own loopback one.
    for (const theirs of ["http://169.254.169.254/msi", "http://127.0.0.1:41741/MSI/token/"]) {
      const fresh = tokenSecret({ IDENTITY_ENDPOINT: theirs, IDENTITY_HEADER: "theirs" });
      expect(fresh).toMatch(/^[0-9a-f]{20}$/);
    }
    expect(tokenSecret({})).not.toBe(tokenSecret({}));
  });

  it("refuses a half or damaged azgate export instead of silently replacing it", () => {
    const bad: Record<string, string>[] = [
      { IDENTITY_HEADER: "abc123abc123abc123ab" },
      { IDENTITY_ENDPOINT: `https://${IDENTITY_HOST}` },
      { IDENTITY_ENDPOINT: `https://${IDENTITY_HOST}`, IDENTITY_HEADER: "x y" },
      { IDENTITY_ENDPOINT: "http://127.0.0.1:45678/azgate/msi/token" },
      { MSI_ENDPOINT: `https://${MSI_HOST}/` },
      { MSI_ENDPOINT: `https://${MSI_HOST}/abc123abc123abc123ab/../x` },
      { MSI_ENDPOINT: `https://${MSI_HOST}/abc123abc123abc123ab`, IDENTITY_ENDPOINT: `https://${IDENTITY_HOST}`, IDENTITY_HEADER: "def456def456def456de" },
      { IDENTITY_ENDPOINT: "http://127.0.0.1:45678/azgate/msi/token", IDENTITY_HEADER: "abc123abc123abc123ab", MSI_SECRET: "def456def456def456de" },
    ];
    for (const env of bad) expect(() => tokenSecret(env), JSON.stringify(env)).toThrow(/not azgate's\. Unset them/);
  });

  it("logs in with --resource-id from az 2.73 (MSAL), --username before, MSAL when unknown", () => {
    expect(usesMsal("2.45.0")).toBe(false);
    expect(usesMsal("2.72.9")).toBe(false);
    expect(usesMsal("2.73.0")).toBe(true);
    expect(usesMsal("2.80.1")).toBe(true);
    expect(usesMsal("3.0.0")).toBe(true);
    expect(usesMsal(null)).toBe(true);
  });
});

describe("the local CA", () => {
  /** A TLS handshake to a server presenting `certPem` for `name`, trusting the local CA only. */
  async function handshake(ca: { certPem: string }, name: string, keyPem: string, certPem: string): Promise<string> {
    const server = tls.createServer({ key: keyPem, cert: certPem }, (s) => s.end());
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      return await new Promise<string>((resolve) => {
        const s = tls.connect({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port, servername: net.isIP(name) ? undefined : name, ca: ca.certPem }, () => {
          s.destroy();
          resolve("ok");
        });
        s.on("error", (e: NodeJS.ErrnoException) => resolve(`${e.code}: ${e.message}`));
      });
    } finally {
      server.close();
    }
  }

  it("is name-constrained: a leaf it signs for any other site (or an IP) is refused by the clients that trust it", async () => {
    const files = await createLocalCa({ now: new Date(), notAfter: new Date(Date.now() + 3_600_000) });
    const ca = { cert: new x509.X509Certificate(files.certPem), key: await importPrivateKeyPem(files.keyPem) };
    const leafKey = await generateKeyPair();
    const pem = await privateKeyToPem(leafKey.privateKey);
    const leaf = async (dnsNames: string[], ips: string[] = []) => (await issueServerCert({ ca, publicKey: leafKey.publicKey, dnsNames, ips, now: new Date(), notAfter: ca.cert.notAfter })).toString("pem") + "\n" + files.certPem;
    expect(await handshake(files, "management.azure.com", pem, await leaf(["management.azure.com"]))).toBe("ok");
    expect(await handshake(files, "myvault.vault.azure.net", pem, await leaf(["myvault.vault.azure.net"]))).toBe("ok");
    // Someone who steals the key from the workstation cannot impersonate another site to this machine's clients.
    // OpenSSL (Node) says "permitted subtree violation"; Deno's TLS says it its own way.
    expect(await handshake(files, "github.com", pem, await leaf(["github.com"]))).not.toBe("ok");
    expect(await handshake(files, "evil-management.azure.com.example", pem, await leaf(["evil-management.azure.com.example"]))).not.toBe("ok");
    expect(await handshake(files, "127.0.0.1", pem, await leaf([], ["127.0.0.1"]))).not.toBe("ok");
  });

  it("for an app in another cloud, signs for that cloud's hosts only", async () => {
    const files = await createLocalCa({ now: new Date(), notAfter: new Date(Date.now() + 3_600_000) }, "AzureUSGovernment");
    const ca = { cert: new x509.X509Certificate(files.certPem), key: await importPrivateKeyPem(files.keyPem) };
    const leafKey = await generateKeyPair();
    const pem = await privateKeyToPem(leafKey.privateKey);
    const leaf = async (name: string) => (await issueServerCert({ ca, publicKey: leafKey.publicKey, dnsNames: [name], ips: [], now: new Date(), notAfter: ca.cert.notAfter })).toString("pem") + "\n" + files.certPem;
    expect(await handshake(files, "management.usgovcloudapi.net", pem, await leaf("management.usgovcloudapi.net"))).toBe("ok");
    expect(await handshake(files, "management.azure.com", pem, await leaf("management.azure.com"))).not.toBe("ok");
    const minter = new LeafMinter(files, systemClock, "AzureUSGovernment");
    await expect(minter.context("management.azure.com")).rejects.toThrow(/does not sign for management\.azure\.com/);
    await minter.context("kv.vault.usgovcloudapi.net");
    expect(minter.cached).toEqual(["kv.vault.usgovcloudapi.net"]);
  });

  it("mints leaves only for intercepted names, and keeps a bounded number", async () => {
    const minter = new LeafMinter(await createLocalCa({ now: new Date(), notAfter: new Date(Date.now() + 3_600_000) }), systemClock);
    await expect(minter.context("github.com")).rejects.toThrow(/does not sign for github.com/);
    for (let i = 0; i < LEAF_CACHE_SIZE + 20; i++) await minter.context(`acct${i}.blob.core.windows.net`);
    expect(minter.cached).toHaveLength(LEAF_CACHE_SIZE);
    expect(minter.cached).toContain(`acct${LEAF_CACHE_SIZE + 19}.blob.core.windows.net`);
    expect(minter.cached).not.toContain("acct0.blob.core.windows.net");
  });
});

describe("azgate exec's environment", () => {
  const session = { sessionEnv: { HTTPS_PROXY: "http://127.0.0.1:1", IDENTITY_HEADER: "abc" }, identity: ID, tenant: TENANT };

  it("drops every credential of the user's own and every other identity source; keeps the rest of the shell", () => {
    const parent = { PATH: "/usr/bin", HOME: "/home/u", AZURE_CLIENT_SECRET: "s", AZURE_CLIENT_CERTIFICATE_PATH: "/c.pem", AZURE_FEDERATED_TOKEN_FILE: "/t", AZURE_USERNAME: "u", AZURE_PASSWORD: "p", ARM_CLIENT_SECRET: "s2", ARM_USE_CLI: "true", MSI_SECRET: "m", IMDS_ENDPOINT: "http://x", AZURE_CLIENT_ID: "mine" };
    const env = execEnv(parent, session);
    for (const [k, v] of Object.entries(parent)) if ((SCRUBBED as readonly string[]).includes(k)) expect(env[k], k).not.toBe(v);
    expect(env).toMatchObject({ PATH: "/usr/bin", HOME: "/home/u", HTTPS_PROXY: "http://127.0.0.1:1", IDENTITY_HEADER: "abc", AZURE_TOKEN_CREDENTIALS: "ManagedIdentityCredential", AZURE_TENANT_ID: TENANT, ARM_USE_MSI: "true", ARM_TENANT_ID: TENANT, ARM_SUBSCRIPTION_ID: "00000000-0000-0000-0000-000000000000", NO_PROXY: "127.0.0.1,localhost,::1" });
    // No client ID known: none is set (the user's own would name another identity).
    expect(env.AZURE_CLIENT_ID).toBeUndefined();
    expect(env.ARM_MSI_ENDPOINT).toBe(`https://${MSI_HOST}/metadata/identity/oauth2/token`);
  });

  it("drops storage keys, SAS tokens and connection strings, Terraform's certificate, secret-file, access-key, SAS and OIDC variables, and CI jobs' OIDC requests", () => {
    // Written out here, not read from SCRUBBED: each is a credential a tool in the child would use instead of the session's identity.
    const credentials = [
      "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZCOPY_SPA_CLIENT_SECRET", "AZCOPY_SPA_CERT_PASSWORD",
      "ARM_CLIENT_CERTIFICATE", "ARM_CLIENT_CERTIFICATE_PATH", "ARM_CLIENT_CERTIFICATE_PASSWORD", "ARM_CLIENT_SECRET_FILE_PATH", "ARM_CLIENT_ID_FILE_PATH", "ARM_ACCESS_KEY", "ARM_SAS_TOKEN",
      "ARM_OIDC_TOKEN", "ARM_OIDC_TOKEN_FILE_PATH", "ARM_OIDC_REQUEST_TOKEN", "ARM_OIDC_REQUEST_URL", "ARM_OIDC_AZURE_SERVICE_CONNECTION_ID", "ARM_ADO_PIPELINE_SERVICE_CONNECTION_ID",
      "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_URL", "SYSTEM_OIDCREQUESTURI", "SYSTEM_ACCESSTOKEN", "AZURE_FEDERATED_TOKEN",
      "AZURESUBSCRIPTION_SERVICE_CONNECTION_ID", "AZURESUBSCRIPTION_CLIENT_ID", "AZURESUBSCRIPTION_TENANT_ID",
    ];
    for (const name of credentials) {
      const env = execEnv({ PATH: "/usr/bin", [name]: "the user's own" }, session);
      expect(env[name], name).toBeUndefined();
      expect(env.PATH).toBe("/usr/bin");
    }
    // Names and choices, not credentials, stay (docs/clients.md, azgate exec).
    expect(execEnv({ AZURE_STORAGE_ACCOUNT: "acct", AZURE_STORAGE_AUTH_MODE: "login" }, session)).toMatchObject({ AZURE_STORAGE_ACCOUNT: "acct", AZURE_STORAGE_AUTH_MODE: "login" });
  });

  it("every variable it can set is in EXEC_VARIABLES, which azgate env --unset unsets", () => {
    const all = execEnv({}, { ...session, clientId: "c", sessionEnv: azureEnv({ port: 1, secret: "ab", configDir: "d", caBundle: "b", localCa: "c" }) });
    expect(Object.keys(all).filter((k) => !(EXEC_VARIABLES as readonly string[]).includes(k))).toEqual([]);
  });

  it("gives Python the local CA alone unless asked for the system's roots too; SSL_CERT_FILE always has them", () => {
    const base = { port: 1, secret: "ab", configDir: "d", caBundle: "/bundle.pem", localCa: "/localca.pem" };
    expect(azureEnv(base)).toMatchObject({ REQUESTS_CA_BUNDLE: "/localca.pem", SSL_CERT_FILE: "/bundle.pem", NODE_EXTRA_CA_CERTS: "/localca.pem" });
    expect(azureEnv({ ...base, pythonTrust: "system" })).toMatchObject({ REQUESTS_CA_BUNDLE: "/bundle.pem", SSL_CERT_FILE: "/bundle.pem" });
  });

  it("points az and Terraform at the app's cloud, whatever the user's shell says", () => {
    const parent = { AZURE_CLOUD_NAME: "AzureChinaCloud", ARM_ENVIRONMENT: "china" };
    expect(execEnv(parent, { ...session, cloud: "AzureUSGovernment", sessionEnv: azureEnv({ port: 1, secret: "ab", configDir: "d", caBundle: "b", localCa: "c", cloud: "AzureUSGovernment" }) })).toMatchObject({ AZURE_CLOUD_NAME: "AzureUSGovernment", ARM_ENVIRONMENT: "usgovernment" });
    expect(execEnv(parent, { ...session, sessionEnv: azureEnv({ port: 1, secret: "ab", configDir: "d", caBundle: "b", localCa: "c" }) })).toMatchObject({ AZURE_CLOUD_NAME: "AzureCloud", ARM_ENVIRONMENT: "public" });
  });

  it("names the session's client ID when known, and keeps a subscription the user chose", () => {
    const env = execEnv({ ARM_SUBSCRIPTION_ID: "11111111-0000-0000-0000-000000000000" }, { ...session, clientId: "00000000-0000-4000-8000-000000000002" });
    expect(env).toMatchObject({ AZURE_CLIENT_ID: "00000000-0000-4000-8000-000000000002", ARM_CLIENT_ID: "00000000-0000-4000-8000-000000000002", ARM_SUBSCRIPTION_ID: "11111111-0000-0000-0000-000000000000" });
  });
});
