import { createLocalJWKSet, jwtVerify, errors as joseErrors, type JWTPayload } from "jose";
import type { SigningKey } from "./keys.ts";

export type BearerResult = { ok: true; claims: JWTPayload & { oid?: string } } | { ok: false; reason: "missing" | "expired" | "invalid" | "audience"; audience?: string };

/**
 * Checks an `Authorization: Bearer` token as Azure resource providers do:
 * the emulated Entra signature, expiry, and one of `audiences`. Each service
 * turns the reason into its own error shape.
 */
export function bearerChecker(key: SigningKey, audiences: string[]) {
  const jwks = createLocalJWKSet({ keys: [key.jwk] });
  return async (authorization: string | undefined): Promise<BearerResult> => {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
    if (!m) return { ok: false, reason: "missing" };
    try {
      const { payload } = await jwtVerify(m[1], jwks, { algorithms: ["RS256"] });
      if (!audiences.includes(String(payload.aud))) return { ok: false, reason: "audience", audience: String(payload.aud) };
      return { ok: true, claims: payload };
    } catch (e) {
      return { ok: false, reason: e instanceof joseErrors.JWTExpired ? "expired" : "invalid" };
    }
  };
}
