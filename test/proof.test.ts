import { describe, expect, it, beforeAll } from "vitest";
import { createAuthority, type Authority } from "../src/pki/authority.ts";
import { generateKeyPair } from "../src/pki/keys.ts";
import { issueIdentityCert } from "../src/pki/certificate.ts";
import { createProof, PROOF_SCHEME, PROOF_WINDOW_MS } from "../src/auth/proof.ts";
import { verifyProof } from "../src/auth/proof-verify.ts";
import { MemoryReplayCache } from "../src/auth/replay-cache.ts";
import type { Identity } from "../src/pki/identity.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

/** Signer and verifier share this clock; tests move it (never wait). */
const clock = new FakeClock();

const identity: Identity = { kind: "user", name: "alice", roles: ["access"], traits: {}, azure_identities: [], login_method: "password", session_id: "s1" };

let ca: Authority;
let foreign: Authority;
let keys: CryptoKeyPair;
let certPem: string;

beforeAll(async () => {
  ca = await createAuthority("user", "test", clock.date());
  foreign = await createAuthority("user", "test", clock.date()); // same name, other key: must not pass
  keys = await generateKeyPair();
  certPem = (await issueIdentityCert({ ca, publicKey: keys.publicKey, identity, now: clock.date(), notAfter: new Date(clock.now() + 3600_000) })).toString("pem");
});

async function verify(proof: string, over: Partial<Parameters<typeof verifyProof>[0]> = {}) {
  return verifyProof({ authorization: `${PROOF_SCHEME} ${proof}`, method: "POST", pathAndQuery: "/v1/x?y=1", body: "{}", cas: [ca.cert], replay: new MemoryReplayCache(clock), now: clock.now(), ...over });
}
async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    return (e as { code: string }).code;
  }
  return "accepted";
}
const make = (over: Partial<Parameters<typeof createProof>[0]> = {}) =>
  createProof({ key: keys.privateKey, certPem, method: "POST", pathAndQuery: "/v1/x?y=1", body: "{}", now: clock.now(), ...over });

describe("proof of possession", () => {
  it("accepts a fresh proof and returns the identity", async () => {
    const { identity: id } = await verify(await make());
    expect(id.name).toBe("alice");
  });

  it("refuses a replayed proof", async () => {
    const replay = new MemoryReplayCache(clock);
    const proof = await make();
    expect(await code(verify(proof, { replay }))).toBe("accepted");
    expect(await code(verify(proof, { replay }))).toBe("proof_replayed");
  });

  it("a proof replayed after its window is refused by the window, by the same clock the cache forgets it by", async () => {
    const replay = new MemoryReplayCache(clock);
    const proof = await make();
    expect(await code(verify(proof, { replay }))).toBe("accepted");
    // (A proof's time is in whole seconds: a second short of the window is still inside it.)
    clock.advance(PROOF_WINDOW_MS - 1_000);
    expect(await code(verify(proof, { replay, now: clock.now() }))).toBe("proof_replayed");
    clock.advance(2_000);
    expect(await code(verify(proof, { replay, now: clock.now() }))).toBe("proof_clock_skew");
  });

  it("refuses a certificate from another CA", async () => {
    const otherCert = (await issueIdentityCert({ ca: foreign, publicKey: keys.publicKey, identity, now: clock.date(), notAfter: new Date(clock.now() + 3600_000) })).toString("pem");
    expect(await code(verify(await make({ certPem: otherCert })))).toBe("cert_untrusted");
  });

  it("refuses an expired certificate, and one not valid yet, by the verifier's clock", async () => {
    const old = (await issueIdentityCert({ ca, publicKey: keys.publicKey, identity, now: clock.date(), notAfter: new Date(clock.now() - 1000) })).toString("pem");
    expect(await code(verify(await make({ certPem: old })))).toBe("cert_expired");
    const soon = (await issueIdentityCert({ ca, publicKey: keys.publicKey, identity, now: new Date(clock.now() + 10 * 60_000), notAfter: new Date(clock.now() + 3_600_000) })).toString("pem");
    expect(await code(verify(await make({ certPem: soon })))).toBe("cert_untrusted");
  });

  it("refuses a tampered proof and one signed by another key", async () => {
    const [h, p, s] = (await make()).split(".");
    const payload = JSON.parse(Buffer.from(p, "base64url").toString());
    payload.htu = "/v1/admin/resources";
    const tampered = [h, Buffer.from(JSON.stringify(payload)).toString("base64url"), s].join(".");
    expect(await code(verify(tampered, { pathAndQuery: "/v1/admin/resources" }))).toBe("proof_invalid");
    const stranger = await generateKeyPair();
    expect(await code(verify(await make({ key: stranger.privateKey })))).toBe("proof_invalid");
  });

  it("refuses a proof outside the clock window", async () => {
    expect(await code(verify(await make({ now: clock.now() - 5 * 60_000 })))).toBe("proof_clock_skew");
    expect(await code(verify(await make({ now: clock.now() + 5 * 60_000 })))).toBe("proof_clock_skew");
  });

  it("binds method, path, query and body", async () => {
    expect(await code(verify(await make(), { method: "DELETE" }))).toBe("proof_mismatch");
    expect(await code(verify(await make(), { pathAndQuery: "/v1/x?y=2" }))).toBe("proof_mismatch");
    expect(await code(verify(await make(), { body: '{"roles":["editor"]}' }))).toBe("proof_mismatch");
  });

  it("refuses a missing or malformed authorization", async () => {
    expect(await code(verifyProof({ authorization: undefined, method: "GET", pathAndQuery: "/", cas: [ca.cert], replay: new MemoryReplayCache(clock), now: clock.now() }))).toBe("proof_missing");
    expect(await code(verifyProof({ authorization: "Bearer abc", method: "GET", pathAndQuery: "/", cas: [ca.cert], replay: new MemoryReplayCache(clock), now: clock.now() }))).toBe("proof_missing");
    expect(await code(verify("not.a.jws"))).toBe("proof_invalid");
  });
});
