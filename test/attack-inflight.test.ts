/**
 * An outside review's attacks, kept (all held): (1) requests in flight when a
 * lock lands, through a real proxy, the real local proxy and a stand-in agent
 * that streams (a download or an upload cut, its tunnel closed and audited, the
 * next request refused `locked`; a request held while its start event is
 * written is reset, never released); (2) a bot's renewal and re-join after a
 * lock on it or its role, after its removal, and after its removal and
 * re-creation under the same name. The short real waits assert that nothing
 * more arrives after the cut.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type tls from "node:tls";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { loadConfig } from "../src/config/load.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser, createResources, removeResource } from "../src/proxy/admin.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { login } from "../src/proxy/login.ts";
import { issueAppCert } from "../src/proxy/apps.ts";
import { createLock, removeLock } from "../src/proxy/locks.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import { pemOf } from "../src/proxy/cluster.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import { respondJsonMeta, type TunnelStream } from "../src/tunnel/index.ts";
import { respondJson } from "../src/tunnel/http.ts";
import { IDENTITY_FACTS_CALL } from "../src/api/types.ts";
import { serveLocalProxy, type RunningLocalProxy } from "../src/client/local-proxy.ts";
import { createLocalCa } from "../src/client/local-ca.ts";
import { reservePort } from "../src/net/listen.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { tempDir } from "./helpers/azgate.ts";
import { connectThrough, rawRequest } from "./helpers/local-proxy.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { useEmulator } from "./helpers/emulator.ts";
import { startMemoryCluster, type MemoryCluster } from "./helpers/memory-cluster.ts";
import { join } from "../src/proxy/join.ts";
import { addBot, removeBot } from "../src/proxy/bots/admin.ts";
import { renewBot } from "../src/proxy/bots/renew.ts";
import type { BotCertificate } from "../src/proxy/bots/join.ts";
import { botLockUser } from "../src/resources/user.ts";
import { githubClaims } from "../src/emulator/ci-runner.ts";
import { createApi } from "../src/proxy/api.ts";
import { ApiClient } from "../src/api/client.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const GROUPS_PATH = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const RG_PATH = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/up?api-version=2022-09-01";
const ROLES = `kind: role\nversion: v7\nmetadata: {name: reader}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}\n---\nkind: role\nversion: v7\nmetadata: {name: reader2}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}\n`;
const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Part 1: a real proxy (startProxy: the tunnel upgrade and the recheck that closes tunnels).
// ---------------------------------------------------------------------------------------------
describe("in flight when a lock lands (real proxy, tunnels.ts)", () => {
  let proxy: RunningProxy;
  let admin: Caller;
  const clock = new FakeClock();
  const closers: (() => Promise<unknown>)[] = [];
  /** What the stand-in agent does with the next Azure request. */
  let onRequest: (s: TunnelStream) => void = (s) => void respondJson(s, 200, { value: [] }).catch(() => undefined);
  let holding = false;

  beforeAll(async () => {
    const config = loadConfig({ flags: [[["proxy", "listen"], "127.0.0.1:0"], [["cluster_name"], "attack-r5"], [["auth", "second_factor"], "off"]] });
    proxy = await startProxy({ ...config, data_dir: tempDir("azgate-r5-") }, clock);
    admin = await resolveCaller(proxy.ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: proxy.ctx.localAdminSession });
    await createResources(proxy.ctx, admin, parseResources(ROLES, "role.yaml").resources, false);
    const agent = memoryPair({
      onStream: (s: TunnelStream) => {
        if (s.meta.type === IDENTITY_FACTS_CALL) return respondJsonMeta(s, { ok: false, message: "a stand-in agent" });
        onRequest(s);
      },
    });
    const serve = () => proxy.registry.heartbeat({ id: "stand-in", hostId: "stand-in", hostName: "stand-in", session: agent.acceptor, connectedAt: clock.now(), holds: holding }, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: { env: "prod" } }]);
    serve();
    (globalThis as Record<string, unknown>).__r5serve = (h: boolean) => ((holding = h), proxy.registry.removeTunnel("stand-in"), serve());
    closers.push(async () => agent.dialer.close(0, "done"));
  }, 60_000);
  afterAll(async () => {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    await proxy?.close();
  });

  const events = async (event: string, user: string): Promise<AuditEvent[]> => (await proxy.ctx.audit.search({ event })).filter((e) => e.event === event && e.user === user);
  let users = 0;
  async function session(roles = ["reader"]): Promise<{ user: string; local: RunningLocalProxy; caPem: string; sessionId: string; caller: Caller }> {
    const user = `r5user${++users}`;
    const { invite } = await addUser(proxy.ctx, admin, user, roles, {});
    await acceptInvite(proxy.ctx, invite.token, { password: `correct horse battery ${user}` });
    const userKey = await generateKeyPair();
    const loggedIn = await login(proxy.ctx, { user, password: `correct horse battery ${user}`, public_key_pem: await publicKeyToPem(userKey.publicKey) });
    const appKey = await generateKeyPair();
    const caller = await resolveCaller(proxy.ctx, loggedIn.identity);
    const app = await issueAppCert(proxy.ctx, proxy.registry, caller, new Date(loggedIn.expires), { app: "azure-cli", azure_identity: READER, public_key_pem: await publicKeyToPem(appKey.publicKey) });
    const ca = await createLocalCa({ now: clock.date(), notAfter: new Date(app.expires) });
    const local = await serveLocalProxy({
      creds: { app: "azure-cli", cloud: "Azure", identity: READER, tenant: "00000000-0000-0000-0000-000000000001", key: appKey.privateKey, certPem: app.cert_pem, expires: new Date(app.expires) },
      target: { baseUrl: proxy.url, ca_pem: pemOf(proxy.ctx.cluster.host.cert) },
      ca,
      secret: "s".repeat(32),
      reserved: await reservePort(0, "127.0.0.1"),
      clock,
    });
    closers.push(() => local.close());
    await local.connected;
    const sessionId = (await events("app.session.start", user))[0].session_id as string;
    return { user, local, caPem: ca.certPem, sessionId, caller };
  }
  const get = (s: { local: RunningLocalProxy; caPem: string }) => rawRequest(s.local.port, s.caPem, "management.azure.com", { method: "GET", path: GROUPS_PATH, headers: { host: "management.azure.com" } });

  /** A raw HTTP/1.1 request through the local proxy whose bytes (and end) the test watches. */
  async function open(s: { local: RunningLocalProxy; caPem: string }, head: string): Promise<{ socket: tls.TLSSocket; bytes: () => number; closed: Promise<void>; text: () => string }> {
    const socket = await connectThrough(s.local.port, "management.azure.com", s.caPem);
    let got = Buffer.alloc(0);
    socket.on("data", (d: Buffer) => (got = Buffer.concat([got, d])));
    const closed = new Promise<void>((r) => {
      socket.once("close", () => r());
      socket.once("end", () => r());
      socket.once("error", () => r());
    });
    socket.write(head);
    return { socket, bytes: () => got.length, closed, text: () => got.toString("latin1") };
  }

  type Cut = [string, (s: { user: string; caller: Caller; sessionId: string }) => Promise<unknown>];
  const CUTS: Cut[] = [
    ["the user", (s) => createLock(proxy.ctx, admin, { target: { user: s.user }, message: "r5 freeze" })],
    ["the role", () => createLock(proxy.ctx, admin, { target: { role: "reader2" }, message: "r5 freeze" })],
    ["the Azure identity", () => createLock(proxy.ctx, admin, { target: { azure_identity: READER }, message: "r5 freeze" })],
  ];

  it.each(CUTS)("a download streaming when a lock on %s lands: the stream is cut (agent stream reset, client gets no more bytes), the tunnel closed and audited, the next request 403 locked and audited", async (_what, cut) => {
    const s = await session(["reader2"]);
    expect((await get(s)).status).toBe(200);
    let upstream!: TunnelStream;
    const started = new Promise<void>((r) => {
      onRequest = (st) => {
        upstream = st;
        st.sendMeta({ status: 200, headers: [["content-type", "application/octet-stream"]] });
        r();
      };
    });
    const chunk = new Uint8Array(16 * 1024).fill(65);
    let lock: { metadata: { name: string } } | undefined;
    try {
      const dl = await open(s, `GET ${GROUPS_PATH} HTTP/1.1\r\nhost: management.azure.com\r\n\r\n`);
      await started;
      for (let i = 0; i < 4; i++) await upstream.write(chunk);
      await expect.poll(() => dl.bytes()).toBeGreaterThan(4 * 16 * 1024);
      lock = (await cut(s)) as typeof lock;
      await expect.poll(async () => (await events("app.session.closed", s.user)).map((e) => e.session_id)).toEqual([s.sessionId]);
      // The proxy's side of the agent stream is reset: the agent is told to stop.
      await expect.poll(() => upstream.resetError !== null || upstream.isClosed).toBe(true);
      const before = dl.bytes();
      // More from "Azure": it must not reach the client.
      for (let i = 0; i < 4; i++) await Promise.race([upstream.write(chunk).catch(() => undefined), tick(50)]);
      await tick(100);
      expect(dl.bytes() - before).toBeLessThan(16 * 1024);
      dl.socket.destroy();
      // The next request.
      onRequest = (st) => void respondJson(st, 200, { value: [] }).catch(() => undefined);
      const next = await get(s);
      expect(next.status).toBe(403);
      expect(JSON.parse(next.body).error.code).toBe("locked");
      const refusals = [...(await events("app.tunnel.denied", s.user)), ...(await events("app.request.denied", s.user))];
      expect(refusals.map((e) => e.error_code)).toContain("locked");
      // The cut download is audited as failed, not as a success.
      const done = [...(await events("app.request", s.user)), ...(await events("app.request.failed", s.user))].filter((e) => e.method === "GET");
      expect(done.filter((e) => e.success === true).length).toBe(1); // only the warm-up GET
    } finally {
      onRequest = (st) => void respondJson(st, 200, { value: [] }).catch(() => undefined);
      if (lock) await removeLock(proxy.ctx, admin, lock.metadata.name).catch(() => undefined);
    }
  });

  it("an upload streaming when a lock on the user lands: no more body bytes reach the agent, the tunnel is closed and audited", async () => {
    const s = await session();
    expect((await get(s)).status).toBe(200);
    let received = 0;
    let upstream!: TunnelStream;
    const started = new Promise<void>((r) => {
      onRequest = (st) => {
        upstream = st;
        r();
        void (async () => {
          try {
            for (let c = await st.read(); c; c = await st.read()) received += c.byteLength;
          } catch {
            /* reset */
          }
        })();
      };
    });
    const total = 4 * 1024 * 1024;
    const up = await open(s, `PUT ${RG_PATH} HTTP/1.1\r\nhost: management.azure.com\r\ncontent-type: application/json\r\ncontent-length: ${total}\r\n\r\n`);
    const part = Buffer.alloc(64 * 1024, 32);
    let sent = 0;
    for (let i = 0; i < 4; i++, sent += part.length) up.socket.write(part);
    await started;
    await expect.poll(() => received).toBeGreaterThan(0);
    await createLock(proxy.ctx, admin, { target: { user: s.user }, message: "r5 upload" });
    await expect.poll(async () => (await events("app.session.closed", s.user)).length).toBe(1);
    await expect.poll(() => upstream.resetError !== null).toBe(true);
    const atLock = received;
    for (let i = 0; i < 8; i++) up.socket.write(part);
    await tick(200);
    expect(received).toBe(atLock);
    up.socket.destroy();
    onRequest = (st) => void respondJson(st, 200, { value: [] }).catch(() => undefined);
  });

  it("a request held while its start event is written (a remote audit log) when a lock lands: the agent is never released", async () => {
    (globalThis as unknown as { __r5serve: (h: boolean) => void }).__r5serve(true);
    const audit = proxy.ctx.audit as { emit: (e: AuditEvent) => Promise<void>; remote?: boolean };
    const realEmit = audit.emit.bind(audit);
    const wasRemote = Object.getOwnPropertyDescriptor(audit, "remote");
    let letStore!: () => void;
    const gate = new Promise<void>((r) => (letStore = r));
    let user = "";
    try {
      const s = await session();
      user = s.user;
      expect((await get(s)).status).toBe(200); // not held: remote false yet
      Object.defineProperty(audit, "remote", { value: true, configurable: true, writable: true });
      audit.emit = async (e: AuditEvent) => {
        if (e.event === "app.request.start" && e.user === user) await gate;
        return realEmit(e);
      };
      let released: boolean | null = null;
      let reset = false;
      const arrived = new Promise<void>((r) => {
        onRequest = (st) => {
          r();
          void st.readMeta().then(
            (m) => {
              released = !!(m && (m as { release?: boolean }).release);
              if (released) void respondJson(st, 200, { value: [] }).catch(() => undefined);
            },
            () => (reset = true),
          );
          void st.done().then(() => st.resetError && (reset = true));
        };
      });
      const pending = get(s).catch((e) => e);
      await arrived;
      expect((await proxy.ctx.audit.search({ event: "app.request.start" })).filter((e) => e.user === user).length).toBe(1);
      await createLock(proxy.ctx, admin, { target: { user: s.user }, message: "r5 held" });
      await expect.poll(async () => (await events("app.session.closed", s.user)).length).toBe(1);
      letStore();
      await tick(200);
      expect(released).not.toBe(true);
      expect(reset).toBe(true);
      await pending;
    } finally {
      letStore();
      audit.emit = realEmit;
      if (wasRemote) Object.defineProperty(audit, "remote", wasRemote);
      else delete (audit as { remote?: boolean }).remote;
      (globalThis as unknown as { __r5serve: (h: boolean) => void }).__r5serve(false);
      onRequest = (st) => void respondJson(st, 200, { value: [] }).catch(() => undefined);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Part 1b: the same tunnel (memory cluster: handleAppRequest per stream, no tunnel close), next request.
// ---------------------------------------------------------------------------------------------
describe("the same tunnel's next request after a lock (memory cluster)", () => {
  let c: MemoryCluster;
  const BOT_TOKEN = (name: string, bot: string) => `kind: token\nversion: v2\nmetadata: { name: ${name} }\nspec:\n  roles: [Bot]\n  bot_name: ${bot}\n  join_method: github\n  github:\n    allow:\n      - { repository: acme/infra, repository_id: "892712345" }\n`;
  beforeAll(async () => {
    c = await startMemoryCluster(fx, { bots: { issuer_connect_to: { address: `127.0.0.1:${fx.emu.httpsPort}`, ca_file: fx.emu.caFile } } });
    c.agent();
    await c.createRoles(ROLES);
    await c.createRoles(`kind: role\nversion: v7\nmetadata: {name: nothing}\nspec: {allow: {app_labels: {'*': '*'}}}\n`);
    await createResources(c.ctx, c.admin, parseResources([BOT_TOKEN("gh-a", "alpha"), BOT_TOKEN("gh-b", "beta"), BOT_TOKEN("gh-c", "gamma"), BOT_TOKEN("gh-d", "delta")].join("---\n"), "t").resources, false);
  }, 60_000);
  afterAll(async () => {
    await c?.close();
  });
  const denied = async (user: string) => (await c.ctx.audit.search({ event: "app.request.denied" })).filter((e) => e.user === user);

  it.each([
    ["user", (u: string) => ({ user: u })],
    ["role", () => ({ role: "reader" })],
    ["azure identity", () => ({ azure_identity: "teleport-reader" })],
  ] as const)("a lock on the %s: the next request on the same tunnel is refused 403 locked, audited", async (_w, target) => {
    const user = `m-${_w.replace(/ /g, "")}`;
    const app = await c.appSession(user, ["reader"], READER, { traits: {} });
    expect((await app.request(`https://management.azure.com${GROUPS_PATH}`)).status).toBe(200);
    const lock = await createLock(c.ctx, c.admin, { target: target(user) });
    try {
      const res = await app.request(`https://management.azure.com${GROUPS_PATH}`);
      expect(res.status).toBe(403);
      expect(await denied(user)).toEqual([expect.objectContaining({ error_code: "locked", success: false })]);
    } finally {
      await removeLock(c.ctx, c.admin, lock.metadata.name);
    }
  });

  // ------------------------------------------------------------------------------------------
  // Part 2: bots.
  // ------------------------------------------------------------------------------------------
  const now = () => Math.floor(c.clock.now() / 1000);
  const gh = () => fx.emu.ci.github.sign(githubClaims({ repository: "acme/infra" }), { audience: "memory", now: now() });
  async function joinAs(tokenName: string): Promise<BotCertificate & { key: CryptoKeyPair }> {
    const key = await generateKeyPair();
    const res = (await join(c.ctx, { token: tokenName, join_method: "github", id_token: await gh(), public_key_pem: await publicKeyToPem(key.publicKey), type: "" }, "10.9.9.9")) as BotCertificate;
    return { ...res, key };
  }
  const BASE = "https://attack-r5.test";
  const apiFor = async (cert: BotCertificate & { key: CryptoKeyPair }) => {
    const api = createApi(c.ctx, { publicUrl: () => BASE, registry: c.registry });
    return new ApiClient({ baseUrl: BASE, fetch: (r) => api.fetch(r) }, { keyPem: await privateKeyToPem(cert.key.privateKey), certPem: cert.cert_pem }, c.clock);
  };
  const renewOverApi = async (cert: BotCertificate & { key: CryptoKeyPair }) => (await apiFor(cert)).call<BotCertificate>("POST", "/v1/bots/renew", { public_key_pem: await publicKeyToPem((await generateKeyPair()).publicKey) });
  const evs = async (event: string, user: string) => (await c.ctx.audit.search({ event })).filter((e) => e.event === event && e.user === user);

  it("bot locked (lock --bot): renewal over the API refused locked and audited; re-join refused locked and audited; its app session's next request refused", async () => {
    await addBot(c.ctx, c.admin, "alpha", ["reader"]);
    const cert = await joinAs("gh-a");
    expect((await renewOverApi(cert)).identity.name).toBe("bot-alpha");
    const app = await c.appSessionAs(await resolveCaller(c.ctx, cert.identity), new Date(cert.expires), READER);
    expect((await app.request(`https://management.azure.com${GROUPS_PATH}`)).status).toBe(200);
    const lock = await createLock(c.ctx, c.admin, { target: { user: botLockUser("alpha") }, message: "bot freeze" });
    await expect(renewOverApi(cert)).rejects.toMatchObject({ code: "locked" });
    const refusals = [...(await evs("api.request.denied", "bot-alpha")), ...(await evs("bot.renew", "bot-alpha")).filter((e) => e.success === false)];
    expect(refusals.map((e) => e.error_code)).toContain("locked");
    await expect(joinAs("gh-a")).rejects.toMatchObject({ code: "locked" });
    expect((await c.ctx.audit.search({ event: "bot.join" })).filter((e) => e.bot === "alpha" && e.success === false).map((e) => e.error_code)).toEqual(["locked"]);
    expect((await app.request(`https://management.azure.com${GROUPS_PATH}`)).status).toBe(403);
    expect((await denied("bot-alpha")).map((e) => e.error_code)).toEqual(["locked"]);
    // Direct call too (no API middleware): renewBot resolves nothing itself; the caller must come from resolveCaller.
    await expect(resolveCaller(c.ctx, cert.identity)).rejects.toMatchObject({ code: "locked" });
    await removeLock(c.ctx, c.admin, lock.metadata.name);
  });

  it("bot locked through its role: renewal and join refused locked, audited", async () => {
    await addBot(c.ctx, c.admin, "beta", ["reader2"]);
    const cert = await joinAs("gh-b");
    const lock = await createLock(c.ctx, c.admin, { target: { role: "reader2" } });
    try {
      await expect(renewOverApi(cert)).rejects.toMatchObject({ code: "locked" });
      expect((await evs("api.request.denied", "bot-beta")).map((e) => e.error_code)).toEqual(["locked"]);
      await expect(joinAs("gh-b")).rejects.toMatchObject({ code: "locked" });
    } finally {
      await removeLock(c.ctx, c.admin, lock.metadata.name);
    }
  });

  it("bot deleted: the old certificate's renewal refused and audited; its app session's next request refused, audited; re-join refused not_found, audited", async () => {
    await addBot(c.ctx, c.admin, "gamma", ["reader"]);
    const cert = await joinAs("gh-c");
    const app = await c.appSessionAs(await resolveCaller(c.ctx, cert.identity), new Date(cert.expires), READER);
    expect((await app.request(`https://management.azure.com${GROUPS_PATH}`)).status).toBe(200);
    await removeBot(c.ctx, c.admin, "gamma");
    await expect(renewOverApi(cert)).rejects.toMatchObject({ code: "unauthenticated" });
    expect((await evs("api.request.denied", "bot-gamma")).map((e) => e.error_code)).toEqual(["unauthenticated"]);
    expect((await app.request(`https://management.azure.com${GROUPS_PATH}`)).status).toBe(401);
    expect((await denied("bot-gamma")).map((e) => e.error_code)).toEqual(["unauthenticated"]);
    await expect(joinAs("gh-c")).rejects.toMatchObject({ code: "not_found" });
    expect((await c.ctx.audit.search({ event: "bot.join" })).filter((e) => e.bot === "gamma" && e.success === false).map((e) => e.error_code)).toEqual(["not_found"]);
  });

  it("bot deleted and re-created under the same name with other roles: the old certificate neither renews nor serves nor opens an app session; a new join gets the new roles", async () => {
    await addBot(c.ctx, c.admin, "delta", ["reader"]);
    const cert = await joinAs("gh-d");
    const app = await c.appSessionAs(await resolveCaller(c.ctx, cert.identity), new Date(cert.expires), READER);
    expect((await app.request(`https://management.azure.com${GROUPS_PATH}`)).status).toBe(200);
    await removeBot(c.ctx, c.admin, "delta");
    await addBot(c.ctx, c.admin, "delta", ["nothing"]);
    await expect(renewOverApi(cert)).rejects.toMatchObject({ code: "unauthenticated" });
    expect((await evs("api.request.denied", "bot-delta")).map((e) => e.error_code)).toEqual(["unauthenticated"]);
    // Even renewBot called with a hand-made caller that is the new record: the old cert's stamp must not pass.
    await expect(resolveCaller(c.ctx, cert.identity)).rejects.toMatchObject({ code: "unauthenticated" });
    expect((await app.request(`https://management.azure.com${GROUPS_PATH}`)).status).toBe(401);
    // An app login with the old cert over the API.
    const api = await apiFor(cert);
    await expect(api.call("POST", "/v1/apps/login", { app: "azure-cli", azure_identity: READER, public_key_pem: await publicKeyToPem((await generateKeyPair()).publicKey) })).rejects.toMatchObject({ code: expect.stringMatching(/unauthenticated|not_found/) });
    // Re-created with the same roles again: the first cert still does not come back.
    await removeBot(c.ctx, c.admin, "delta");
    await addBot(c.ctx, c.admin, "delta", ["reader"]);
    await expect(renewOverApi(cert)).rejects.toMatchObject({ code: "unauthenticated" });
    expect((await app.request(`https://management.azure.com${GROUPS_PATH}`)).status).toBe(401);
    const fresh = await joinAs("gh-d");
    expect(fresh.identity.roles).toEqual(["reader"]);
    void renewBot;
  });
});
