/**
 * CA rotation in one process, by the proxy's clock (a FakeClock): a real
 * proxy (startProxy: TLS, the tunnel upgrade, the trust calls, the TLS
 * certificate swapped at update_servers), the real workstation local proxy
 * with a client sending requests the whole time, and a stand-in agent that
 * checks each request's placeholder against the key of the tunnel it came on,
 * as the real agent does. Each rotation (host, user, a rollback, a
 * semi-automatic one) runs under that load with zero failed requests; after
 * the final standby every credential of the retired CA is refused with
 * ca_retired, audited. The spawned-process version with a real agent, az and
 * PostgreSQL replicas is test/e2e/rotation.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import https from "node:https";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { loadConfig } from "../src/config/load.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addToken, addUser, createResources } from "../src/proxy/admin.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { login } from "../src/proxy/login.ts";
import { issueAppCert } from "../src/proxy/apps.ts";
import { joinAgent } from "../src/proxy/join.ts";
import { rotateAuthority, rotationReport } from "../src/proxy/rotation.ts";
import { trustMessage } from "../src/proxy/rotation-trust.ts";
import { handleAppRequest } from "../src/proxy/app-request.ts";
import { followAuthorities, initCluster, pemOf } from "../src/proxy/cluster.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import { caPin } from "../src/pki/pin.ts";
import { identityOf } from "../src/pki/certificate.ts";
import { x509 } from "../src/pki/x509.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import { dialTunnel, respondJsonMeta, type TunnelSession, type TunnelStream } from "../src/tunnel/index.ts";
import { respondJson, tunnelRequest } from "../src/tunnel/http.ts";
import { IDENTITY_FACTS_CALL, type PingResponse } from "../src/api/types.ts";
import { agentRequestSchema, refusal } from "../src/azure/forwarding.ts";
import { signPlaceholder, verifyPlaceholder } from "../src/azure/placeholder.ts";
import { ApiClient } from "../src/api/client.ts";
import { serveLocalProxy, type RunningLocalProxy } from "../src/client/local-proxy.ts";
import { createLocalCa } from "../src/client/local-ca.ts";
import { IDENTITY_HOST } from "../src/client/session-env.ts";
import { reservePort } from "../src/net/listen.ts";
import { agentTrust } from "../src/agent/rotation.ts";
import { saveAgentState, type AgentState } from "../src/agent/state.ts";
import { ensureJoined } from "../src/agent/join.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import type { Phase } from "../src/pki/rotation.ts";
import { AzgateError, isAzgateError } from "../src/errors/index.ts";
import { IDENTITY } from "./helpers/cluster.ts";
import { tempDir } from "./helpers/azgate.ts";
import { rawRequest } from "./helpers/local-proxy.ts";
import { FakeClock, settle } from "./helpers/fake-clock.ts";

const READER = IDENTITY("teleport-reader");
const GROUPS_PATH = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
const ROLE = `kind: role\nversion: v7\nmetadata: {name: reader}\nspec: {allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}}\n`;
const APP = { name: "azure-cli", cloud: "Azure" as const, uri: "cloud://Azure", labels: { env: "prod" } };

let proxy: RunningProxy;
let admin: Caller;
const clock = new FakeClock();
const closers: (() => Promise<unknown>)[] = [];
let standIn: ReturnType<typeof memoryPair>;

/** A stand-in agent: it answers every request 200 once the placeholder verifies against the tunnel's key (forward.ts's check), else the agent's refusal. */
function standInAgent(s: TunnelStream): void {
  if (s.meta.type === IDENTITY_FACTS_CALL) return respondJsonMeta(s, { ok: false, message: "a stand-in agent" });
  const meta = agentRequestSchema.parse(s.meta);
  const auth = meta.headers.find(([k]) => k.toLowerCase() === "authorization")?.[1] ?? "";
  try {
    verifyPlaceholder(auth.replace(/^Bearer /, ""), meta.client_key as JsonWebKey, meta.session.azure_identity, clock.date());
  } catch (e) {
    const r = refusal(e as AzgateError, "azgate agent");
    return void respondJson(s, r.status, r.body).catch(() => undefined);
  }
  void respondJson(s, 200, { value: [] }).catch(() => undefined);
}
const heartbeat = () => proxy.registry.heartbeat({ id: "stand-in", hostId: "stand-in", hostName: "stand-in", session: standIn.acceptor, connectedAt: clock.now(), holds: false }, [APP]);

