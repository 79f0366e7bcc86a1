import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import type { SigningKey } from "./keys.ts";

export const TOKEN_LIFETIME_S = 3599;

/**
 * `<resource>/.default` to the token audience, among `resources` (a cloud's:
 * ARM's two spellings, Key Vault, Storage, Graph; clouds.ts). v1 resources
 * ending in "/" keep it (`https://management.core.windows.net//.default`);
 * null when unknown.
 */
export function audienceForScope(scope: string, resources: string[]): string | null {
  const s = scope.trim().split(/\s+/).find((x) => x.endsWith("/.default"));
  return s ? audienceForResource(s.slice(0, -"/.default".length), resources) : null;
}

export function audienceForResource(resource: string, resources: string[]): string | null {
  const bare = resource.replace(/\/+$/, "");
  const match = resources.find((r) => r.replace(/\/+$/, "") === bare);
  return match ?? null;
}

export interface Principal {
  client_id: string;
  principal_id: string;
  /** The ARM ID, for managed identities (`xms_mirid`). */
  resource_id?: string;
}

/** An Entra-shaped v1 access token (RS256), as ARM and the data planes validate it. */
export async function issueAccessToken(key: SigningKey, tenantId: string, principal: Principal, audience: string, now = Date.now()) {
  const iat = Math.floor(now / 1000);
  const iss = `https://sts.windows.net/${tenantId}/`;
  const token = await new SignJWT({
    aio: "E2emulated",
    appid: principal.client_id,
    appidacr: "2",
    idp: iss,
    idtyp: "app",
    oid: principal.principal_id,
    rh: "0.emulated.",
    tid: tenantId,
    uti: randomBytes(16).toString("base64url"),
    ver: "1.0",
    ...(principal.resource_id ? { xms_mirid: principal.resource_id } : {}),
  })
    .setProtectedHeader({ typ: "JWT", alg: "RS256", x5t: key.kid, kid: key.kid })
    .setAudience(audience)
    .setIssuer(iss)
    .setSubject(principal.principal_id)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + TOKEN_LIFETIME_S)
    .sign(key.privateKey);
  return { token, expiresOn: iat + TOKEN_LIFETIME_S, notBefore: iat };
}
