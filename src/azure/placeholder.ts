/**
 * The placeholder token the workstation hands to az and SDKs in place of a
 * real Entra token. It is a JWT signed with the client's app key, so only the
 * agent that receives the key from the proxy can verify it, and it is useless
 * outside azgate. Unlike Teleport's (tid and resource only), it expires with
 * the app certificate and names the Azure identity it was minted for.
 */
import { PlaceholderInvalid } from "../errors/index.ts";
import { SignJWT, decodeJwt, decodeProtectedHeader } from "jose";
import { verifyEs256 } from "../runtime/es256.ts";
import { sameIdentity } from "./resource-id.ts";

export interface PlaceholderClaims {
  /** Tenant id (az reads it at `az login`). */
  tid: string;
  /** The v1 resource the token is for; the agent asks Entra for `<resource>/.default`. */
  resource: string;
  /** The Azure identity (resource ID) of the app session. */
  xms_mirid: string;
  iat: number;
  exp: number;
  jti: string;
}

export const PLACEHOLDER_ISSUER = "azgate-client";

/**
 * Signs a placeholder. With the identity's client and principal IDs (learnt
 * at apps login) it carries the claims tools read from a managed identity's
 * token: Terraform and Pulumi take `appid`, `oid` and `tid` from it, az `tid`.
 */
export async function signPlaceholder(key: CryptoKey, claims: { tid: string; resource: string; identity: string; now: Date; expires: Date; clientId?: string; principalId?: string }, kid?: string): Promise<string> {
  const facts = {
    aud: claims.resource,
    idtyp: "app",
    ver: "1.0",
    ...(claims.clientId ? { appid: claims.clientId, azp: claims.clientId } : {}),
    ...(claims.principalId ? { oid: claims.principalId, sub: claims.principalId } : {}),
  };
  return new SignJWT({ tid: claims.tid, resource: claims.resource, xms_mirid: claims.identity, ...facts })
    .setProtectedHeader({ alg: "ES256", typ: "JWT", ...(kid ? { kid } : {}) })
    .setIssuer(PLACEHOLDER_ISSUER)
    .setIssuedAt(Math.floor(claims.now.getTime() / 1000))
    .setExpirationTime(Math.floor(claims.expires.getTime() / 1000))
    .setJti(crypto.randomUUID())
    .sign(key);
}

/** The `kid` a placeholder names (the signing key's thumbprint, when its local proxy set one), or null. */
export function placeholderKid(token: string): string | null {
  try {
    const kid = (decodeProtectedHeader(token) as { kid?: unknown }).kid;
    return typeof kid === "string" ? kid : null;
  } catch {
    return null;
  }
}

/**
 * The same placeholder signed again by `key` (named `kid`), when `signer`, the
 * key it names, did sign it; else null. The workstation's local proxy does
 * this for the tokens it handed out before its key was rotated (a user CA
 * rotation gives an app session a new key): clients keep their cached token,
 * and the agent sees only tokens of the key of the tunnel they come on.
 */
export async function resignPlaceholder(token: string, signer: JsonWebKey, key: CryptoKey, kid: string): Promise<string | null> {
  try {
    if (!verifyEs256(token, signer)) return null;
  } catch {
    return null;
  }
  const claims = decodeJwt(token);
  return new SignJWT({ ...claims, jti: crypto.randomUUID() }).setProtectedHeader({ alg: "ES256", typ: "JWT", kid }).sign(key);
}

export type PlaceholderProblem = PlaceholderInvalid["problem"];

/**
 * Verifies a placeholder against the client's public key (JWK) and the
 * session's identity (in canonical form, as RBAC compares identities).
 * The signature is checked with node:crypto (see runtime/es256.ts for why), the
 * claims here: issuer, expiry with 30 s of clock tolerance, jti.
 */
export function verifyPlaceholder(token: string, clientKey: JsonWebKey, identity: string, now: Date): PlaceholderClaims {
  let payload: Partial<PlaceholderClaims> & { iss?: unknown };
  try {
    if (!verifyEs256(token, clientKey)) throw new PlaceholderInvalid("signature", "the token was not signed by this session's key");
    payload = decodeJwt(token) as typeof payload;
  } catch (e) {
    if (e instanceof PlaceholderInvalid) throw e;
    throw new PlaceholderInvalid("malformed", `the token is not an azgate token (${(e as Error).message})`);
  }
  if (payload.iss !== PLACEHOLDER_ISSUER || typeof payload.jti !== "string" || typeof payload.exp !== "number") {
    throw new PlaceholderInvalid("malformed", "the token is not an azgate token (issuer, jti or exp missing)");
  }
  if (payload.exp * 1000 + CLOCK_TOLERANCE_MS <= now.getTime()) throw new PlaceholderInvalid("expired", "the token has expired; run azgate apps login again");
  if (typeof payload.xms_mirid !== "string" || !sameIdentity(payload.xms_mirid, identity)) {
    throw new PlaceholderInvalid("identity", `the token is for identity "${payload.xms_mirid ?? "(none)"}", not this session's "${identity}"`);
  }
  if (typeof payload.resource !== "string" || !/^\S{1,512}$/.test(payload.resource)) {
    throw new PlaceholderInvalid("resource", "the token names no resource");
  }
  return payload as PlaceholderClaims;
}

const CLOCK_TOLERANCE_MS = 30_000;