beforeAll(async () => {
  const config = loadConfig({ flags: [[["proxy", "listen"], "127.0.0.1:0"], [["cluster_name"], "rotation"], [["auth", "second_factor"], "off"]] });
  proxy = await startProxy({ ...config, data_dir: tempDir("azgate-rotation-") }, clock);
  admin = await resolveCaller(proxy.ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: proxy.ctx.localAdminSession });
  await createResources(proxy.ctx, admin, parseResources(ROLE, "role.yaml").resources, false);
  standIn = memoryPair({ onStream: standInAgent });
  heartbeat();
  // It heartbeats every 10 s by the proxy's clock, as an agent does: a test that moves the clock by minutes keeps it
  // live all the way (a heartbeat only after the move left requests in flight meanwhile to find no agent: app_unavailable).
  const beat = clock.every(10_000, heartbeat);
  closers.push(async () => beat.cancel());
  closers.push(async () => standIn.dialer.close(0, "done"));
}, 60_000);
afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await proxy?.close();
});

let users = 0;
interface Workstation {
  user: string;
  local: RunningLocalProxy;
  caPem: string;
  token: string;
  loginKeyPem: string;
  loginCertPem: string;
  appKeyPem: string;
  appCertPem: string;
  /** What the local proxy stored (the reissue and trust hooks). */
  reissued: { keyPem: string; certPem: string }[];
  trusted: string[][];
}

/** A user signed up and logged in, an app session, its running local proxy (trusting `hostCas`), and a placeholder from its token endpoint, cached as clients cache it. */
async function workstation(hostCas: string[] = [pemOf(proxy.ctx.cluster.views.host.tls.cert)]): Promise<Workstation> {
  const user = `user${++users}`;
  const { invite } = await addUser(proxy.ctx, admin, user, ["reader"], {});
  await acceptInvite(proxy.ctx, invite.token, { password: `correct horse battery ${user}` });
  const loginKey = await generateKeyPair();
  const loggedIn = await login(proxy.ctx, { user, password: `correct horse battery ${user}`, public_key_pem: await publicKeyToPem(loginKey.publicKey) });
  const appKey = await generateKeyPair();
  const app = await issueAppCert(proxy.ctx, proxy.registry, await resolveCaller(proxy.ctx, loggedIn.identity), new Date(loggedIn.expires), { app: "azure-cli", azure_identity: READER, public_key_pem: await publicKeyToPem(appKey.publicKey) });
  const ca = await createLocalCa({ now: clock.date(), notAfter: new Date(app.expires) });
  const w: Omit<Workstation, "local" | "token"> = { user, caPem: ca.certPem, loginKeyPem: await privateKeyToPem(loginKey.privateKey), loginCertPem: loggedIn.cert_pem, appKeyPem: await privateKeyToPem(appKey.privateKey), appCertPem: app.cert_pem, reissued: [], trusted: [] };
  const secret = "s".repeat(32);
  const local = await serveLocalProxy({
    creds: { app: "azure-cli", cloud: "Azure", identity: READER, tenant: "00000000-0000-0000-0000-000000000001", key: appKey.privateKey, certPem: app.cert_pem, expires: new Date(app.expires) },
    target: { baseUrl: proxy.url, ca_pem: hostCas[0], host_ca_pems: hostCas.slice(1) },
    ca,
    secret,
    reserved: await reservePort(0, "127.0.0.1"),
    clock,
    rotation: { cluster: "rotation", proxy: proxy.url.replace("https://", ""), onReissued: async (keyPem, certPem) => void w.reissued.push({ keyPem, certPem }), onTrusted: async (pems) => void w.trusted.push(pems) },
  });
  closers.push(() => local.close());
  await local.connected.catch(() => undefined);
  const tokenRes = await rawRequest(local.port, ca.certPem, IDENTITY_HOST, { method: "GET", path: `/msi/token?resource=${encodeURIComponent("https://management.core.windows.net/")}&api-version=2019-08-01`, headers: { host: IDENTITY_HOST, "x-identity-header": secret } });
  expect(tokenRes.status, tokenRes.body).toBe(200);
  return { ...w, local, token: JSON.parse(tokenRes.body).access_token };
}

