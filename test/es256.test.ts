/** The node:crypto ES256 check agrees with jose (WebCrypto) on what is signed, and refuses the rest. */
import { describe, expect, it } from "vitest";
import { CompactSign, SignJWT } from "jose";
import { verifyEs256 } from "../src/runtime/index.ts";
import { generateKeyPair } from "../src/pki/keys.ts";
import { signPlaceholder, verifyPlaceholder } from "../src/azure/placeholder.ts";

const ID = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";

describe("ES256 verification with node:crypto", () => {
  it("accepts what jose signed, and nothing changed or signed by another key", async () => {
    const keys = await generateKeyPair();
    const other = await generateKeyPair();
    const jwk = await crypto.subtle.exportKey("jwk", keys.publicKey);
    const token = await new SignJWT({ a: 1 }).setProtectedHeader({ alg: "ES256" }).sign(keys.privateKey);
    expect(verifyEs256(token, jwk)).toBe(true);
    const [h, , s] = token.split(".");
    const changed = `${h}.${Buffer.from(JSON.stringify({ a: 2 })).toString("base64url")}.${s}`;
    expect(verifyEs256(changed, jwk)).toBe(false);
    expect(verifyEs256(token, await crypto.subtle.exportKey("jwk", other.publicKey))).toBe(false);
    expect(verifyEs256(`${h}.${token.split(".")[1]}.AAAA`, jwk)).toBe(false);
  });

  it("remembers a signature it verified, for that key and those bytes only; a placeholder's claims are still checked every time", async () => {
    const keys = await generateKeyPair();
    const jwk = await crypto.subtle.exportKey("jwk", keys.publicKey);
    const otherJwk = await crypto.subtle.exportKey("jwk", (await generateKeyPair()).publicKey);
    const now = new Date();
    const expires = new Date(now.getTime() + 60_000);
    const token = await signPlaceholder(keys.privateKey, { tid: "t", resource: "https://management.azure.com", identity: ID, now, expires });
    for (let i = 0; i < 3; i++) expect(verifyPlaceholder(token, jwk, ID, now).resource).toBe("https://management.azure.com");
    // Remembered bytes under another key, another identity, or after the expiry: refused as the first time.
    expect(verifyEs256(token, otherJwk)).toBe(false);
    expect(() => verifyPlaceholder(token, jwk, ID.replace("/reader", "/other"), now)).toThrow(/not this session's/);
    expect(() => verifyPlaceholder(token, jwk, ID, new Date(expires.getTime() + 31_000))).toThrow(/expired/);
    const [h, p, sig] = token.split(".");
    const flipped = `${h}.${p}.${sig.slice(0, 10)}${sig[10] === "A" ? "B" : "A"}${sig.slice(11)}`;
    expect(verifyEs256(flipped, jwk)).toBe(false);
  });

  it("refuses another algorithm and what is not a compact JWS, saying which", async () => {
    const keys = await generateKeyPair();
    const jwk = await crypto.subtle.exportKey("jwk", keys.publicKey);
    const unsigned = `${Buffer.from('{"alg":"none"}').toString("base64url")}.${Buffer.from("{}").toString("base64url")}.`;
    expect(() => verifyEs256(unsigned, jwk)).toThrow(/alg must be ES256, not none/);
    const hs = await new CompactSign(new TextEncoder().encode("x")).setProtectedHeader({ alg: "HS256" }).sign(new Uint8Array(32));
    expect(() => verifyEs256(hs, jwk)).toThrow(/alg must be ES256/);
    expect(() => verifyEs256("not-a-jwt", jwk)).toThrow(/not a compact JWS/);
    expect(() => verifyEs256("e30.e30.AAAA", { kty: "RSA", n: "x", e: "AQAB" })).toThrow();
  });
});
