/**
 * A session cut by the proxy (a lock, a reset, a deleted or re-created user)
 * as a client sees it through the workstation's local proxy: the refusal's
 * own status and code (403 locked, 401 unauthenticated), which az and the
 * SDKs do not retry, not a 502 "azgate unavailable", which they retry (four
 * refusals became sixteen audit events). One process: a real proxy
 * (startProxy: TLS, the tunnel upgrade, the recheck that closes tunnels), a
 * stand-in agent on an in-memory tunnel, the real local proxy, and an Azure
 * SDK pipeline with its default retry policy as the client.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpHeaders, createPipelineFromOptions, createPipelineRequest, type HttpClient, type PipelineResponse } from "@azure/core-rest-pipeline";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { loadConfig } from "../src/config/load.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser, createResources, removeResource, resetUser, updateUser } from "../src/proxy/admin.ts";
import { createRequest, reviewRequest, revokeRequest } from "../src/proxy/access-requests.ts";
import { servedApps } from "../src/proxy/registry.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { login } from "../src/proxy/login.ts";
import { issueAppCert } from "../src/proxy/apps.ts";
import { createLock } from "../src/proxy/locks.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
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
import { rawRequest } from "./helpers/local-proxy.ts";
import { readErrorHeader } from "../src/api/error-header.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const READER = IDENTITY("teleport-reader");
const GROUPS_PATH = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const ROLE = `kind: role\nversion: v7\nmetadata: {name: reader}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}\n`;
const ROLES = `${ROLE}---\nkind: role\nversion: v7\nmetadata: {name: requester}\nspec: {allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${READER}'], max_duration: 1h}}}\n---\nkind: role\nversion: v7\nmetadata: {name: nothing}\nspec: {allow: {app_labels: {'*': '*'}}}\n`;
/** A role only a grant gives (request.roles), and the role that lets a user request it. */
const GRANTED_ROLES = `kind: role\nversion: v7\nmetadata: {name: granted-reader}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}\n---\nkind: role\nversion: v7\nmetadata: {name: role-requester}\nspec: {allow: {request: {roles: [granted-reader], max_duration: 1h}}}\n`;

let proxy: RunningProxy;
let admin: Caller;
const clock = new FakeClock();
/** Requests the stand-in agent holds until the test lets them go. */
let hold: Promise<void> | null = null;
let arrived: () => void = () => undefined;
const closers: (() => Promise<unknown>)[] = [];
/** Puts the stand-in agent (back) in the registry. */
let serveStandIn = () => undefined as void;

beforeAll(async () => {
  const config = loadConfig({ flags: [[["proxy", "listen"], "127.0.0.1:0"], [["cluster_name"], "refusals"], [["auth", "second_factor"], "off"]] });
  proxy = await startProxy({ ...config, data_dir: tempDir("azgate-refusals-") }, clock);
  admin = await resolveCaller(proxy.ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: proxy.ctx.localAdminSession });
  await createResources(proxy.ctx, admin, parseResources(ROLES, "role.yaml").resources, false);
  await createResources(proxy.ctx, admin, parseResources(GRANTED_ROLES, "role.yaml").resources, false);
  // An agent that answers every request with 200 (once a held request is let go), and knows no identity facts.
  const agent = memoryPair({
    onStream: (s: TunnelStream) => {
      if (s.meta.type === IDENTITY_FACTS_CALL) return respondJsonMeta(s, { ok: false, message: "a stand-in agent" });
      arrived();
      // (A request whose tunnel was cut meanwhile is reset by the proxy: nothing to answer then.)
      void (hold ?? Promise.resolve()).then(() => respondJson(s, 200, { value: [] })).catch(() => undefined);
    },
  });
  serveStandIn = () => proxy.registry.heartbeat({ id: "stand-in", hostId: "stand-in", hostName: "stand-in", session: agent.acceptor, connectedAt: clock.now(), holds: false }, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: { env: "prod" } }]);
  serveStandIn();
  closers.push(async () => agent.dialer.close(0, "done"));
}, 60_000);
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await proxy?.close();
});

let users = 0;
/** A user signed up and logged in, with an app session and its local proxy up, its tunnel dialled. */
async function session(roles = ["reader"], beforeAppLogin?: (caller: Caller) => Promise<void>, onAppUnavailable?: (first: boolean) => void): Promise<{ user: string; local: RunningLocalProxy; caPem: string; sessionId: string }> {
  const user = `user${++users}`;
  const { invite } = await addUser(proxy.ctx, admin, user, roles, {});
  await acceptInvite(proxy.ctx, invite.token, { password: `correct horse battery ${user}` });
  const userKey = await generateKeyPair();
  const loggedIn = await login(proxy.ctx, { user, password: `correct horse battery ${user}`, public_key_pem: await publicKeyToPem(userKey.publicKey) });
  const appKey = await generateKeyPair();
  await beforeAppLogin?.(await resolveCaller(proxy.ctx, loggedIn.identity));
  const app = await issueAppCert(proxy.ctx, proxy.registry, await resolveCaller(proxy.ctx, loggedIn.identity), new Date(loggedIn.expires), { app: "azure-cli", azure_identity: READER, public_key_pem: await publicKeyToPem(appKey.publicKey) });
  const ca = await createLocalCa({ now: clock.date(), notAfter: new Date(app.expires) });
  const local = await serveLocalProxy({
    creds: { app: "azure-cli", cloud: "Azure", identity: READER, tenant: "00000000-0000-0000-0000-000000000001", key: appKey.privateKey, certPem: app.cert_pem, expires: new Date(app.expires) },
    target: { baseUrl: proxy.url, ca_pem: pemOf(proxy.ctx.cluster.host.cert) },
    ca,
    secret: "s".repeat(32),
    reserved: await reservePort(0, "127.0.0.1"),
    clock,
    onAppUnavailable,
  });
  closers.push(() => local.close());
  await local.connected;
  const sessionId = (await events("app.session.start", user))[0].session_id as string;
  return { user, local, caPem: ca.certPem, sessionId };
}

