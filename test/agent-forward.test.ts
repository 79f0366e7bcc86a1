/**
 * The agent's forwarder and token provider, in process, against the emulator
 * (real @azure/identity, real HTTPS). DNS for Azure names cannot run here, so
 * the DNS-rebinding cases give the forwarder a resolver; everything else is real.
 */
import { systemClock } from "../src/util/clock.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import tls from "node:tls";
import { createHttpHeaders, type HttpClient } from "@azure/core-rest-pipeline";
import net from "node:net";
import path from "node:path";
import { parse, stringify } from "yaml";
import { DEFAULT_WORLD_YAML } from "../src/emulator/default-world.ts";
import { useEmulator } from "./helpers/emulator.ts";
import { agentEnv, IDENTITY, readBody, SUB } from "./helpers/cluster.ts";
import { tempDir } from "./helpers/azgate.ts";
import { Outbound } from "../src/agent/outbound.ts";
import { identityHttpClient } from "../src/agent/identity-http.ts";
import { AzureTokenProvider } from "../src/agent/tokens.ts";
import { TokenUnavailable } from "../src/errors/index.ts";
import { forwardStream } from "../src/agent/forward.ts";
import { identityFacts } from "../src/agent/identity-facts.ts";
import { forbiddenAddressReason } from "../src/net/address-policy.ts";
import { backoffDelay } from "../src/agent/reverse-tunnel.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import type { TunnelSession } from "../src/tunnel/index.ts";
import { tunnelRequest } from "../src/tunnel/http.ts";
import { generateKeyPair, privateKeyToPem } from "../src/pki/keys.ts";
import { signPlaceholder } from "../src/azure/placeholder.ts";
import { createAuthority } from "../src/pki/authority.ts";
import { issueServerCert } from "../src/pki/certificate.ts";
import { isAzureEndpoint } from "../src/azure/endpoints.ts";
import { scopeForResource } from "../src/azure/scopes.ts";
import { tokenMayGoTo } from "../src/azure/audiences.ts";

const worldFile = path.join(tempDir("azgate-world-"), "world.yaml");
{
  const world = parse(DEFAULT_WORLD_YAML);
  const fed = world.identities[0].federated_credentials;
  world.identities.push(
    { subscription: world.subscriptions[0].id, resource_group: "myResourceGroup", name: "unfederated", client_id: "00000000-0000-4000-8000-000000000020", principal_id: "10000000-0000-4000-8000-000000000020", federated_credentials: [] },
    { subscription: world.subscriptions[0].id, resource_group: "myResourceGroup", name: "agent-blind", client_id: "00000000-0000-4000-8000-000000000021", principal_id: "10000000-0000-4000-8000-000000000021", federated_credentials: fed },
  );
  writeFileSync(worldFile, stringify(world));
}
declare const Deno: object | undefined;
const fx = useEmulator({ projectToken: true, worldFile });
const READER = IDENTITY("teleport-reader");
/** Issue 29, defect 3: the contributor to ARM (which reads the first api-version), a stranger to azgate's rules. */
const SMUGGLED = `${IDENTITY("teleport-contributor")}?api-version=2023-01-31&x=`;
const SUBS = "https://management.azure.com/subscriptions?api-version=2019-11-01";

/** A client session wired to forwardStream on an acceptor session, as the proxy would open it. */
function forwarderPair(outbound: Outbound, tokens: AzureTokenProvider) {
  return memoryPair({}, { onStream: (s) => void forwardStream({ outbound, tokens, clock: systemClock }, s) }).dialer;
}

/**
 * A forwarder (token provider options from `extra`, read once the emulator runs) and a client session on it, with
 * the client's key: `send` signs a placeholder for `resource` with that key
 * (or sends `token`, or none when null) and returns status and body.
 */
function useForwarder(extra: () => Partial<ConstructorParameters<typeof AzureTokenProvider>[0]> = () => ({})) {
  const f = {} as { outbound: Outbound; tokens: AzureTokenProvider; client: TunnelSession; key: CryptoKeyPair; clientKey: JsonWebKey };
  beforeAll(async () => {
    f.outbound = new Outbound({ connectTo: { host: "127.0.0.1", port: fx.emu.httpsPort }, caPem: fx.emu.caPem });
    f.tokens = new AzureTokenProvider({ env: agentEnv(fx), httpClient: identityHttpClient(f.outbound), clock: systemClock, ...extra() });
    f.client = forwarderPair(f.outbound, f.tokens);
    f.key = await generateKeyPair();
    f.clientKey = await crypto.subtle.exportKey("jwk", f.key.publicKey);
  });
  afterAll(() => {
    f.client.close();
    f.outbound.close();
  });
  const send = async (url: string, opts: { headers?: [string, string][]; identity?: string; session?: TunnelSession; token?: string | null; resource?: string; decided?: { method: string; host: string; path: string; action: string | null } } = {}) => {
    const headers = [...(opts.headers ?? [])];
    const resource = opts.resource ?? "https://management.core.windows.net/";
    if (opts.token !== null) headers.push(["authorization", `Bearer ${opts.token ?? (await signPlaceholder(f.key.privateKey, { tid: "t", resource, identity: READER, now: new Date(), expires: new Date(Date.now() + 3_600_000) }))}`]);
    const res = await tunnelRequest(opts.session ?? f.client, {
      method: "GET",
      url,
      headers,
      session: { user: "alice", app: "azure-cli", azure_identity: opts.identity ?? READER, session_id: "s1" },
      client_key: f.clientKey,
      request_id: "r1",
      ...(opts.decided ? { decided: opts.decided } : {}),
    });
    return { status: res.status, body: await readBody(res) };
  };
  return Object.assign(f, { send });
}

