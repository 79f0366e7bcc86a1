import { CompactSign } from "jose";
import { pemDecodeFirst } from "../pki/pem.ts";

/**
 * Proof of possession on every call, after RFC 9449 (DPoP): a compact JWS
 * signed by the caller's private key, carrying its certificate in `x5c` and
 * binding method, path and query, body digest, time and a nonce. The host of
 * the URL is not bound because an L7 ingress may rewrite it; the certificate
 * already binds the proof to this cluster.
 *
 * This module signs (every client); proof-verify.ts checks (the proxy), so
 * a client does not load the certificate parser to make a call.
 */
export const PROOF_SCHEME = "Azgate-PoP";
export const PROOF_TYP = "azgate-pop+jws";
export const PROOF_WINDOW_MS = 60_000;

export interface ProofClaims {
  htm: string;
  htu: string;
  iat: number;
  jti: string;
  /** base64url SHA-256 of the body, when there is one. */
  bh?: string;
}

export async function createProof(opts: {
  key: CryptoKey;
  certPem: string;
  method: string;
  pathAndQuery: string;
  body?: string | Uint8Array;
  /** The signer's clock (ms): the proof is good within PROOF_WINDOW_MS of it. */
  now: number;
}): Promise<string> {
  const claims: ProofClaims = {
    htm: opts.method.toUpperCase(),
    htu: opts.pathAndQuery,
    iat: Math.floor(opts.now / 1000),
    jti: crypto.randomUUID(),
    ...(opts.body !== undefined && opts.body.length > 0 ? { bh: await bodyHash(opts.body) } : {}),
  };
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg: "ES256", typ: PROOF_TYP, x5c: [Buffer.from(pemDecodeFirst(opts.certPem)).toString("base64")] })
    .sign(opts.key);
}

export async function bodyHash(body: string | Uint8Array): Promise<string> {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : new Uint8Array(body);
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Buffer.from(digest).toString("base64url");
}

