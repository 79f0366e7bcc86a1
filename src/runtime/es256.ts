/**
 * ES256 signature check of a compact JWS with node:crypto (OpenSSL on Node,
 * Rust on Deno), synchronously. The agent checks one placeholder per Azure
 * request: WebCrypto's verify queues on Node's four-thread pool and on Deno
 * stalled whole batches of requests for seconds under load (measured: 85
 * req/s and a 5 s p99 at 50 concurrent requests on Deno, ~1,000 req/s with
 * this). Signing stays with jose (WebCrypto): it is not on the hot path.
 */
import { createHash, createPublicKey, verify, type KeyObject } from "node:crypto";

const keys = new Map<string, KeyObject>();
const MAX_CACHED_KEYS = 1000;
/**
 * Digests of (key, JWS) pairs that verified. A client reuses a placeholder
 * for every request until it expires (az, the SDKs), so the agent would check
 * the same signature again and again: a SHA-256 here costs a small fraction of
 * an ECDSA verify. Only the exact bytes, under the exact key, hit; failures
 * are never kept; claims (expiry, identity) are the caller's to check each time.
 */
const verified = new Set<string>();
const MAX_VERIFIED = 10_000;

/** A public key from its JWK; the agent sees the same session keys again and again. */
function publicKey(jwk: JsonWebKey): KeyObject {
  const id = `${jwk.crv}:${jwk.x}:${jwk.y}`;
  let key = keys.get(id);
  if (!key) {
    if (jwk.kty !== "EC" || jwk.crv !== "P-256" || !jwk.x || !jwk.y) throw new Error("the key is not an EC P-256 public key");
    key = createPublicKey({ key: { kty: "EC", crv: "P-256", x: jwk.x, y: jwk.y }, format: "jwk" });
    if (keys.size >= MAX_CACHED_KEYS) keys.delete(keys.keys().next().value!);
    keys.set(id, key);
  }
  return key;
}

/**
 * True when `jws` (header.payload.signature) carries a valid ES256 signature
 * by `jwk`; false when the signature does not verify. Throws when `jws` is not
 * a compact JWS with alg ES256 at all.
 */
export function verifyEs256(jws: string, jwk: JsonWebKey): boolean {
  const parts = jws.split(".");
  if (parts.length !== 3) throw new Error("not a compact JWS");
  let header: { alg?: unknown };
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
  } catch {
    throw new Error("the JWS header is not JSON");
  }
  if (header.alg !== "ES256") throw new Error(`alg must be ES256, not ${String(header.alg)}`);
  const signature = Buffer.from(parts[2], "base64url");
  if (signature.length !== 64) return false;
  const digest = createHash("sha256").update(`${jwk.crv}:${jwk.x}:${jwk.y}\n${jws}`).digest("base64");
  if (verified.has(digest)) return true;
  const ok = verify("sha256", Buffer.from(`${parts[0]}.${parts[1]}`), { key: publicKey(jwk), dsaEncoding: "ieee-p1363" }, signature);
  if (ok) {
    if (verified.size >= MAX_VERIFIED) verified.delete(verified.values().next().value!);
    verified.add(digest);
  }
  return ok;
}