/**
 * An Azure SDK pipeline with its default retry policy (az's and every SDK's retry a 502, not a 401 or 403),
 * through the local proxy; with how many times it sent the request.
 */
async function sdkGet(s: { local: RunningLocalProxy; caPem: string }): Promise<PipelineResponse & { attempts: number }> {
  let attempts = 0;
  const viaLocalProxy: HttpClient = {
    async sendRequest(request) {
      attempts++;
      const url = new URL(request.url);
      const res = await rawRequest(s.local.port, s.caPem, url.hostname, { method: request.method, path: url.pathname + url.search, headers: { host: url.hostname, ...request.headers.toJSON() } });
      return { request, status: res.status, headers: createHttpHeaders(Object.fromEntries(Object.entries(res.headers).map(([k, v]) => [k, String(v)]))), bodyAsText: res.body };
    },
  };
  const pipeline = createPipelineFromOptions({ retryOptions: { maxRetries: 3, retryDelayInMs: 1, maxRetryDelayInMs: 2 } });
  const res = await pipeline.sendRequest(viaLocalProxy, createPipelineRequest({ url: `https://management.azure.com${GROUPS_PATH}` }));
  return { ...res, attempts };
}

const events = async (event: string, user: string): Promise<AuditEvent[]> => (await proxy.ctx.audit.search({ event })).filter((e) => e.event === event && e.user === user);