describe("the agent's forwarder", () => {
  const f = useForwarder();
  const { send } = f;

  it("frames every body itself: a GET with a body, a body past its declared length, or a DELETE body without one is refused, and nothing reaches Azure (request smuggling)", async () => {
    const placeholder = await signPlaceholder(f.key.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity: READER, now: new Date(), expires: new Date(Date.now() + 3_600_000) });
    const smuggled = new TextEncoder().encode(`DELETE /subscriptions/${SUB}/resourcegroups/myResourceGroup?api-version=2022-09-01 HTTP/1.1\r\nX-Ignore: `);
    const from = fx.emu.requests.length;
    const cases: [string, [string, string][], Uint8Array][] = [
      ["GET", [], smuggled],
      ["DELETE", [], smuggled],
      ["GET", [["content-length", String(smuggled.length)]], smuggled],
      ["POST", [["content-length", "2"]], smuggled],
    ];
    for (const [method, extra, body] of cases) {
      const outcome = await tunnelRequest(f.client, { method, url: SUBS, headers: [["authorization", `Bearer ${placeholder}`], ...extra], session: { user: "alice", app: "azure-cli", azure_identity: READER, session_id: "s1" }, client_key: f.clientKey, request_id: "r-smuggle" }, body)
        .then(async (res) => (await readBody(res), res.status))
        .catch((e: Error) => e.message);
      expect(String(outcome), `${method} ${JSON.stringify(extra)}`).toMatch(/^400$|reset/);
    }
    // The next request on the same (pooled) connection is only itself.
    expect((await send(SUBS)).status).toBe(200);
    // Nothing but the requests themselves: no DELETE, nothing that names the group (a POST cut off at its declared length may have begun).
    expect(fx.emu.requests.slice(from).filter((r) => r.method === "DELETE" || /resourcegroups\/myresourcegroup$/i.test(r.path.split("?")[0])).map((r) => `${r.method} ${r.host} ${r.path}`)).toEqual([]);
  });

  it("forwards an allowed request with a real token", async () => {
    const res = await send(SUBS);
    expect(res.status, res.body).toBe(200);
    expect(JSON.parse(res.body).value[0].subscriptionId).toBe("00000000-0000-0000-0000-000000000000");
  });

  it("sends a read that met a connection closed as it was reused once more, on a new one; twice closed, a 502 that says why", async () => {
    let failuresLeft = 1;
    let sends = 0;
    class ClosingOnce extends Outbound {
      override prepare(...args: Parameters<Outbound["prepare"]>) {
        sends++;
        if (failuresLeft-- > 0) return { send: () => Promise.reject(new TypeError("fetch failed", { cause: new Error("other side closed") })), cancel: () => undefined };
        return super.prepare(...args);
      }
    }
    const flaky = new ClosingOnce({ connectTo: { host: "127.0.0.1", port: fx.emu.httpsPort }, caPem: fx.emu.caPem });
    try {
      const ok = await f.send(SUBS, { session: forwarderPair(flaky, f.tokens) });
      expect(ok.status, ok.body).toBe(200);
      expect(sends).toBe(2);
      failuresLeft = 2;
      sends = 0;
      const failed = await f.send(SUBS, { session: forwarderPair(flaky, f.tokens) });
      expect(failed.status).toBe(502);
      expect(JSON.parse(failed.body).error).toMatchObject({ code: "upstream_failed", message: expect.stringContaining("fetch failed (other side closed)") });
      expect(sends).toBe(2);
    } finally {
      flaky.close();
    }
  });

  it.each([
    ["a non-Azure host", "https://example.com/", /example\.com is not an Azure API host/],
    ["IMDS", "https://169.254.169.254/metadata/identity/oauth2/token", /169\.254\.169\.254 is not an Azure API host/],
    ["plain HTTP", "http://management.azure.com/subscriptions", /not HTTPS/],
    ["another port", "https://management.azure.com:8443/subscriptions", /port 8443/],
    ["a look-alike suffix", "https://management.azure.com.evil.example/", /not an Azure API host/],
  ])("refuses %s", async (_name, url, message) => {
    const res = await send(url);
    expect(res.status).toBe(403);
    expect(res.body).toMatch(message);
  });

  it.each([
    ["X-Forwarded-Host", [["x-forwarded-host", "169.254.169.254"]]],
    ["a second Host", [["host", "internal.example"]]],
    ["Forwarded", [["forwarded", "for=1.2.3.4;host=10.0.0.5"]]],
  ] as [string, [string, string][]][])("refuses a host smuggled in %s", async (_name, headers) => {
    const res = await send(SUBS, { headers });
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/header names/);
  });

  it("forwards only the request an azure_api policy decided on: another path, method, operation, an unreadable path or a method override is refused", async () => {
    const decided = { method: "GET", host: "management.azure.com", path: "/subscriptions", action: "Microsoft.Resources/subscriptions/read" };
    expect((await send(SUBS, { decided })).status).toBe(200);
    const cases: [string, typeof decided, [string, string][], RegExp][] = [
      ["https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups", decided, [], /is not the one the proxy decided \(GET management\.azure\.com\/subscriptions\)/],
      [SUBS, { ...decided, method: "DELETE" }, [], /is not the one the proxy decided/],
      [SUBS, { ...decided, action: "Microsoft.Resources/tenants/read" }, [], /operation \(Microsoft\.Resources\/subscriptions\/read\) is not the one the proxy decided/],
      [SUBS, decided, [["x-http-method-override", "DELETE"]], /x-http-method-override header is not allowed/],
      ["https://management.azure.com/subscriptions/a%2Fb", { ...decided, path: "/subscriptions/a%2Fb" }, [], /encoded separators/],
    ];
    for (const [url, d, headers, message] of cases) {
      const res = await send(url, { decided: d, headers });
      expect([res.status, JSON.parse(res.body).error.code], url).toEqual([403, "AzgatePolicyDenied"]);
      expect(res.body).toMatch(message);
    }
  });

  it("holds a held request until the proxy's release: anything else, or a reset, and Azure sees nothing", async () => {
    const probe = (n: string) => `${SUBS}&probe=${n}`;
    const seen = (n: string) => fx.emu.requests.some((r) => r.path.includes(`probe=${n}`));
    const token = await signPlaceholder(f.key.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity: READER, now: new Date(), expires: new Date(Date.now() + 3_600_000) });
    const open = (n: string) => {
      return f.client.open({ kind: "http", method: "GET", url: probe(n), headers: [["authorization", `Bearer ${token}`]], session: { user: "alice", app: "azure-cli", azure_identity: READER, session_id: "s1" }, client_key: f.clientKey, request_id: n, hold: true });
    };
    const say = (stream: ReturnType<typeof open>, word: Record<string, unknown>) => {
      stream.sendMeta(word);
      stream.end();
    };

    // Released: forwarded.
    const released = open("released");
    say(released, { release: true });
    expect(await released.readMeta()).toMatchObject({ status: 200 });
    expect(seen("released")).toBe(true);

    // Another word than the release: refused, never forwarded.
    const other = open("other");
    say(other, { release: false });
    await expect(other.readMeta()).rejects.toMatchObject({ code: 1, reason: expect.stringMatching(/only after the proxy's release/) });
    expect(seen("other")).toBe(false);

    // The proxy resets it (its audit failed): never forwarded.
    const dropped = open("dropped");
    dropped.reset(4, "the request could not be audited");
    await dropped.done();
    // The same session's next request is answered, so the agent has dealt with the dropped one.
    const after = open("after");
    say(after, { release: true });
    expect(await after.readMeta()).toMatchObject({ status: 200 });
    expect(seen("dropped")).toBe(false);
  });

  it("refuses placeholder tokens signed by another key, for another identity, or expired", async () => {
    const other = await generateKeyPair();
    const later = new Date(Date.now() + 3_600_000);
    const foreign = await signPlaceholder(other.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity: READER, now: new Date(), expires: later });
    const otherIdentity = await signPlaceholder(f.key.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity: IDENTITY("teleport-contributor"), now: new Date(), expires: later });
    const expired = await signPlaceholder(f.key.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity: READER, now: new Date(), expires: new Date(Date.now() - 120_000) });
    expect(await send(SUBS, { token: foreign })).toMatchObject({ status: 401, body: expect.stringMatching(/not signed by this session's key/) });
    expect(await send(SUBS, { token: otherIdentity })).toMatchObject({ status: 401, body: expect.stringMatching(/is for identity .*teleport-contributor/) });
    expect(await send(SUBS, { token: expired })).toMatchObject({ status: 401, body: expect.stringMatching(/expired/) });
    expect(await send(SUBS, { token: "not-a-jwt" })).toMatchObject({ status: 401, body: expect.stringMatching(/not an azgate token/) });
  });

  it("refuses a session whose identity ARM would read as another (a query string): no token is fetched, nothing reaches Azure", async () => {
    // The workstation's placeholder names the same smuggled ID, as an app session for it would.
    const token = await signPlaceholder(f.key.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity: SMUGGLED, now: new Date(), expires: new Date(Date.now() + 3_600_000) });
    const before = fx.emu.requests.length;
    const res = await send(SUBS, { identity: SMUGGLED, token });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toMatchObject({ code: "bad_request", message: expect.stringContaining("has a query string ('?')") });
    expect(fx.emu.requests.slice(before)).toEqual([]);
  });

  it("sends a real token only to the service its audience names (no ARM token to a Front Door host)", async () => {
    const res = await send("https://evil.azurefd.net/collect");
    expect(res.status).toBe(403);
    expect(res.body).toMatch(/a token for https:\/\/management\.core\.windows\.net\/ is not sent to evil\.azurefd\.net/);
    expect(fx.emu.requests.some((r) => r.host === "evil.azurefd.net")).toBe(false);
  });

  it("refuses names that resolve to loopback, IMDS or private addresses (checked after DNS)", async () => {
    const answers: Record<string, string> = { "rebind.vault.azure.net": "127.0.0.1", "imds.blob.core.windows.net": "169.254.169.254", "mapped.management.azure.com": "::ffff:10.1.2.3" };
    const dnsOutbound = new Outbound({ resolve: async (host) => [{ address: answers[host] ?? "20.0.0.1", family: answers[host]?.includes(":") ? 6 : 4 }] });
    const session = forwarderPair(dnsOutbound, f.tokens);
    try {
      for (const [host, addr] of Object.entries(answers)) {
        const res = await send(`https://${host}/x`, { session });
        expect(res.status).toBe(403);
        expect(res.body).toContain(`resolves to ${addr}`);
      }
    } finally {
      session.close();
      dnsOutbound.close();
    }
  });

  it("does not follow a redirect to a private address", async () => {
    // An "Azure" that redirects: a fixture server with the emulator CA's trust, standing in for a hostile upstream.
    const ca = await createAuthority("host", "redirect fixture", new Date());
    const k = await generateKeyPair();
    const cert = await issueServerCert({ ca, publicKey: k.publicKey, dnsNames: ["management.azure.com"], ips: [], now: new Date(), notAfter: new Date(Date.now() + 3_600_000) });
    let privateHits = 0;
    const privateServer = net.createServer((s) => {
      privateHits++;
      s.destroy();
    });
    await new Promise<void>((r) => privateServer.listen(0, "127.0.0.1", r));
    const privatePort = (privateServer.address() as net.AddressInfo).port;
    const upstream = https.createServer({ key: await privateKeyToPem(k.privateKey), cert: cert.toString("pem") }, (_req, res) => {
      res.writeHead(302, { location: `https://127.0.0.1:${privatePort}/steal` });
      res.end();
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const redirecting = new Outbound({ connectTo: { host: "127.0.0.1", port: (upstream.address() as net.AddressInfo).port }, caPem: ca.cert.toString("pem") });
    const session = forwarderPair(redirecting, f.tokens);
    try {
      const res = await tunnelRequest(session, { method: "GET", url: SUBS, headers: [], session: { user: "a", app: "azure-cli", azure_identity: READER, session_id: "s" }, client_key: f.clientKey, request_id: "r" });
      expect(res.status).toBe(302);
      expect(res.headers).toContainEqual(["location", `https://127.0.0.1:${privatePort}/steal`]);
      await readBody(res);
      // An absence cannot be awaited: a followed redirect would have connected within these 100 ms.
      await new Promise((r) => setTimeout(r, 100));
      expect(privateHits).toBe(0);
    } finally {
      session.close();
      redirecting.close();
      upstream.close();
      privateServer.close();
    }
  });
});

describe("the agent's forwarder for an app in Azure US Government", () => {
  const GOV_ARM = "https://management.usgovcloudapi.net";
  const f = useForwarder(() => ({ env: { ...agentEnv(fx), AZURE_AUTHORITY_HOST: "https://login.microsoftonline.us/" }, cloud: "AzureUSGovernment" }));
  const send = (url: string, resource: string) => f.send(url, { resource });

  it("gets the token from that cloud's Entra ID, looks the identity up in its ARM, and sends the request there", async () => {
    const from = fx.emu.requests.length;
    const res = await send(`${GOV_ARM}/subscriptions?api-version=2022-12-01`, "https://management.core.usgovcloudapi.net/");
    expect(res.status, res.body).toBe(200);
    const seen = fx.emu.requests.slice(from);
    expect(seen.map((r) => r.host)).toEqual(expect.arrayContaining(["login.microsoftonline.us", "management.usgovcloudapi.net"]));
    expect(seen.some((r) => r.host.endsWith(".com"))).toBe(false);
    const upstream = seen.filter((r) => r.host === "management.usgovcloudapi.net" && r.path.startsWith("/subscriptions?"));
    expect(upstream).toHaveLength(1);
    const claims = JSON.parse(Buffer.from(upstream[0].authorization!.split(".")[1], "base64url").toString());
    expect(claims).toMatchObject({ aud: "https://management.core.usgovcloudapi.net/", xms_mirid: READER });
  });

  it("refuses another cloud's hosts, and a token of another cloud's audience, before anything is sent", async () => {
    const from = fx.emu.requests.length;
    const pub = await send("https://management.azure.com/subscriptions?api-version=2022-12-01", "https://management.core.windows.net/");
    expect(pub).toMatchObject({ status: 403, body: expect.stringMatching(/management\.azure\.com is not an Azure API host of AzureUSGovernment/) });
    const crossed = await send(`${GOV_ARM}/subscriptions?api-version=2022-12-01`, "https://management.core.windows.net/");
    expect(crossed).toMatchObject({ status: 403, body: expect.stringMatching(/a token for https:\/\/management\.core\.windows\.net\/ is not sent to management\.usgovcloudapi\.net/) });
    expect(fx.emu.requests.slice(from)).toEqual([]);
  });
});

describe("the agent's forwarder against an upstream that honours TRACE", () => {
  it("refuses TRACE (and other methods Azure does not use) before a token is attached: the upstream sees nothing", async () => {
    // A hostile or misconfigured "Azure" that echoes a TRACE request back, Authorization header and all.
    const ca = await createAuthority("host", "trace fixture", new Date());
    const k = await generateKeyPair();
    const cert = await issueServerCert({ ca, publicKey: k.publicKey, dnsNames: ["management.azure.com"], ips: [], now: new Date(), notAfter: new Date(Date.now() + 3_600_000) });
    const seen: string[] = [];
    const upstream = https.createServer({ key: await privateKeyToPem(k.privateKey), cert: cert.toString("pem") }, (req, res) => {
      seen.push(req.method ?? "");
      res.writeHead(200, { "content-type": "message/http" });
      res.end(`${req.method} ${req.url} HTTP/1.1\r\n${Object.entries(req.headers).map(([h, v]) => `${h}: ${v}`).join("\r\n")}\r\n`);
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const echoing = new Outbound({ connectTo: { host: "127.0.0.1", port: (upstream.address() as net.AddressInfo).port }, caPem: ca.cert.toString("pem") });
    const tokens = new AzureTokenProvider({ env: agentEnv(fx), httpClient: identityHttpClient(new Outbound({ connectTo: { host: "127.0.0.1", port: fx.emu.httpsPort }, caPem: fx.emu.caPem })), clock: systemClock });
    const session = forwarderPair(echoing, tokens);
    const key = await generateKeyPair();
    const clientKey = await crypto.subtle.exportKey("jwk", key.publicKey);
    const placeholder = await signPlaceholder(key.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity: READER, now: new Date(), expires: new Date(Date.now() + 3_600_000) });
    const send = async (method: string) => {
      const res = await tunnelRequest(session, { method, url: SUBS, headers: [["authorization", `Bearer ${placeholder}`]], session: { user: "a", app: "azure-cli", azure_identity: READER, session_id: "s" }, client_key: clientKey, request_id: "r" });
      return { status: res.status, body: await readBody(res) };
    };
    try {
      for (const method of ["TRACE", "TRACK", "CONNECT", "PROPFIND"]) {
        const res = await send(method);
        expect(res.status, method).toBe(405);
        expect(res.body).toContain(`method ${method} is not used by Azure APIs`);
      }
      expect(seen).toEqual([]);
      // The same upstream gets (and echoes) a GET, with a real token swapped in: the refusal above is what kept it out.
      const get = await send("GET");
      expect(get.status).toBe(200);
      expect(seen).toEqual(["GET"]);
      expect(get.body).toMatch(/authorization: Bearer ey/i);
      expect(get.body).not.toContain(placeholder);
    } finally {
      session.close();
      echoing.close();
      upstream.close();
    }
  });
});

describe("the agent's forwarder, a held request against an upstream that records every byte", () => {
  it("builds the call while held (a connection taken) but sends no byte of it before the release; a reset drops it", async () => {
    const ca = await createAuthority("host", "held fixture", new Date());
    const k = await generateKeyPair();
    const cert = await issueServerCert({ ca, publicKey: k.publicKey, dnsNames: ["management.azure.com"], ips: [], now: new Date(), notAfter: new Date(Date.now() + 3_600_000) });
    // Each connection's bytes as they came; a request's head, once whole, gets a small answer.
    const conns: { bytes: string; closed: boolean }[] = [];
    let connected: () => void = () => undefined;
    const upstream = tls.createServer({ key: await privateKeyToPem(k.privateKey), cert: cert.toString("pem") }, (socket) => {
      const c = { bytes: "", closed: false };
      conns.push(c);
      connected();
      socket.on("data", (d) => {
        c.bytes += d.toString("latin1");
        if (c.bytes.endsWith("\r\n\r\n")) socket.write("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}");
      });
      socket.on("close", () => (c.closed = true));
      socket.on("error", () => undefined);
    });
    await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
    const recording = new Outbound({ connectTo: { host: "127.0.0.1", port: (upstream.address() as net.AddressInfo).port }, caPem: ca.cert.toString("pem") });
    const tokens = new AzureTokenProvider({ env: agentEnv(fx), httpClient: identityHttpClient(new Outbound({ connectTo: { host: "127.0.0.1", port: fx.emu.httpsPort }, caPem: fx.emu.caPem })), clock: systemClock });
    const session = forwarderPair(recording, tokens);
    const key = await generateKeyPair();
    const clientKey = await crypto.subtle.exportKey("jwk", key.publicKey);
    const placeholder = await signPlaceholder(key.privateKey, { tid: "t", resource: "https://management.core.windows.net/", identity: READER, now: new Date(), expires: new Date(Date.now() + 3_600_000) });
    const request = (probe: string, hold: boolean) => ({ kind: "http", method: "GET", url: `${SUBS}&probe=${probe}`, headers: [["authorization", `Bearer ${placeholder}`]] as [string, string][], session: { user: "a", app: "azure-cli", azure_identity: READER, session_id: "s" }, client_key: clientKey, request_id: probe, ...(hold ? { hold: true } : {}) });
    const sentAnywhere = (probe: string) => conns.filter((c) => c.bytes.includes(`probe=${probe}`)).length;
    try {
      const firstConnection = new Promise<void>((r) => (connected = r));
      // The proxy's order: the release, then the (empty) body's END.
      const held = session.open(request("held", true));
      // node:https takes its connection during the hold (Deno's fetch path builds nothing ahead: it has no connection to show).
      if (typeof Deno === "undefined") await firstConnection;
      // Another request, answered whole, while the first is held: the held one's connection carried nothing.
      const other = await tunnelRequest(session, request("other", false));
      expect([other.status, await readBody(other)]).toEqual([200, "{}"]);
      expect(sentAnywhere("other")).toBe(1);
      expect(sentAnywhere("held")).toBe(0);
      if (typeof Deno === "undefined") expect(conns[0].bytes).toBe("");

      held.sendMeta({ release: true });
      held.end();
      expect(await held.readMeta()).toMatchObject({ status: 200 });
      expect(sentAnywhere("held")).toBe(1);
      // Its own head (Deno's fetch may send it on the connection "other" used).
      const sent = conns.find((c) => c.bytes.includes("probe=held"))!.bytes.split(/\r\n\r\n/).find((h) => h.includes("probe=held"))!;
      expect(sent).toMatch(/^GET \/subscriptions\?api-version=2019-11-01&probe=held HTTP\/1\.1\r\n/);
      expect(sent).toMatch(/authorization: Bearer ey/i);
      expect(sent).not.toContain(placeholder);

      // Held, then reset by the proxy (its audit failed): the call built for it is dropped unsent.
      const dropped = session.open(request("dropped", true));
      dropped.reset(4, "the request could not be audited");
      await dropped.done();
      // The next one is answered, so the forwarder has dealt with the dropped one.
      const after = await tunnelRequest(session, request("after", false));
      expect(after.status).toBe(200);
      await readBody(after);
      expect(sentAnywhere("dropped")).toBe(0);
      expect(sentAnywhere("after")).toBe(1);
    } finally {
      session.close();
      recording.close();
      upstream.close();
    }
  });
});

describe("the agent's token provider", () => {
  let outbound: Outbound;
  beforeAll(() => {
    outbound = new Outbound({ connectTo: { host: "127.0.0.1", port: fx.emu.httpsPort }, caPem: fx.emu.caPem });
  });
  afterAll(() => outbound.close());
  const provider = (env = agentEnv(fx), extra: Partial<ConstructorParameters<typeof AzureTokenProvider>[0]> = {}) =>
    new AzureTokenProvider({ env, httpClient: identityHttpClient(outbound), clock: systemClock, ...extra });

  it("uses Workload ID from the AZURE_* environment, caches per identity and scope, and merges concurrent fetches", async () => {
    const p = provider();
    expect(p.mode).toBe("workload");
    const scope = "https://vault.azure.net/.default";
    const [a, b, c] = await Promise.all([p.getToken(READER, scope), p.getToken(READER, scope), p.getToken(READER.toUpperCase(), scope)]);
    expect(a.token).toBe(b.token);
    expect(c.token).toBe(a.token);
    const claims = JSON.parse(Buffer.from(a.token.split(".")[1], "base64url").toString());
    expect(claims).toMatchObject({ aud: "https://vault.azure.net", xms_mirid: READER });
    // One fetch for the reader and one for the agent's own ARM token (client ID lookup).
    expect(p.stats.fetches).toBe(2);
    await p.getToken(READER, scope);
    expect(p.stats.hits).toBeGreaterThanOrEqual(1);
    await p.getToken(READER, scopeForResource("https://management.core.windows.net/"));
    expect(p.stats.fetches).toBe(3);
  });

  it("asks Entra once more when a token request got no answer (a pooled connection closed as it was reused), not a third time", async () => {
    const base = identityHttpClient(outbound);
    let cut = 0;
    const flaky = (times: number) => ({
      sendRequest: async (req: Parameters<typeof base.sendRequest>[0]) => {
        if (/\/oauth2\/v2\.0\/token$/.test(new URL(req.url).pathname) && cut < times) {
          cut++;
          throw Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
        }
        return base.sendRequest(req);
      },
    });
    const once = provider(agentEnv(fx), { httpClient: flaky(1) });
    expect((await once.getToken(READER, "https://vault.azure.net/.default")).token).toMatch(/^ey/);
    expect(cut).toBe(1);
    cut = 0;
    const twice = provider(agentEnv(fx), { httpClient: flaky(99) });
    await expect(twice.getToken(READER, "https://vault.azure.net/.default")).rejects.toBeInstanceOf(TokenUnavailable);
    expect(cut).toBe(2);
  });

  it("refuses an identity ID ARM would read as another (a query string), for a request or identity_facts, before ARM or Entra is asked", async () => {
    const p = provider();
    const before = fx.emu.requests.length;
    const err = await p.getToken(SMUGGLED, "https://management.azure.com/.default").catch((e) => e);
    expect(err).toBeInstanceOf(TokenUnavailable);
    expect(err).toMatchObject({ reason: "not_an_identity", message: expect.stringContaining("has a query string ('?')") });
    await expect(identityFacts(p, SMUGGLED)).rejects.toThrow("has a query string ('?')");
    // Nor is the agent's own identity a name the proxy can send.
    await expect(p.getToken("agent:self", "https://management.azure.com/.default")).rejects.toMatchObject({ reason: "not_an_identity" });
    expect(fx.emu.requests.slice(before)).toEqual([]);
    expect(p.stats.fetches).toBe(0);
  });

  it("looks an identity up in ARM by its parsed segments, in Azure's spelling, with its one api-version", async () => {
    const p = provider();
    const spelled = READER.replace("resourceGroups", "resourcegroups").replace("Microsoft.ManagedIdentity/userAssignedIdentities", "microsoft.managedidentity/USERASSIGNEDIDENTITIES");
    const before = fx.emu.requests.length;
    await p.getToken(spelled, "https://management.azure.com/.default");
    expect(fx.emu.requests.slice(before).filter((r) => r.host === "management.azure.com").map((r) => r.path)).toEqual([`${READER}?api-version=2023-01-31`]);
  });

  it("serves one cloud: AZURE_AUTHORITY_HOST naming another cloud's Entra ID is a configuration error", () => {
    expect(() => provider({ ...agentEnv(fx), AZURE_AUTHORITY_HOST: "https://login.microsoftonline.com/" }, { cloud: "AzureChinaCloud" })).toThrow(
      /apps are in AzureChinaCloud but AZURE_AUTHORITY_HOST \(https:\/\/login\.microsoftonline\.com\/\) is Entra ID of Azure/,
    );
    expect(provider({ ...agentEnv(fx), AZURE_AUTHORITY_HOST: "https://login.chinacloudapi.cn" }, { cloud: "AzureChinaCloud" }).armScope).toBe("https://management.chinacloudapi.cn/.default");
    // An authority azgate does not know (Azure Stack, a private cloud) is the operator's to choose.
    expect(provider({ ...agentEnv(fx), AZURE_AUTHORITY_HOST: "https://login.example.test/" }, { cloud: "AzureUSGovernment" }).cloud.loginHost).toBe("login.microsoftonline.us");
  });

  it("names the identity and the cause: no federated credential", async () => {
    const err = await provider().getToken(IDENTITY("unfederated"), "https://management.azure.com/.default").catch((e) => e);
    expect(err).toBeInstanceOf(TokenUnavailable);
    expect(err.reason).toBe("no_federated_credential");
    expect(err.message).toMatch(/"unfederated".*no federated credential.*system:serviceaccount:teleport-ns:teleport-azure-cli-aks-service-account/);
  });

  it("names the identity and the cause: the agent may not read it", async () => {
    const err = await provider(agentEnv(fx, "00000000-0000-4000-8000-000000000021")).getToken(READER, "https://management.azure.com/.default").catch((e) => e);
    expect(err.reason).toBe("agent_cannot_read_identity");
    expect(err.message).toMatch(/cannot read Azure identity "teleport-reader".*userAssignedIdentities\/read/);
  });

  it("names the identity and the cause: not found", async () => {
    const err = await provider().getToken(IDENTITY("no-such-identity"), "https://management.azure.com/.default").catch((e) => e);
    expect(err.reason).toBe("identity_not_found");
    expect(err.message).toMatch(/"no-such-identity" was not found/);
  });

  it("uses a VM managed identity by resource ID when the Workload ID environment is absent", async () => {
    // IMDS is plain HTTP on the VM; here it is the emulator's, reached as an absolute-URI request on its proxy port.
    const toEmulator = identityHttpClient(outbound);
    const viaImds: HttpClient = {
      sendRequest: (req) =>
        new URL(req.url).protocol !== "http:"
          ? toEmulator.sendRequest(req)
          : new Promise((resolve, reject) => {
              const out = http.request({ host: "127.0.0.1", port: fx.emu.proxyPort, path: req.url, method: req.method, headers: Object.fromEntries(req.headers) }, (res) => {
                let body = "";
                res.on("data", (c) => (body += c));
                res.on("end", () => {
                  const headers = createHttpHeaders();
                  for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") headers.set(k, v);
                  resolve({ request: req, status: res.statusCode ?? 0, headers, bodyAsText: body });
                });
              });
              out.on("error", reject);
              out.end(typeof req.body === "string" ? req.body : undefined);
            }),
    };
    const p = new AzureTokenProvider({ env: {}, httpClient: viaImds, clock: systemClock });
    expect(p.mode).toBe("managed-identity");
    const t = await p.getToken(READER, "https://management.azure.com/.default");
    expect(JSON.parse(Buffer.from(t.token.split(".")[1], "base64url").toString())).toMatchObject({ xms_mirid: READER });
    expect(fx.emu.requests.some((r) => r.host === "169.254.169.254" && r.path.includes("msi_res_id"))).toBe(true);
  });

  it("gives up after its deadline when Entra does not answer", async () => {
    const blackHole = net.createServer(() => undefined);
    await new Promise<void>((r) => blackHole.listen(0, "127.0.0.1", r));
    const slow = new Outbound({ connectTo: { host: "127.0.0.1", port: (blackHole.address() as net.AddressInfo).port }, caPem: fx.emu.caPem });
    try {
      const p = new AzureTokenProvider({ env: agentEnv(fx), httpClient: identityHttpClient(slow), timeoutMs: 300, clock: systemClock });
      const err = await p.getToken(READER, "https://management.azure.com/.default").catch((e) => e);
      expect(err.reason).toBe("timeout");
      expect(err.message).toMatch(/timeout waiting for an Azure token .* after 0.3s/);
    } finally {
      slow.close();
      blackHole.close();
    }
  });
});

describe("pure pieces", () => {
  it.each([
    ["127.0.0.1", "loopback"], ["169.254.169.254", "link-local (IMDS)"], ["10.0.0.1", "private"], ["172.31.255.255", "private"], ["192.168.1.1", "private"],
    ["100.64.0.1", "carrier-grade NAT"], ["0.0.0.0", "unspecified"], ["::1", "loopback"], ["::", "unspecified"], ["fe80::1", "link-local"], ["fd00::1", "private (ULA)"],
    ["::ffff:127.0.0.1", "loopback"], ["::ffff:a9fe:a9fe", "link-local (IMDS)"], ["64:ff9b::10.0.0.1", "private"], ["224.0.0.1", "multicast"], ["nonsense", "not an IP address"],
  ])("forbids %s (%s)", (addr, why) => {
    expect(forbiddenAddressReason(addr)).toBe(why);
  });
  it.each(["20.190.160.1", "40.126.0.1", "2603:1030::1", "::ffff:20.1.2.3"])("allows public %s", (addr) => {
    expect(forbiddenAddressReason(addr)).toBeNull();
  });
  it.each([
    ["", false], ["management.azure.com", true], ["subdomain.core.windows.net", true], ["core.windows.net.example.com", false],
    ["not-azure.example.com", false], ["my-azurefd.net", false], ["my.azurefd.net", true], ["MANAGEMENT.AZURE.COM", true],
  ])("isAzureEndpoint(%j) is %s (Teleport's cases)", (host, want) => {
    expect(isAzureEndpoint(host)).toBe(want);
  });
  it.each([
    ["https://management.core.windows.net/", "management.azure.com", true],
    ["https://management.azure.com", "myregistry.azurecr.io", true],
    ["https://management.core.windows.net/", "evil.azurefd.net", false],
    ["https://management.core.windows.net/", "acct.blob.core.windows.net", false],
    ["https://storage.azure.com", "acct.blob.core.windows.net", true],
    ["https://storage.azure.com/", "management.azure.com", false],
    ["https://vault.azure.net", "teleport-demo-kv.vault.azure.net", true],
    ["https://vault.azure.net", "kv.vault.azure.net.evil.example", false],
    ["https://acct.blob.core.windows.net", "acct.blob.core.windows.net", true],
    ["https://acct.blob.core.windows.net", "other.blob.core.windows.net", false],
    ["not a url", "management.azure.com", false],
  ])("a token for %s may go to %s: %s", (resource, host, want) => {
    expect(tokenMayGoTo(resource, host)).toBe(want);
  });
  it.each([
    ["management.usgovcloudapi.net", "AzureUSGovernment", true], ["kv.vault.usgovcloudapi.net", "AzureUSGovernment", true], ["acct.blob.core.usgovcloudapi.net", "AzureUSGovernment", true],
    ["management.azure.com", "AzureUSGovernment", false], ["management.usgovcloudapi.net", "Azure", false], ["usgovcloudapi.net.evil.example", "AzureUSGovernment", false],
    ["management.chinacloudapi.cn", "AzureChinaCloud", true], ["kv.vault.azure.cn", "AzureChinaCloud", true], ["microsoftgraph.chinacloudapi.cn", "AzureChinaCloud", true],
    ["kv.vault.azure.net", "AzureChinaCloud", false], ["management.chinacloudapi.cn", "AzureUSGovernment", false],
  ] as const)("isAzureEndpoint(%j) in %s is %s", (host, cloud, want) => {
    expect(isAzureEndpoint(host, cloud)).toBe(want);
  });
  it.each([
    ["https://management.core.usgovcloudapi.net/", "management.usgovcloudapi.net", "AzureUSGovernment", true],
    ["https://management.usgovcloudapi.net", "myregistry.azurecr.us", "AzureUSGovernment", true],
    ["https://management.core.windows.net/", "management.usgovcloudapi.net", "AzureUSGovernment", false],
    ["https://management.core.usgovcloudapi.net/", "management.azure.com", "Azure", false],
    ["https://storage.azure.com", "acct.blob.core.usgovcloudapi.net", "AzureUSGovernment", true],
    ["https://storage.azure.com", "acct.blob.core.windows.net", "AzureUSGovernment", false],
    ["https://vault.usgovcloudapi.net", "kv.vault.usgovcloudapi.net", "AzureUSGovernment", true],
    ["https://graph.microsoft.us", "graph.microsoft.us", "AzureUSGovernment", true],
    ["https://graph.microsoft.com", "graph.microsoft.us", "AzureUSGovernment", false],
    ["https://management.core.chinacloudapi.cn/", "management.chinacloudapi.cn", "AzureChinaCloud", true],
    ["https://vault.azure.cn", "kv.vault.azure.cn", "AzureChinaCloud", true],
    ["https://storage.azure.com", "acct.blob.core.chinacloudapi.cn", "AzureChinaCloud", true],
    ["https://microsoftgraph.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn", "AzureChinaCloud", true],
  ] as const)("a token for %s may go to %s in %s: %s", (resource, host, cloud, want) => {
    expect(tokenMayGoTo(resource, host, cloud)).toBe(want);
  });
  it("maps v1 resources to .default scopes, keeping a trailing slash", () => {
    expect(scopeForResource("https://management.core.windows.net/")).toBe("https://management.core.windows.net//.default");
    expect(scopeForResource("https://vault.azure.net")).toBe("https://vault.azure.net/.default");
    expect(scopeForResource("https://graph.microsoft.com/.default")).toBe("https://graph.microsoft.com/.default");
    expect(scopeForResource("openid")).toBe("openid");
  });
  it("backs off exponentially with jitter, capped", () => {
    expect(backoffDelay(0, 500, 30_000, () => 0)).toBe(250);
    expect(backoffDelay(0, 500, 30_000, () => 1)).toBe(500);
    expect(backoffDelay(3, 500, 30_000, () => 1)).toBe(4000);
    expect(backoffDelay(30, 500, 30_000, () => 0.5)).toBe(22_500);
  });
});