/** An ARM GET through the workstation's local proxy with its cached placeholder, as az sends it. */
const armGet = (w: Workstation, token = w.token) => rawRequest(w.local.port, w.caPem, "management.azure.com", { method: "GET", path: GROUPS_PATH, headers: { host: "management.azure.com", authorization: `Bearer ${token}` } });

/** Requests on `concurrency` loops until stopped: every answer that is not a 200 is a failure. */
function load(w: Workstation, concurrency = 8) {
  let running = true;
  let ok = 0;
  const failures: string[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      try {
        const res = await armGet(w);
        if (res.status === 200) ok++;
        else failures.push(`HTTP ${res.status}: ${res.body.slice(0, 300)}`);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { ok, failures };
    },
    /** Waits until `n` more requests went through. */
    async more(n = 20) {
      const target = ok + n;
      await expect.poll(() => ok, { timeout: 20_000 }).toBeGreaterThanOrEqual(target);
    },
  };
}

const rotate = (type: "host" | "user", phase: Phase) => rotateAuthority(proxy.ctx, admin, type, { mode: "manual", phase });
const events = async (event: string): Promise<AuditEvent[]> => (await proxy.ctx.audit.search({ event })).filter((e) => e.event === event);
const ping = () => new ApiClient({ baseUrl: proxy.url, insecure: true }).call<PingResponse>("GET", "/v1/ping");
const pinOf = (pem: string) => caPin(new x509.X509Certificate(pem));

/** The TLS handshake with the proxy, trusting exactly `caPem`: ok, or the error. */
function handshake(caPem: string): Promise<string> {
  return new Promise((resolve) => {
    const req = https.get(`${proxy.url}/v1/ping`, { ca: caPem, agent: false }, (res) => (res.resume(), resolve("ok")));
    req.on("error", (e) => resolve(e.message));
  });
}

