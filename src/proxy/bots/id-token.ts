/**
 * A CI's OIDC token, checked by jose against its issuer's published keys
 * (issuer-keys.ts): the signature (by a key the issuer publishes, with an
 * asymmetric algorithm), the issuer, the audience, and its times by the
 * proxy's clock: not expired, not before its nbf, not issued in the future,
 * not older than the method allows, and not made to live more than a day.
 * Each failure is `id_token_invalid` with what failed; an issuer that
 * cannot be read is `issuer_unavailable`.
 */
import { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from "jose";
import { AzgateError } from "../../errors/index.ts";
import type { ProxyContext } from "../context.ts";
import { issuerKeys } from "./issuer-keys.ts";

/** A token's length, refused before it is parsed (GitHub's are about 1.5 KB). */
export const MAX_ID_TOKEN_CHARS = 16 * 1024;
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"];
const SKEW_S = 60;
const MAX_LIFETIME_S = 24 * 3600;

export interface CiTokenCheck {
  issuer: string;
  audience: string;
  /** How old (by its iat) a token may be; none but its exp when absent. */
  maxAgeMs?: number;
}

const invalid = (why: string) => new AzgateError("id_token_invalid", `the CI token was refused: ${why}`);

export async function verifyCiToken(ctx: ProxyContext, token: string, check: CiTokenCheck): Promise<JWTPayload> {
  if (typeof token !== "string" || token.length === 0) throw invalid("none was sent");
  if (token.length > MAX_ID_TOKEN_CHARS) throw invalid(`it is longer than ${MAX_ID_TOKEN_CHARS} characters`);
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw invalid("it is not a signed JWT");
  }
  if (typeof header.alg !== "string" || !ALGORITHMS.includes(header.alg)) throw invalid(`its algorithm ${JSON.stringify(header.alg)} is not one azgate accepts (${ALGORITHMS.join(", ")})`);
  const kid = typeof header.kid === "string" ? header.kid : undefined;
  const keys = await issuerKeys(ctx).keySet(check.issuer, kid);
  if (kid !== undefined && !keys.keys.some((k) => k.kid === kid)) throw invalid(`it is signed by a key (kid ${JSON.stringify(kid.slice(0, 80))}) that ${check.issuer} does not publish`);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, createLocalJWKSet(keys), {
      issuer: check.issuer,
      audience: check.audience,
      algorithms: ALGORITHMS,
      currentDate: ctx.clock.date(),
      clockTolerance: SKEW_S,
      requiredClaims: ["iat", "exp"],
    }));
  } catch (e) {
    throw invalid(describe(e, check));
  }
  const now = ctx.clock.now() / 1000;
  const iat = payload.iat!;
  if (iat > now + SKEW_S) throw invalid(`it was issued in the future (iat ${new Date(iat * 1000).toISOString()}); check the CI's clock and the proxy's`);
  if (check.maxAgeMs !== undefined && (now - iat) * 1000 > check.maxAgeMs + SKEW_S * 1000) throw invalid(`it was issued at ${new Date(iat * 1000).toISOString()}, more than ${Math.round(check.maxAgeMs / 60_000)} minutes ago; fetch a fresh one`);
  if (payload.exp! - iat > MAX_LIFETIME_S) throw invalid("it was made to live more than a day");
  return payload;
}

function describe(e: unknown, check: CiTokenCheck): string {
  if (e instanceof errors.JWTExpired) return `it expired at ${new Date(Number(e.payload.exp) * 1000).toISOString()}`;
  if (e instanceof errors.JWTClaimValidationFailed) {
    const got = (e.payload as Record<string, unknown>)[e.claim];
    if (e.claim === "aud") return `its audience is ${JSON.stringify(got)}, not ${JSON.stringify(check.audience)}`;
    if (e.claim === "iss") return `its issuer is ${JSON.stringify(got)}, not ${check.issuer}`;
    if (e.claim === "nbf") return `it is not valid before ${new Date(Number(got) * 1000).toISOString()}`;
    return `its ${e.claim} claim is ${e.reason === "missing" ? "missing" : "invalid"}`;
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) return "its signature does not verify with the issuer's key";
  if (e instanceof errors.JWKSNoMatchingKey) return `no key of ${check.issuer} matches it`;
  if (e instanceof errors.JOSEAlgNotAllowed) return "its algorithm is not allowed";
  return `it is malformed (${(e as Error).message})`;
}
