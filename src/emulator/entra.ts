import { Hono } from "hono";
import { decodeJwt, decodeProtectedHeader, jwtVerify, createLocalJWKSet, errors as joseErrors } from "jose";
import type { World } from "./world.ts";
import { identityResourceId } from "./world.ts";
import type { SigningKey } from "./keys.ts";
import type { WorkloadIssuer } from "./workload-issuer.ts";
import { audienceForScope, issueAccessToken, TOKEN_LIFETIME_S, type Principal } from "./access-token.ts";
import { entraError } from "./entra-errors.ts";
import { PUBLIC_CLOUD, type EmulatedCloud } from "./clouds.ts";

const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
export const LOGIN_HOST = "login.microsoftonline.com";

/** Entra ID on a cloud's login host (login.microsoftonline.com for public Azure): discovery, JWKS, and the v2 token endpoint for client credentials. */
export function entraApp(opts: { world: World; key: SigningKey; issuers: WorkloadIssuer[]; onIssued?: (token: string) => void; cloud?: EmulatedCloud }) {
  const { world, key } = opts;
  const cloud = opts.cloud ?? PUBLIC_CLOUD;
  const app = new Hono();
  const host = cloud.loginHost;
  const base = `https://${host}`;
  const fail = (c: { json: (b: unknown, s: 400) => Response }, e: ReturnType<typeof entraError>) => c.json(e.body, e.status as 400);

  app.get("/common/discovery/instance", (c) =>
    c.json({
      tenant_discovery_endpoint: `${base}/${world.tenant_id}/v2.0/.well-known/openid-configuration`,
      "api-version": "1.1",
      metadata: [host === LOGIN_HOST ? { preferred_network: LOGIN_HOST, preferred_cache: "login.windows.net", aliases: [LOGIN_HOST, "login.windows.net", "login.microsoft.com", "sts.windows.net"] } : { preferred_network: host, preferred_cache: host, aliases: [host] }],
    }),
  );
  app.get("/:tenant/v2.0/.well-known/openid-configuration", (c) => {
    const t = c.req.param("tenant");
    if (t !== world.tenant_id) return fail(c, entraError(400, "invalid_tenant", 90002, `Tenant '${t}' not found.`));
    return c.json({
      token_endpoint: `${base}/${t}/oauth2/v2.0/token`,
      authorization_endpoint: `${base}/${t}/oauth2/v2.0/authorize`,
      issuer: `${base}/${t}/v2.0`,
      jwks_uri: `${base}/${t}/discovery/v2.0/keys`,
      token_endpoint_auth_methods_supported: ["client_secret_post", "private_key_jwt", "client_secret_basic"],
      response_types_supported: ["code", "id_token", "code id_token", "id_token token"],
      id_token_signing_alg_values_supported: ["RS256"],
      tenant_region_scope: "NA",
    });
  });
  app.get("/:tenant/discovery/v2.0/keys", (c) => c.json({ keys: [key.jwk] }));
  app.get("/common/discovery/keys", (c) => c.json({ keys: [key.jwk] }));

  app.post("/:tenant/oauth2/v2.0/token", async (c) => {
    const tenant = c.req.param("tenant");
    const form = new URLSearchParams(await c.req.text());
    if (tenant !== world.tenant_id) return fail(c, entraError(400, "invalid_request", 90002, `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`));
    if (form.get("grant_type") !== "client_credentials") {
      return fail(c, entraError(400, "unsupported_grant_type", 70003, `The app requested an unsupported grant type '${form.get("grant_type") ?? ""}'.`));
    }
    const clientId = (form.get("client_id") ?? "").toLowerCase();
    const identity = world.identities.find((i) => i.client_id.toLowerCase() === clientId);
    const application = world.applications.find((a) => a.client_id.toLowerCase() === clientId);
    if (!identity && !application) {
      return fail(c, entraError(400, "unauthorized_client", 700016, `Application with identifier '${form.get("client_id") ?? ""}' was not found in the directory '${tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`));
    }
    const audience = audienceForScope(form.get("scope") ?? "", cloud.resources);
    if (!audience) {
      return fail(c, entraError(400, "invalid_scope", 70011, `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${form.get("scope") ?? ""} is not valid.`));
    }

    let principal: Principal;
    if (form.get("client_assertion")) {
      if (form.get("client_assertion_type") !== JWT_BEARER) return fail(c, entraError(400, "invalid_request", 700023, "The client assertion type is invalid."));
      if (!identity) return fail(c, entraError(400, "invalid_client", 70021, "No matching federated identity record found for presented assertion."));
      // Python sends the token file with its trailing newline; strip surrounding whitespace before validating.
      const problem = await checkFederatedAssertion(form.get("client_assertion")!.trim(), identity.federated_credentials, opts.issuers);
      if (problem) return fail(c, problem);
      principal = { client_id: identity.client_id, principal_id: identity.principal_id, resource_id: identityResourceId(identity) };
    } else if (form.get("client_secret") !== null) {
      if (!application?.secret || form.get("client_secret") !== application.secret) {
        return fail(c, entraError(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '" + clientId + "'."));
      }
      principal = { client_id: application.client_id, principal_id: application.principal_id };
    } else {
      return fail(c, entraError(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."));
    }
    const { token } = await issueAccessToken(key, world.tenant_id, principal, audience);
    opts.onIssued?.(token);
    return c.json({ token_type: "Bearer", expires_in: TOKEN_LIFETIME_S, ext_expires_in: TOKEN_LIFETIME_S, access_token: token });
  });
  return app;
}

/** Null when the assertion is a valid token from a federated issuer for one of the identity's credentials. */
async function checkFederatedAssertion(assertion: string, credentials: World["identities"][number]["federated_credentials"], issuers: WorkloadIssuer[]) {
  let claims: { iss?: string; sub?: string; aud?: string | string[] };
  try {
    const header = decodeProtectedHeader(assertion);
    if (!header.alg || header.alg === "none") return entraError(400, "invalid_client", 700027, "Client assertion failed signature validation.");
    claims = decodeJwt(assertion);
  } catch {
    return entraError(400, "invalid_client", 50027, "JWT token is invalid or malformed.");
  }
  const auds = [claims.aud ?? []].flat();
  const described = `Assertion Issuer: '${claims.iss ?? ""}'. Assertion Subject: '${claims.sub ?? ""}'. Assertion Audience: '${auds.join(",")}'.`;
  const byIssuer = credentials.filter((f) => f.issuer === claims.iss);
  if (byIssuer.length === 0) return entraError(400, "invalid_client", 700211, `No matching federated identity record found for presented assertion issuer '${claims.iss ?? ""}'. Please note that the matching is done using a case-sensitive comparison.`);
  const bySubject = byIssuer.filter((f) => f.subject === claims.sub);
  if (bySubject.length === 0) return entraError(400, "invalid_client", 70021, `No matching federated identity record found for presented assertion. ${described}`);
  if (!bySubject.some((f) => f.audiences.some((a) => auds.includes(a)))) {
    return entraError(400, "invalid_client", 700212, `No matching federated identity record found for presented assertion audience '${auds.join(",")}'.`);
  }
  const issuer = issuers.find((i) => i.issuer === claims.iss);
  if (!issuer) return entraError(400, "invalid_client", 700211, `Unable to fetch signing keys for issuer '${claims.iss}'.`);
  try {
    await jwtVerify(assertion, createLocalJWKSet(issuer.jwks()), { issuer: issuer.issuer, algorithms: ["RS256"] });
  } catch (e) {
    if (e instanceof joseErrors.JWTExpired) return entraError(400, "invalid_client", 700024, "Client assertion is not within its valid time range.");
    return entraError(400, "invalid_client", 700027, "Client assertion failed signature validation.");
  }
  return null;
}