describe("rotating the host CA", () => {
  it("manual, phase by phase, under load through a running local proxy: zero failed requests; the proxy serves the new CA from update_servers; a second replica on the backend follows each phase", async () => {
    const w = await workstation();
    const oldPem = pemOf(proxy.ctx.cluster.views.host.current.cert);
    // A second replica's view of the same backend (the PostgreSQL one is test/e2e/rotation.test.ts).
    const replica = await initCluster(proxy.ctx.backend, "rotation", clock);
    const follow = followAuthorities(replica, proxy.ctx.backend, clock);
    closers.push(async () => follow.stop());
    const traffic = load(w);
    await traffic.more();

    await rotate("host", "init");
    const newPem = pemOf(proxy.ctx.cluster.views.host.next!.cert);
    // Both pins offered, each vouched for by the other; the running session learnt the new CA through its tunnel.
    const offered = await ping();
    expect(offered.ca_pins).toEqual([await pinOf(oldPem), await pinOf(newPem)]);
    expect(offered.ca_endorsements).toHaveLength(2);
    await expect.poll(() => w.trusted.at(-1)?.length).toBe(2);
    await traffic.more();

    await rotate("host", "update_clients");
    await traffic.more();
    expect(await handshake(oldPem)).toBe("ok");

    await rotate("host", "update_servers");
    // New connections get a certificate from the new CA; the old CA alone no longer verifies it.
    await expect.poll(() => handshake(newPem)).toBe("ok");
    expect(await handshake(oldPem)).toMatch(/certificate/);
    await traffic.more();
    // A workstation that missed init (it trusts the old CA alone) learns the new one from /v1/ping, on the old one's word.
    const late = await workstation([oldPem]);
    expect((await armGet(late)).status).toBe(200);
    expect(late.trusted.at(-1)?.map(String)).toEqual([newPem, oldPem]);
    expect(replica.views.host.rotation.phase).toBe("update_servers");

    await rotate("host", "standby");
    await traffic.more();
    expect((await ping()).ca_pins).toEqual([await pinOf(newPem)]);
    expect((await ping()).ca_endorsements).toBeUndefined();
    expect(replica.views.host.rotation.phase).toBe("standby");
    expect(pemOf(replica.views.host.signing.cert)).toBe(newPem);

    const { ok, failures } = await traffic.stop();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect((await events("ca.rotate")).filter((e) => e.ca_type === "host").map((e) => e.phase)).toEqual(["init", "update_clients", "update_servers", "standby"]);
    expect((await events("ca.rotate")).at(-1)).toMatchObject({ user: "@local-admin", from_phase: "update_servers", mode: "manual", retired_pin: await pinOf(oldPem) });
  });

  it("after standby, a workstation that trusts only the retired CA is refused with the new pin and the command to log in again (ca_retired), not a 502 it would retry", async () => {
    const retired = pemOf(proxy.ctx.cluster.views.host.retired[0].cert);
    const stale = await workstation([retired]).catch((e: Error) => e);
    // The token endpoint answered (it is local); the request is what the proxy refuses.
    expect(stale).not.toBeInstanceOf(Error);
    const res = await armGet(stale as Workstation);
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).error).toMatchObject({ code: "ca_retired", message: expect.stringContaining(`now presents ${proxy.ctx.cluster.views.host.pins[0]}`) });
    expect(JSON.parse(res.body).error.message).toContain(`azgate login --proxy ${proxy.url.replace("https://", "")} --ca-pin ${proxy.ctx.cluster.views.host.pins[0]}`);
  });

  it("after standby, a running session that still trusts the retired CA too (it redialled across the standby) is told at its tunnel's opening, and drops it", async () => {
    const retired = pemOf(proxy.ctx.cluster.views.host.retired[0].cert);
    const current = pemOf(proxy.ctx.cluster.views.host.current.cert);
    const w = await workstation([current, retired]);
    expect((await armGet(w)).status).toBe(200);
    const until = Date.now() + 5_000;
    while (!w.trusted.length && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(w.trusted.at(-1)).toEqual([current]);
  });

  it("a rollback from update_servers returns to the old CA with zero failed requests; the CA it dropped is retired", async () => {
    const w = await workstation();
    const before = pemOf(proxy.ctx.cluster.views.host.current.cert);
    const traffic = load(w);
    for (const phase of ["init", "update_clients", "update_servers"] as const) {
      await rotate("host", phase);
      await traffic.more();
    }
    const dropped = pemOf(proxy.ctx.cluster.views.host.next!.cert);
    await expect.poll(() => handshake(dropped)).toBe("ok");
    await rotate("host", "rollback");
    await expect.poll(() => handshake(before)).toBe("ok");
    await traffic.more();
    await rotate("host", "standby");
    await traffic.more();
    const { failures } = await traffic.stop();
    expect(failures).toEqual([]);
    expect((await ping()).ca_pins).toEqual([await pinOf(before)]);
    expect(proxy.ctx.cluster.views.host.retired[0].pin).toBe(await pinOf(dropped));
    expect((await events("ca.rotate")).filter((e) => e.ca_type === "host").slice(-2).map((e) => [e.from_phase, e.phase])).toEqual([["update_servers", "rollback"], ["rollback", "standby"]]);
  });

  it("an agent adds a CA only on the word of one it trusts, and renews when told its certificate is not from the CA that signs; admin status lists agents that have not moved", async () => {
    const { token } = await addToken(proxy.ctx, admin, "app", "10m");
    const key = await generateKeyPair();
    const joined = await joinAgent(proxy.ctx, { token, type: "app", public_key_pem: await publicKeyToPem(key.publicKey) });
    const dataDir = tempDir("azgate-agent-trust-");
    let state: AgentState = { identity: { cluster_name: "rotation", host_id: joined.host_id, proxy_addr: proxy.url, host_ca_pem: joined.host_ca_pem, joined: clock.date().toISOString() }, keyPem: await privateKeyToPem(key.privateKey), certPem: joined.cert_pem };
    await saveAgentState(dataDir, state);
    let renewals = 0;
    /** While set, a renewal does not end: a trust call that comes meanwhile finds one running. */
    let holdRenewal: Promise<void> | undefined;
    const trust = agentTrust({ dataDir, proxyAddr: proxy.url, state: () => state, setState: (s) => (state = s), renew: async () => void (renewals++, await holdRenewal), log: () => undefined, clock });
    const ask = async (meta: Record<string, unknown>) => {
      const pair = memoryPair({ onStream: (s) => void trust.answer(s) });
      const s = pair.acceptor.open(meta);
      s.end();
      const answer = await s.readMeta();
      pair.dialer.close(0, "done");
      return answer as { ok: boolean; trusted_pins?: string[]; message?: string };
    };
    const issuer = await caPin(proxy.ctx.cluster.views.host.signing.cert);
    await rotate("host", "init");
    // It has not answered a trust call yet: admin status names it.
    expect((await rotationReport(proxy.ctx, admin)).waiting).toEqual([expect.objectContaining({ who: expect.stringContaining(joined.host_id), why: expect.stringContaining("has not confirmed it trusts") })]);
    const init = await ask(await trustMessage(proxy.ctx, "host", issuer));
    expect(init).toMatchObject({ ok: true, trusted_pins: proxy.ctx.cluster.views.host.pins });
    expect(state.identity.host_ca_pems).toHaveLength(2);
    expect(renewals).toBe(0);
    // The attack: a trust call offering a CA nobody it trusts vouches for (a man in the middle with a CA of its own).
    const stranger = await (await import("../src/pki/authority.ts")).createAuthority("host", "rotation", clock.date());
    const forged = await ask({ ...(await trustMessage(proxy.ctx, "host", issuer)), host_ca_pems: [pemOf(stranger.cert)], endorsements: [] });
    expect(forged).toMatchObject({ ok: false, code: "cert_untrusted" });
    expect(state.identity.host_ca_pems).toHaveLength(2);
    await rotate("host", "update_clients");
    expect(await ask(await trustMessage(proxy.ctx, "host", issuer))).toMatchObject({ ok: true });
    await clock.tick(1);
    expect(renewals).toBe(1);
    // A renewal that is still running when the CA changes again (a rollback) may have got its certificate from
    // the CA that no longer signs: the trust call that comes meanwhile is not dropped, it renews after it.
    let release!: () => void;
    holdRenewal = new Promise((r) => (release = r));
    await clock.tick(5_000);
    expect(await ask(await trustMessage(proxy.ctx, "host", issuer))).toMatchObject({ ok: true });
    expect(renewals).toBe(2);
    const rotated = proxy.ctx.cluster.views.host.pins[0];
    await rotate("host", "rollback");
    expect(await ask(await trustMessage(proxy.ctx, "host", rotated))).toMatchObject({ ok: true });
    expect(renewals).toBe(2);
    holdRenewal = undefined;
    release();
    await clock.tick(5_000);
    expect(renewals).toBe(3);
    trust.stop();
    await rotate("host", "standby");
  });

  it("after standby, an agent that missed the rotation is refused with ca_retired, naming the new pin and the command to join again, audited: its open tunnel drains, its certificate is refused at the upgrade; started again, it is told the same; joined again as told, it connects", async () => {
    // An agent joined before the rotation, with a tunnel open, that follows nothing (an old agent, or one stopped soon after).
    const { token } = await addToken(proxy.ctx, admin, "app", "10m");
    const key = await generateKeyPair();
    const joined = await joinAgent(proxy.ctx, { token, type: "app", public_key_pem: await publicKeyToPem(key.publicKey) });
    const dataDir = tempDir("azgate-agent-away-");
    await saveAgentState(dataDir, { identity: { cluster_name: "rotation", host_id: joined.host_id, proxy_addr: proxy.url, host_ca_pem: joined.host_ca_pem, joined: clock.date().toISOString() }, keyPem: await privateKeyToPem(key.privateKey), certPem: joined.cert_pem });
    const oldPin = await pinOf(joined.host_ca_pem);
    const agentTunnel = (certPem: string, caPems: string[], k: CryptoKey) =>
      dialTunnel({ baseUrl: proxy.url, path: "/v1/tunnel/agent", caPems, key: k, certPem, clock, session: { onStream: (s) => respondJsonMeta(s, { ok: false, message: "an agent that does not follow" }) } });
    const open = await agentTunnel(joined.cert_pem, [joined.host_ca_pem], key.privateKey);
    for (const phase of ["init", "update_clients", "update_servers", "standby"] as const) await rotate("host", phase);
    const newPin = proxy.ctx.cluster.views.host.pins[0];
    expect(newPin).not.toBe(oldPin);
    const rejoin = `--token <token> --ca-pin ${newPin}`;

    // The tunnel it had open is drained (no new request goes to it), its end audited with why.
    await expect.poll(async () => (await events("agent.disconnect")).filter((e) => e.host_id === joined.host_id).map((e) => String(e.reason))).toEqual([expect.stringContaining(`host CA ${oldPin}, retired by a rotation`)]);
    // The agent's end hears the close a moment after the proxy audited it (on Deno, later than on Node).
    await expect.poll(() => open.isClosed).toBe(true);

    // Its certificate at a new upgrade (trusting the new CA, as one that read the ping would): ca_retired, the pin and the command, audited.
    const dial = await agentTunnel(joined.cert_pem, proxy.ctx.cluster.views.host.trusted.map(pemOf), key.privateKey).catch((e: AzgateError) => e);
    expect(isAzgateError(dial) && [dial.code, dial.status]).toEqual(["ca_retired", 401]);
    expect((dial as Error).message).toContain(rejoin);
    expect((await events("cert.retired")).filter((e) => e.user === joined.host_id).map((e) => [e.cert_type, e.ca_pin, e.error_code, e.where, e.success])).toEqual([["host", oldPin, "ca_retired", "tunnel agent", false]]);

    // Started again (it trusts the retired CA alone; the proxy now serves the new one): refused before it dials, with the same pin and command.
    const proxyAddr = proxy.url.replace("https://", "");
    const started = await ensureJoined({ dataDir, proxyAddr, clock }).catch((e: AzgateError) => e);
    expect(isAzgateError(started) && started.code).toBe("ca_retired");
    expect((started as Error).message).toContain(`while it was away; the proxy at ${proxyAddr} now presents ${newPin}`);
    expect((started as Error).message).toContain(rejoin);
    // A token without the pin is not enough: nothing it trusts vouches for the new CA.
    const { token: again } = await addToken(proxy.ctx, admin, "app", "10m");
    expect(await ensureJoined({ dataDir, proxyAddr, clock, token: again }).catch((e: AzgateError) => e.code)).toBe("ca_retired");

    // Joined again as told: a certificate from the new CA, and its tunnel opens.
    const state = await ensureJoined({ dataDir, proxyAddr, clock, token: again, caPin: newPin });
    expect(await caPin((await issuerOfPem(state.certPem))!)).toBe(newPin);
    const back = await agentTunnel(state.certPem, [state.identity.host_ca_pem], await (await import("../src/pki/keys.ts")).importPrivateKeyPem(state.keyPem));
    expect(back.isClosed).toBe(false);
    back.close(0, "done");
  });
});

