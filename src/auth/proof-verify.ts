import { x509 } from "../pki/x509.ts";
import { compactVerify, decodeProtectedHeader } from "jose";
import { AzgateError } from "../errors/index.ts";
import { verifyIdentityCertIssuer, type RetiredCas } from "../pki/certificate.ts";
import type { Identity } from "../pki/identity.ts";
import type { ReplayCache } from "./replay-cache.ts";
import { bodyHash, PROOF_SCHEME, PROOF_TYP, PROOF_WINDOW_MS, type ProofClaims } from "./proof.ts";

// The proxy's half of proof.ts: checks a caller's proof of possession.

/**
 * Verifies everything but the body unless `body` is given. With
 * `bodyFollows`, the body is left to checkProofBody, so a server can refuse
 * a call without a valid proof before it reads a byte of the body.
 */
export async function verifyProof(opts: {
  authorization: string | undefined;
  method: string;
  pathAndQuery: string;
  body?: string | Uint8Array;
  bodyFollows?: boolean;
  cas: readonly x509.X509Certificate[];
  /** CAs a rotation retired: their certificates are refused as ca_retired, saying what to do. */
  retired?: RetiredCas;
  replay: ReplayCache;
  /** The verifier's clock (ms): judges the certificate and the proof's window, the replay cache forgets by the same clock. */
  now: number;
}): Promise<{ identity: Identity; cert: x509.X509Certificate; claims: ProofClaims; issuer: x509.X509Certificate }> {
  const now = opts.now;
  const jws = parseAuthorization(opts.authorization);
  let cert: x509.X509Certificate;
  try {
    const header = decodeProtectedHeader(jws);
    if (header.typ !== PROOF_TYP || header.alg !== "ES256" || !Array.isArray(header.x5c) || header.x5c.length !== 1) throw new Error("header");
    cert = new x509.X509Certificate(Buffer.from(header.x5c[0], "base64"));
  } catch {
    throw new AzgateError("proof_invalid", "request proof is malformed");
  }
  const { identity, issuer } = await verifyIdentityCertIssuer(cert, opts.cas, new Date(now), opts.retired);

  let claims: ProofClaims;
  try {
    const key = await cert.publicKey.export({ name: "ECDSA", namedCurve: "P-256" }, ["verify"]);
    const { payload } = await compactVerify(jws, key, { algorithms: ["ES256"] });
    claims = JSON.parse(new TextDecoder().decode(payload)) as ProofClaims;
  } catch {
    throw new AzgateError("proof_invalid", "request proof signature does not verify against its certificate");
  }
  if (claims.htm !== opts.method.toUpperCase() || claims.htu !== opts.pathAndQuery) {
    throw new AzgateError("proof_mismatch", "request proof was made for another request");
  }
  if (!opts.bodyFollows) await checkProofBody(claims, opts.body);
  if (typeof claims.iat !== "number" || Math.abs(now - claims.iat * 1000) > PROOF_WINDOW_MS) {
    throw new AzgateError("proof_clock_skew", "request proof is outside the allowed clock window (60s); check this machine's clock");
  }
  if (typeof claims.jti !== "string" || claims.jti.length < 16) throw new AzgateError("proof_invalid", "request proof has no nonce");
  const fresh = await opts.replay.remember(`${identity.session_id}:${claims.jti}`, claims.iat * 1000 + PROOF_WINDOW_MS);
  if (!fresh) throw new AzgateError("proof_replayed", "request proof was already used");
  return { identity, cert, claims, issuer };
}

/** The body against the digest its proof signed (none when the body is empty). */
export async function checkProofBody(claims: ProofClaims, body: string | Uint8Array | undefined): Promise<void> {
  const expectedBh = body !== undefined && body.length > 0 ? await bodyHash(body) : undefined;
  if (claims.bh !== expectedBh) throw new AzgateError("proof_mismatch", "request body does not match its proof");
}

function parseAuthorization(header: string | undefined): string {
  if (!header) throw new AzgateError("proof_missing", "this call needs a signed request; run azgate login");
  const [scheme, value, extra] = header.trim().split(/\s+/);
  if (scheme !== PROOF_SCHEME || !value || extra !== undefined) {
    throw new AzgateError("proof_missing", `authorization must use the ${PROOF_SCHEME} scheme; run azgate login`);
  }
  return value;
}

