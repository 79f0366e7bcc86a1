import { describe, expect, it, beforeAll } from "vitest";
import { createAuthority, type Authority } from "../src/pki/authority.ts";
import { generateKeyPair } from "../src/pki/keys.ts";
import { issueIdentityCert } from "../src/pki/certificate.ts";
import { createProof, verifyProof, PROOF_SCHEME } from "../src/auth/proof.ts";
import { MemoryReplayCache } from "../src/auth/replay-cache.ts";
import type { Identity } from "../src/pki/identity.ts";

const identity: Identity = { kind: "user", name: "alice", roles: ["access"], traits: {}, azure_identities: [], login_method: "password", session_id: "s1" };

let ca: Authority;
let foreign: Authority;
let keys: CryptoKeyPair;
let certPem: string;

beforeAll(async () => {
  ca = await createAuthority("user", "test");
  foreign = await createAuthority("user", "test"); // same name, other key: must not pass
  keys = await generateKeyPair();
  certPem = (await issueIdentityCert({ ca, publicKey: keys.publicKey, identity, notAfter: new Date(Date.now() + 3600_000) })).toString("pem");
});

async function verify(proof: string, over: Partial<Parameters<typeof verifyProof>[0]> = {}) {
  return verifyProof({ authorization: `${PROOF_SCHEME} ${proof}`, method: "POST", pathAndQuery: "/v1/x?y=1", body: "{}", cas: [ca.cert], replay: new MemoryReplayCache(), ...over });
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
  createProof({ key: keys.privateKey, certPem, method: "POST", pathAndQuery: "/v1/x?y=1", body: "{}", ...over });

describe("proof of possession", () => {
  it("accepts a fresh proof and returns the identity", async () => {
    const { identity: id } = await verify(await make());
    expect(id.name).toBe("alice");
  });

  it("refuses a replayed proof", async () => {
    const replay = new MemoryReplayCache();
    const proof = await make();
    expect(await code(verify(proof, { replay }))).toBe("accepted");
    expect(await code(verify(proof, { replay }))).toBe("proof_replayed");
  });

  it("refuses a certificate from another CA", async () => {
    const otherCert = (await issueIdentityCert({ ca: foreign, publicKey: keys.publicKey, identity, notAfter: new Date(Date.now() + 3600_000) })).toString("pem");
    expect(await code(verify(await make({ certPem: otherCert })))).toBe("cert_untrusted");
  });

  it("refuses an expired certificate", async () => {
    const old = (await issueIdentityCert({ ca, publicKey: keys.publicKey, identity, notAfter: new Date(Date.now() - 1000) })).toString("pem");
    expect(await code(verify(await make({ certPem: old })))).toBe("cert_expired");
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
    expect(await code(verify(await make({ now: Date.now() - 5 * 60_000 })))).toBe("proof_clock_skew");
    expect(await code(verify(await make({ now: Date.now() + 5 * 60_000 })))).toBe("proof_clock_skew");
  });

  it("binds method, path, query and body", async () => {
    expect(await code(verify(await make(), { method: "DELETE" }))).toBe("proof_mismatch");
    expect(await code(verify(await make(), { pathAndQuery: "/v1/x?y=2" }))).toBe("proof_mismatch");
    expect(await code(verify(await make(), { body: '{"roles":["editor"]}' }))).toBe("proof_mismatch");
  });

  it("refuses a missing or malformed authorization", async () => {
    expect(await code(verifyProof({ authorization: undefined, method: "GET", pathAndQuery: "/", cas: [ca.cert], replay: new MemoryReplayCache() }))).toBe("proof_missing");
    expect(await code(verifyProof({ authorization: "Bearer abc", method: "GET", pathAndQuery: "/", cas: [ca.cert], replay: new MemoryReplayCache() }))).toBe("proof_missing");
    expect(await code(verify("not.a.jws"))).toBe("proof_invalid");
  });
});