describe("a session the proxy cuts, through the local proxy", () => {
  it.each([
    ["a lock on the user", (user: string) => createLock(proxy.ctx, admin, { target: { user }, message: "incident 42" }), 403, "locked"],
    ["a reset", (user: string) => resetUser(proxy.ctx, admin, user), 401, "unauthenticated"],
    ["deleting the user", (user: string) => removeResource(proxy.ctx, admin, "user", user), 401, "unauthenticated"],
    ["deleting and re-creating the user", async (user: string) => (await removeResource(proxy.ctx, admin, "user", user), await addUser(proxy.ctx, admin, user, ["reader"], {})), 401, "unauthenticated"],
  ])("%s: the next request gets the refusal's own status and code, once (not retried: one refusal in the audit log)", async (_what, cut, status, code) => {
    const s = await session();
    expect((await sdkGet(s)).status).toBe(200);
    await cut(s.user);
    // The proxy closes the open tunnel (proxy/tunnels.ts watches the backend), audited.
    await expect.poll(async () => (await events("app.session.closed", s.user)).length).toBe(1);
    const res = await sdkGet(s);
    expect([res.status, res.attempts]).toEqual([status, 1]);
    expect(JSON.parse(res.bodyAsText!).error.code).toBe(code);
    // One request, one refused dial: the client did not retry it.
    expect(await events("app.tunnel.denied", s.user)).toEqual([expect.objectContaining({ error_code: code, success: false, session_id: s.sessionId })]);
  });

  it("a request in flight when a lock lands gets 403 locked too, not a 502 (the local proxy asks the proxy why its tunnel closed)", async () => {
    const s = await session();
    let letGo!: () => void;
    hold = new Promise((r) => (letGo = r));
    const reached = new Promise<void>((r) => (arrived = r));
    try {
      const pending = sdkGet(s);
      await reached;
      await createLock(proxy.ctx, admin, { target: { user: s.user }, message: "mid-request" });
      const res = await pending;
      expect([res.status, res.attempts]).toEqual([403, 1]);
      expect(JSON.parse(res.bodyAsText!).error).toMatchObject({ code: "locked", message: expect.stringContaining("mid-request") });
      expect((await events("app.tunnel.denied", s.user)).map((e) => e.error_code)).toEqual(["locked"]);
    } finally {
      hold = null;
      arrived = () => undefined;
      letGo();
    }
  });

  /** An approved access request for READER, made and approved before apps login; its id in `grant.id`. */
  const grant = { id: "" };
  const approved = async (caller: Caller) => {
    grant.id = (await createRequest(proxy.ctx, caller, { app: "azure-cli", azure_identity: READER, duration: "1h", reason: "INC-1" }, servedApps(proxy.registry))).metadata.name;
    await reviewRequest(proxy.ctx, admin, grant.id, { state: "APPROVED", reason: "ok" });
  };
  it.each([
    ["the user's roles changed", ["reader"], undefined, (user: string) => updateUser(proxy.ctx, admin, user, { roles: ["nothing"] })],
    ["the role edited to allow the identity no more", ["reader"], undefined, () => createResources(proxy.ctx, admin, parseResources(ROLE.replace(`['${READER}']`, "[]"), "role.yaml").resources, true)],
    ["the grant revoked", ["requester"], approved, () => revokeRequest(proxy.ctx, admin, grant.id, { reason: "done" })],
    ["the requester role taken away mid-grant", ["requester"], approved, (user: string) => updateUser(proxy.ctx, admin, user, { roles: ["nothing"] })],
  ] as const)("%s: the open tunnel is closed at once, audited, and the next request is refused 403 access_denied, once", async (_what, roles, before, cut) => {
    const s = await session([...roles], before);
    try {
      expect((await sdkGet(s)).status).toBe(200);
      await cut(s.user);
      await expect.poll(async () => (await events("app.session.closed", s.user)).map((e) => e.session_id)).toEqual([s.sessionId]);
      const res = await sdkGet(s);
      expect([res.status, res.attempts]).toEqual([403, 1]);
      expect(JSON.parse(res.bodyAsText!).error.code).toBe("access_denied");
      expect((await events("app.request.denied", s.user)).map((e) => e.error_code)).toEqual(["access_denied"]);
    } finally {
      await createResources(proxy.ctx, admin, parseResources(ROLE, "role.yaml").resources, true);
    }
  });

  it("a lock on a role the user holds only through a grant (request.roles): the open tunnel is closed at once, audited, and the next request gets 403 locked, once (issue 29, defect 6)", async () => {
    const s = await session(["role-requester"], approved);
    expect((await sdkGet(s)).status).toBe(200);
    const lock = await createLock(proxy.ctx, admin, { target: { role: "granted-reader" }, message: "prod freeze" });
    try {
      await expect.poll(async () => (await events("app.session.closed", s.user)).map((e) => [e.session_id, e.reason])).toEqual([[s.sessionId, expect.stringContaining("prod freeze")]]);
      const res = await sdkGet(s);
      expect([res.status, res.attempts]).toEqual([403, 1]);
      expect(JSON.parse(res.bodyAsText!).error).toMatchObject({ code: "locked", message: expect.stringContaining("prod freeze") });
      // The account itself is not locked, so the tunnel opens again; the route (the grant and its role) is refused per request.
      expect(await events("app.request.denied", s.user)).toEqual([expect.objectContaining({ error_code: "locked", success: false, session_id: s.sessionId })]);
    } finally {
      await removeResource(proxy.ctx, admin, "lock", lock.metadata.name);
    }
  });

  it("a change that leaves access as it was closes nothing", async () => {
    const s = await session();
    expect((await sdkGet(s)).status).toBe(200);
    await updateUser(proxy.ctx, admin, s.user, { roles: ["reader", "nothing"] });
    await createResources(proxy.ctx, admin, parseResources(ROLE, "role.yaml").resources, true);
    expect((await sdkGet(s)).status).toBe(200);
    expect(await events("app.session.closed", s.user)).toEqual([]);
  });

  it("no agent serving the app: a 503 app_unavailable (which clients may retry), told to the workstation once per outage, as the first answer or after one got through", async () => {
    const told: boolean[] = [];
    const s = await session(["reader"], undefined, (first) => told.push(first));
    const get = () => rawRequest(s.local.port, s.caPem, "management.azure.com", { method: "GET", path: GROUPS_PATH, headers: { host: "management.azure.com" } });
    proxy.registry.removeTunnel("stand-in");
    try {
      const res = await get();
      expect([res.status, JSON.parse(res.body).error.code, readErrorHeader(String(res.headers["x-azgate-error"]))?.code]).toEqual([503, "app_unavailable", "app_unavailable"]);
      await get();
      expect(told).toEqual([true]);
      serveStandIn();
      expect((await get()).status).toBe(200);
      expect(told).toEqual([true]);
      proxy.registry.removeTunnel("stand-in");
      await get();
      await get();
      expect(told).toEqual([true, false]);
      // Each refusal is audited, with its code.
      expect((await events("app.request.denied", s.user)).map((e) => e.error_code)).toEqual(["app_unavailable", "app_unavailable", "app_unavailable", "app_unavailable"]);
    } finally {
      serveStandIn();
    }
  });

  it("a proxy that cannot be reached is still azgate_unavailable (502, which clients retry)", async () => {
    const s = await session();
    // The tunnel is up; take the proxy's answer away: the next dial finds nobody.
    await proxy.tunnels.drain(0);
    proxy.tunnels.close();
    const res = await rawRequest(s.local.port, s.caPem, "management.azure.com", { method: "GET", path: GROUPS_PATH, headers: { host: "management.azure.com" } });
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body).error.code).toBe("azgate_unavailable");
  });
});
