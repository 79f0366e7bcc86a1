/**
 * OpenID Connect with openid-client (a certified relying party): the
 * authorization code flow with PKCE, state and nonce; the ID token is
 * validated by the library (signature, issuer, audience, expiry, nonce).
 * Claims from the ID token and the userinfo endpoint become traits, and
 * `claims_to_roles` picks the roles.
 */
import * as oidc from "openid-client";
import { AzgateError } from "../../errors/index.ts";
import type { OidcConnector } from "../../resources/connector.ts";
import { claimsToTraits, rolesFromTraits } from "../../sso/mapping.ts";
import { ttlCache } from "../../util/ttl-cache.ts";
import { systemClock } from "../../util/clock.ts";
import type { SsoIdentity } from "./finish.ts";

/** Claims about the token itself, not the user: kept out of traits. */
const PROTOCOL_CLAIMS = ["iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "s_hash", "auth_time", "azp", "sid", "jti", "acr", "amr"];
const CLOCK_SKEW_MS = 60_000;
/** Discovery documents, for 5 minutes per issuer and client. */
// The IdP's documents, refreshed every 5 minutes: a cache, not an access decision, so the machine's clock.
const discovered = ttlCache<oidc.Configuration>(5 * 60_000, systemClock);

/** Plain http is accepted only for an issuer on this machine (tests, local IdPs); anywhere else it is https. */
function isLoopback(url: URL): boolean {
  return ["127.0.0.1", "[::1]", "localhost"].includes(url.hostname);
}

function configuration(c: OidcConnector): Promise<oidc.Configuration> {
  const issuer = new URL(c.spec.issuer_url);
  return discovered(JSON.stringify([c.spec.issuer_url, c.spec.client_id, c.spec.client_secret]), () =>
    oidc.discovery(issuer, c.spec.client_id, c.spec.client_secret, undefined, isLoopback(issuer) ? { execute: [oidc.allowInsecureRequests] } : undefined).catch((e: Error) => {
      throw new AzgateError("sso_failed", `cannot reach the OIDC issuer ${c.spec.issuer_url}: ${e.message}`);
    }),
  );
}

export const redirectUrl = (c: OidcConnector) => [c.spec.redirect_url].flat()[0];

/** Where the browser goes first, and what to keep for the callback. */
export async function oidcStart(c: OidcConnector, state: string): Promise<{ url: string; protocol: { pkce_verifier: string; nonce: string } }> {
  const config = await configuration(c);
  const pkce_verifier = oidc.randomPKCECodeVerifier();
  const nonce = oidc.randomNonce();
  const params: Record<string, string> = {
    redirect_uri: redirectUrl(c),
    scope: [...new Set(["openid", "email", ...(c.spec.scope ?? [])])].join(" "),
    code_challenge: await oidc.calculatePKCECodeChallenge(pkce_verifier),
    code_challenge_method: "S256",
    state,
    nonce,
  };
  if (c.spec.prompt) params.prompt = c.spec.prompt;
  if (c.spec.acr_values) params.acr_values = c.spec.acr_values;
  return { url: oidc.buildAuthorizationUrl(config, params).toString(), protocol: { pkce_verifier, nonce } };
}

/** The callback: exchanges the code and validates the ID token, then maps claims to roles. */
export async function oidcCallback(c: OidcConnector, query: URLSearchParams, expected: { state: string; pkce_verifier: string; nonce: string }, now: number): Promise<SsoIdentity> {
  const config = await configuration(c);
  // The URL the IdP redirected to, as registered: the proxy may sit behind a different address.
  const current = new URL(redirectUrl(c));
  current.search = query.toString();
  let claims: Record<string, unknown>;
  try {
    const tokens = await oidc.authorizationCodeGrant(config, current, {
      pkceCodeVerifier: expected.pkce_verifier,
      expectedState: expected.state,
      expectedNonce: expected.nonce,
      idTokenExpected: true,
    });
    const idClaims = tokens.claims()!;
    // The library refuses an old iat but not one from the future: a token minted ahead of time (or by a
    // provider with a wrong clock) is refused past the same skew SAML allows.
    if (typeof idClaims.iat !== "number" || idClaims.iat * 1000 > now + CLOCK_SKEW_MS) {
      throw new AzgateError("sso_failed", "the OIDC login was refused: the ID token was issued in the future (iat); check the identity provider's clock");
    }
    let userinfo: Record<string, unknown> = {};
    if (config.serverMetadata().userinfo_endpoint && tokens.access_token) {
      userinfo = (await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub)) as Record<string, unknown>;
    }
    claims = { ...userinfo, ...idClaims };
  } catch (e) {
    if (e instanceof AzgateError) throw e;
    throw new AzgateError("sso_failed", `the OIDC login was refused: ${describe(e)}`);
  }
  return oidcIdentity(c, claims);
}

/** Who the verified claims say the user is: the name (username_claim, as given), the subject, roles and traits. */
export function oidcIdentity(c: OidcConnector, claims: Record<string, unknown>): SsoIdentity {
  const usernameClaim = c.spec.username_claim ?? "email";
  const raw = claims[usernameClaim];
  if (typeof raw !== "string" || !raw) throw new AzgateError("sso_failed", `the identity provider sent no "${usernameClaim}" claim to name the user (set username_claim in the connector)`);
  // Only a boolean true counts as verified: a missing claim, "true" as a string or 1 do not.
  if (usernameClaim === "email" && claims.email_verified !== true && !c.spec.allow_unverified_email) {
    throw new AzgateError("sso_failed", `the email ${raw} is not verified by the identity provider`);
  }
  if (typeof claims.sub !== "string" || !claims.sub) throw new AzgateError("sso_failed", "the ID token has no subject (sub)");
  const traits = claimsToTraits(Object.fromEntries(Object.entries(claims).filter(([k]) => !PROTOCOL_CLAIMS.includes(k))));
  const rules = c.spec.claims_to_roles.map((r) => ({ name: r.claim, value: r.value, roles: r.roles }));
  return { user: raw, subject: `oidc:${String(claims.iss)}:${claims.sub}`, roles: rolesFromTraits(rules, traits), traits };
}

/** openid-client wraps the specific check that failed (nonce, iss, PKCE...) in `cause`; say both. */
function describe(e: unknown): string {
  const err = e as Error & { cause?: { message?: string; error_description?: string; error?: string } };
  const cause = err.cause?.error_description ?? err.cause?.message ?? err.cause?.error;
  return cause && !err.message.includes(cause) ? `${err.message}: ${cause}` : err.message;
}
