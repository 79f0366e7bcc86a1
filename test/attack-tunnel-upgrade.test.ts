/**
 * An outside review's attacks on the tunnel upgrades answered by runtime/serve.ts (serveUpgrades) and
 * tunnels.ts (upgrade) instead of the API's router; all held. Raw upgrade requests over TLS against a real proxy in
 * process; every case that is not the one exact endpoint with a valid proof must not get a 101.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import tls from "node:tls";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { loadConfig } from "../src/config/load.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser, createResources } from "../src/proxy/admin.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { login } from "../src/proxy/login.ts";
import { issueAppCert } from "../src/proxy/apps.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import { createProof, PROOF_SCHEME } from "../src/auth/proof.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const READER = IDENTITY("teleport-reader");
const ROLE = `kind: role\nversion: v7\nmetadata: {name: reader}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}\n`;

let proxy: RunningProxy;
let admin: Caller;
const clock = new FakeClock();
let app: { key: CryptoKey; certPem: string };
let userSession: { key: CryptoKey; certPem: string };

beforeAll(async () => {
  const config = loadConfig({ flags: [[["proxy", "listen"], "127.0.0.1:0"], [["cluster_name"], "upgrades"], [["auth", "second_factor"], "off"]] });
  proxy = await startProxy({ ...config, data_dir: tempDir("azgate-upgrade-attack-") }, clock);
  admin = await resolveCaller(proxy.ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: proxy.ctx.localAdminSession });
  await createResources(proxy.ctx, admin, parseResources(ROLE, "role.yaml").resources, false);
  const agent = memoryPair({ onStream: () => undefined });
  proxy.registry.heartbeat({ id: "stand-in", hostId: "stand-in", hostName: "stand-in", session: agent.acceptor, connectedAt: clock.now(), holds: false }, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: { env: "prod" } }]);
  const { invite } = await addUser(proxy.ctx, admin, "mallory", ["reader"], {});
  await acceptInvite(proxy.ctx, invite.token, { password: "correct horse battery mallory" });
  const userKey = await generateKeyPair();
  const loggedIn = await login(proxy.ctx, { user: "mallory", password: "correct horse battery mallory", public_key_pem: await publicKeyToPem(userKey.publicKey) });
  userSession = { key: userKey.privateKey, certPem: loggedIn.cert_pem };
  const appKey = await generateKeyPair();
  const cert = await issueAppCert(proxy.ctx, proxy.registry, await resolveCaller(proxy.ctx, loggedIn.identity), new Date(loggedIn.expires), { app: "azure-cli", azure_identity: READER, public_key_pem: await publicKeyToPem(appKey.publicKey) });
  app = { key: appKey.privateKey, certPem: cert.cert_pem };
}, 60_000);
afterAll(async () => {
  await proxy?.close();
});

/** One raw upgrade request; the status line and headers of the answer (the socket is closed after). */
function rawUpgrade(target: string, headers: Record<string, string>, method = "GET"): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port: proxy.port, rejectUnauthorized: false }, () => {
      const lines = [`${method} ${target} HTTP/1.1`, `host: 127.0.0.1:${proxy.port}`, "connection: Upgrade", "upgrade: websocket", "sec-websocket-version: 13", "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==", ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
      s.write(lines.join("\r\n") + "\r\n\r\n");
    });
    let buf = "";
    const timer = setTimeout(() => (s.destroy(), resolve({ status: 0, head: buf })), 5_000);
    s.on("data", (d) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end >= 0) {
        clearTimeout(timer);
        s.destroy();
        resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(buf)?.[1] ?? 0), head: buf.slice(0, end) });
      }
    });
    s.on("error", (e) => (clearTimeout(timer), reject(e)));
    s.on("close", () => (clearTimeout(timer), resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(buf)?.[1] ?? 0), head: buf })));
  });
}

const proof = async (who: { key: CryptoKey; certPem: string }, pathAndQuery: string, method = "GET") =>
  `${PROOF_SCHEME} ${await createProof({ key: who.key, certPem: who.certPem, method, pathAndQuery, now: clock.now() })}`;

describe("attack: tunnel upgrades answered outside the router", () => {
  it("baseline: an app certificate with a proof for /v1/tunnel/client gets 101", async () => {
    expect((await rawUpgrade("/v1/tunnel/client", { authorization: await proof(app, "/v1/tunnel/client") })).status).toBe(101);
  });

  it.each([
    "/v1/tunnel/client/",
    "//v1/tunnel/client",
    "/v1//tunnel/client",
    "/v1/tunnel/%63lient",
    "/V1/TUNNEL/CLIENT",
    "/v1/tunnel/./client",
    "/v1/tunnel/x/../client",
  ])("held: another spelling of the endpoint (%s), with a proof made for that spelling, opens no tunnel", async (target) => {
    const r = await rawUpgrade(target, { authorization: await proof(app, target) });
    expect(r.status).not.toBe(101);
  });

  it("held: a proof made for the path without its query does not open the tunnel with a query", async () => {
    expect((await rawUpgrade("/v1/tunnel/client?x=1", { authorization: await proof(app, "/v1/tunnel/client") })).status).toBe(401);
  });

  it("held: a user (login) certificate, an app certificate on the agent endpoint, no proof, junk, a replayed proof", async () => {
    expect((await rawUpgrade("/v1/tunnel/client", { authorization: await proof(userSession, "/v1/tunnel/client") })).status).toBe(403);
    expect((await rawUpgrade("/v1/tunnel/agent", { authorization: await proof(app, "/v1/tunnel/agent") })).status).not.toBe(101);
    expect((await rawUpgrade("/v1/tunnel/client", {})).status).toBe(401);
    expect((await rawUpgrade("/v1/tunnel/client", { authorization: `${PROOF_SCHEME} a.b.c` })).status).toBe(401);
    const once = await proof(app, "/v1/tunnel/client");
    expect((await rawUpgrade("/v1/tunnel/client", { authorization: once })).status).toBe(101);
    expect((await rawUpgrade("/v1/tunnel/client", { authorization: once })).status).toBe(401);
  });

  it("held: a version the proxy no longer serves is refused at the upgrade, with the error header", async () => {
    const r = await rawUpgrade("/v1/tunnel/client", { authorization: await proof(app, "/v1/tunnel/client"), "x-azgate-version": "0.0.1" });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.head.toLowerCase()).toContain("x-azgate-error:");
  });

  it("held: a POST upgrade with a GET proof opens nothing", async () => {
    expect((await rawUpgrade("/v1/tunnel/client", { authorization: await proof(app, "/v1/tunnel/client") }, "POST")).status).not.toBe(101);
  });

  it("held: an upgrade to an API route reaches no handler (and a non-websocket upgrade is refused, not left hanging)", async () => {
    expect((await rawUpgrade("/v1/ping", {})).status).toBe(404);
    // Names every object has: an endpoint table that were a plain object would find them (and answer 500).
    for (const path of ["/constructor", "/__proto__", "/toString", "/hasOwnProperty"]) expect((await rawUpgrade(path, {})).status).toBe(404);
    const r = await new Promise<number>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: proxy.port, rejectUnauthorized: false }, () => s.write(`GET /v1/tunnel/client HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n`));
      let b = "";
      s.on("data", (d) => ((b += d), b.includes("\r\n\r\n") && (s.destroy(), resolve(Number(b.slice(9, 12))))));
      s.on("close", () => resolve(Number(b.slice(9, 12)) || 0));
    });
    expect(r).toBe(400);
  });
});
