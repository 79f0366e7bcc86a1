/**
 * A CA's word for another CA of the same cluster, while the host CA rotates:
 * a compact JWS signed by one CA's key over the other's pin. An agent or a
 * workstation that trusts one CA of the pair takes the other on its word
 * (pushed through its tunnel, or read from /v1/ping when the TLS handshake
 * already fails): "signed under the trust they already have". Nothing else
 * adds a CA to what a peer trusts, and the final standby ends the pair, so a
 * retired (perhaps stolen) key vouches for nothing after it. Each word is
 * good for ENDORSEMENT_TTL_S only, and the proxy signs it again while the
 * rotation runs: one recorded during a rotation (the new CA's word for the
 * old one, from an unauthenticated /v1/ping) cannot be played back later to
 * bring the retired CA back into a peer's trust.
 */
import { CompactSign, compactVerify } from "jose";
import { x509 } from "./x509.ts";
import { caPin } from "./pin.ts";
import type { CaKey } from "./authority.ts";

export const ENDORSEMENT_TYP = "azgate-ca-endorsement";
/** How long an endorsement is good for; the proxy signs a new one when half of it is gone. */
export const ENDORSEMENT_TTL_S = 600;
/** Clock skew forgiven either way between the proxy that signed and the peer that reads (peers keep time by NTP). */
export const SKEW_S = 300;

export interface CaEndorsement {
  /** The endorsed CA, PEM. */
  pem: string;
  /** ES256 compact JWS by another CA of the cluster over { typ, cluster, pin, by, iat, exp }. */
  jws: string;
}

interface EndorsementClaims {
  typ: string;
  cluster: string;
  pin: string;
  by: string;
  iat: number;
  exp: number;
}

/** `signer` vouches for `endorsed` in cluster `cluster`. */
export async function endorse(signer: CaKey, endorsed: x509.X509Certificate, cluster: string, now: Date): Promise<CaEndorsement> {
  const iat = Math.floor(now.getTime() / 1000);
  const claims: EndorsementClaims = { typ: ENDORSEMENT_TYP, cluster, pin: await caPin(endorsed), by: await caPin(signer.cert), iat, exp: iat + ENDORSEMENT_TTL_S };
  const jws = await new CompactSign(new TextEncoder().encode(JSON.stringify(claims))).setProtectedHeader({ alg: "ES256", typ: ENDORSEMENT_TYP }).sign(signer.key);
  return { pem: endorsed.toString("pem") + "\n", jws };
}

/**
 * The CA an endorsement vouches for, when one of `trusted` signed it for this
 * cluster, the certificate it carries is the one it names, and it is good at
 * `now` (signed no longer than ENDORSEMENT_TTL_S before its end); else null.
 */
export async function endorsedCa(e: CaEndorsement, trusted: readonly x509.X509Certificate[], cluster: string, now: Date): Promise<x509.X509Certificate | null> {
  let cert: x509.X509Certificate;
  try {
    cert = new x509.X509Certificate(e.pem);
  } catch {
    return null;
  }
  const pin = await caPin(cert);
  for (const ca of trusted) {
    try {
      const key = await ca.publicKey.export({ name: "ECDSA", namedCurve: "P-256" }, ["verify"]);
      const { payload, protectedHeader } = await compactVerify(e.jws, key, { algorithms: ["ES256"] });
      const claims = JSON.parse(new TextDecoder().decode(payload)) as EndorsementClaims;
      if (protectedHeader.typ === ENDORSEMENT_TYP && claims.typ === ENDORSEMENT_TYP && claims.cluster === cluster && claims.pin === pin && claims.by === (await caPin(ca)) && isCurrent(claims, now)) return cert;
    } catch {
      // Not this CA's signature: try the next.
    }
  }
  return null;
}

/** Good now: within its window (with SKEW_S either side), and a window no longer than the proxy gives. */
function isCurrent(c: EndorsementClaims, now: Date): boolean {
  const t = now.getTime() / 1000;
  return Number.isFinite(c.iat) && Number.isFinite(c.exp) && c.exp - c.iat <= ENDORSEMENT_TTL_S && c.iat - SKEW_S <= t && t < c.exp + SKEW_S;
}
