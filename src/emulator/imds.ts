import { Hono, type Context } from "hono";
import type { SigningKey } from "./keys.ts";
import { identityResourceId, type World } from "./world.ts";
import { audienceForResource, issueAccessToken, TOKEN_LIFETIME_S } from "./access-token.ts";
import { EMULATED_CLOUDS } from "./clouds.ts";

/** A VM's IMDS issues its own cloud's audiences; the emulated one stands in for a VM in any of them. */
const ANY_CLOUD_RESOURCES = EMULATED_CLOUDS.flatMap((c) => c.resources);

export const IMDS_HOST = "169.254.169.254";

/**
 * IMDS managed-identity tokens for the world's VM. As the real one: the
 * Metadata header is required (Python probes without it), and an unknown
 * client_id is a 400 "Bad Request" so az can fall back to object_id.
 */
export function imdsApp(opts: { world: World; key: SigningKey; onIssued?: (token: string) => void }) {
  const { world } = opts;
  const app = new Hono();
  const bad = (c: Context, description: string) => c.json({ error: "invalid_request", error_description: description }, 400);

  const token = async (c: Context) => {
    if (c.req.header("metadata") !== "true") return bad(c, "Required metadata header not specified");
    const q = new URL(c.req.url).searchParams;
    const resource = q.get("resource");
    if (!resource) return bad(c, "Required audience parameter not specified");
    const audience = audienceForResource(resource, ANY_CLOUD_RESOURCES);
    if (!audience) return bad(c, `Resource '${resource}' is not a valid audience`);
    const assigned = world.identities.filter((i) => world.imds.user_assigned.includes(i.name));
    const clientId = q.get("client_id")?.toLowerCase();
    const objectId = q.get("object_id")?.toLowerCase();
    const resId = (q.get("msi_res_id") ?? q.get("mi_res_id"))?.toLowerCase();
    const chosen = clientId ? assigned.filter((i) => i.client_id.toLowerCase() === clientId)
      : objectId ? assigned.filter((i) => i.principal_id.toLowerCase() === objectId)
      : resId ? assigned.filter((i) => identityResourceId(i).toLowerCase() === resId)
      : assigned;
    if (chosen.length === 0) return bad(c, "Identity not found");
    if (chosen.length > 1) return bad(c, "Multiple user assigned identities exist, please specify the clientId / resourceId of the identity in the token request");
    const id = chosen[0];
    const { token, expiresOn, notBefore } = await issueAccessToken(opts.key, world.tenant_id, { client_id: id.client_id, principal_id: id.principal_id, resource_id: identityResourceId(id) }, audience);
    opts.onIssued?.(token);
    return c.json({
      access_token: token,
      client_id: id.client_id,
      expires_in: String(TOKEN_LIFETIME_S),
      expires_on: String(expiresOn),
      ext_expires_in: String(TOKEN_LIFETIME_S),
      not_before: String(notBefore),
      resource,
      token_type: "Bearer",
    });
  };
  // MSAL appends a trailing slash when the host is overridden; az does not.
  app.get("/metadata/identity/oauth2/token", token);
  app.get("/metadata/identity/oauth2/token/", token);
  return app;
}