describe("who may rotate", () => {
  it("a user without rotate on cert_authority is refused access_denied, audited, and the phase does not move", async () => {
    const w = await workstation();
    const client = new ApiClient({ baseUrl: proxy.url, ca_pem: pemOf(proxy.ctx.cluster.views.host.tls.cert) }, { keyPem: w.loginKeyPem, certPem: w.loginCertPem }, clock);
    const before = proxy.ctx.cluster.views.host.rotation.phase;
    const refused = await client.call("POST", "/v1/admin/rotation", { type: "host", manual: true, phase: "init" }).catch((e: AzgateError) => e);
    expect(isAzgateError(refused) && [refused.code, refused.status]).toEqual(["access_denied", 403]);
    expect(proxy.ctx.cluster.views.host.rotation.phase).toBe(before);
    expect((await events("api.request.denied")).filter((e) => e.user === w.user).map((e) => [e.method, e.path, e.error_code, e.success])).toEqual([["POST", "/v1/admin/rotation", "access_denied", false]]);
    const read = await client.call("GET", "/v1/admin/rotation").catch((e: AzgateError) => e);
    expect(isAzgateError(read) && read.code).toBe("access_denied");
  });
});

describe("rotating the user CA", () => {
  it("manual, phase by phase, under load: the running session gets a new key certified by the new CA at update_clients (its cached token keeps working), zero failed requests", async () => {
    const w = await workstation();
    const traffic = load(w);
    await traffic.more();
    const oldPin = proxy.ctx.cluster.views.user.pins[0];
    await rotate("user", "init");
    await traffic.more();
    expect(w.reissued).toEqual([]);
    await rotate("user", "update_clients");
    const newPin = proxy.ctx.cluster.views.user.pins[0];
    // The local proxy reissued its certificate (a new key) over its tunnel and stored it; its tunnel is the new CA's.
    await expect.poll(() => w.reissued.length).toBe(1);
    await expect.poll(() => proxy.tunnels.clientIssuers().filter((c) => c.user === w.user).map((c) => c.issuerPin)).toEqual([newPin]);
    expect(w.reissued[0].keyPem).not.toBe(w.appKeyPem);
    expect(identityOf(new x509.X509Certificate(w.reissued[0].certPem)).session_id).toBe(identityOf(new x509.X509Certificate(w.appCertPem)).session_id);
    expect(new x509.X509Certificate(w.reissued[0].certPem).notAfter.getTime()).toBe(new x509.X509Certificate(w.appCertPem).notAfter.getTime());
    expect((await events("cert.create")).filter((e) => e.user === w.user && e.cert_type === "app")).toHaveLength(1);
    await traffic.more();
    await rotate("user", "update_servers");
    await traffic.more();
    await rotate("user", "standby");
    await traffic.more();
    const { ok, failures } = await traffic.stop();
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(100);
    expect(oldPin).not.toBe(newPin);
  });

  it("after standby, each credential of the retired CA is refused with ca_retired, audited: a login certificate at the API, an app certificate at the tunnel, a request on a tunnel it opened before, and the old key's placeholder", async () => {
    // Credentials from before the rotation below, and a tunnel opened with them before its standby (a client that never follows).
    const w = await workstation();
    const old = await tunnelWith(w.appKeyPem, w.appCertPem);
    const oldPin = proxy.ctx.cluster.views.user.pins[0];
    for (const phase of ["init", "update_clients", "update_servers"] as const) await rotate("user", phase);
    // As an operator waits for admin status: the running session has moved (its tunnel from before the
    // reissue is gone), so only the tunnel that never follows is left on the old CA when standby retires it.
    await expect.poll(() => proxy.tunnels.clientIssuers().filter((c) => c.user === w.user && c.issuerPin === oldPin).length).toBe(1);
    await rotate("user", "standby");
    // The open tunnel is drained at once, audited; a request on it is refused.
    await expect.poll(async () => (await events("app.session.closed")).filter((e) => e.user === w.user).map((e) => e.error_code)).toEqual(["ca_retired"]);
    expect(old.isDraining).toBe(true);
    // A request stream that reaches the proxy on such a tunnel (the check every request makes) is refused, audited.
    const stream = memoryPair({}, { onStream: (s) => void handleAppRequest(proxy.ctx, proxy.registry, { identity: identityOf(new x509.X509Certificate(w.appCertPem)), clientKey: {}, issuerPin: oldPin }, s) });
    const refused = await tunnelRequest(stream.dialer, { method: "GET", url: `https://management.azure.com${GROUPS_PATH}`, headers: [] });
    expect(refused.status).toBe(401);
    expect((await events("app.request.denied")).filter((e) => e.user === w.user).map((e) => e.error_code)).toEqual(["ca_retired"]);
    stream.dialer.close(0, "done");
    // A new tunnel with the old app certificate: refused at the upgrade, audited.
    const dial = await tunnelWith(w.appKeyPem, w.appCertPem).catch((e: AzgateError) => e);
    expect(isAzgateError(dial) && [dial.code, dial.message]).toEqual(["ca_retired", expect.stringContaining(`retired by a rotation at`)]);
    // The login certificate at the API: refused, saying to log in again, audited.
    const api = await new ApiClient({ baseUrl: proxy.url, ca_pem: pemOf(proxy.ctx.cluster.views.host.tls.cert) }, { keyPem: w.loginKeyPem, certPem: w.loginCertPem }, clock).call("GET", "/v1/whoami").catch((e: AzgateError) => e);
    expect(isAzgateError(api) && [api.code, api.message]).toEqual(["ca_retired", expect.stringContaining("run azgate login again")]);
    expect((await events("cert.retired")).filter((e) => e.user === w.user).map((e) => [e.cert_type, e.ca_pin, e.success])).toEqual([["app", oldPin, false], ["user", oldPin, false]]);
    // The running session followed (a new key); the placeholder of its old key, sent as it is by anyone but its own local proxy, fails the agent's check.
    expect((await armGet(w)).status).toBe(200);
    const oldKey = await (await import("../src/pki/keys.ts")).importPrivateKeyPem(w.appKeyPem);
    const oldToken = await signPlaceholder(oldKey, { tid: "t", resource: "https://management.core.windows.net/", identity: READER, now: clock.date(), expires: new Date(clock.now() + 3_600_000) });
    const newSession = await tunnelWith(w.reissued[0].keyPem, w.reissued[0].certPem);
    const res = await tunnelRequest(newSession, { method: "GET", url: `https://management.azure.com${GROUPS_PATH}`, headers: [["authorization", `Bearer ${oldToken}`]] });
    expect(res.status).toBe(401);
    expect(JSON.parse(await new Response(res.body).text()).error).toMatchObject({ code: "token_invalid", message: expect.stringContaining("not signed by this session's key") });
    // Audited at the proxy as that request's end: the agent's refusal, not a success.
    await expect.poll(async () => (await proxy.ctx.audit.search({ event: "app.request", user: w.user, status: "401" })).filter((e) => e.event === "app.request").map((e) => [e.status, e.success])).toEqual([[401, false]]);
    newSession.close(0, "done");
    old.close(0, "done");
  });

  it("semi-automatic over a grace period on the proxy's clock: each phase follows at its third, audited as scheduled, under load with zero failed requests", async () => {
    const w = await workstation();
    const traffic = load(w);
    await traffic.more();
    const status = await rotateAuthority(proxy.ctx, admin, "user", { mode: "auto", gracePeriodMs: 30 * 60_000 });
    expect(status).toMatchObject({ phase: "init", mode: "auto" });
    const seen: string[] = [];
    for (const phase of ["update_clients", "update_servers", "standby"]) {
      await clock.tick(10 * 60_000);
      heartbeat(); // the stand-in agent's registry entry lives 45 s by the same clock
      await expect.poll(() => proxy.ctx.cluster.views.user.rotation.phase).toBe(phase);
      seen.push(phase);
      await traffic.more();
    }
    expect(seen).toEqual(["update_clients", "update_servers", "standby"]);
    expect(w.reissued).toHaveLength(1);
    const { failures } = await traffic.stop();
    expect(failures).toEqual([]);
    expect((await events("ca.rotate")).slice(-3).map((e) => [e.user, e.phase, e.mode])).toEqual([
      ["azgate (scheduled)", "update_clients", "auto"],
      ["azgate (scheduled)", "update_servers", "auto"],
      ["azgate (scheduled)", "standby", "manual"],
    ]);
    await settle();
  });
});

/** The CA among the cluster's host CAs, current and retired, that signed a certificate. */
async function issuerOfPem(certPem: string): Promise<x509.X509Certificate | null> {
  const { issuerOf } = await import("../src/pki/certificate.ts");
  const host = proxy.ctx.cluster.views.host;
  return issuerOf(new x509.X509Certificate(certPem), [...host.trusted, ...host.retired.map((r) => r.cert)]);
}

/** A raw client tunnel opened with an app key and certificate, as an older local proxy that does not follow rotations. */
async function tunnelWith(keyPem: string, certPem: string): Promise<TunnelSession> {
  const { importPrivateKeyPem } = await import("../src/pki/keys.ts");
  return dialTunnel({ baseUrl: proxy.url, path: "/v1/tunnel/client", caPems: proxy.ctx.cluster.views.host.trusted.map(pemOf), key: await importPrivateKeyPem(keyPem), certPem, session: {}, clock });
}
