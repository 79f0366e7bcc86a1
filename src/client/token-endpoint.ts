/**
 * Token endpoint emulation on the workstation (a Hono app behind the local
 * proxy): the legacy MSI_ENDPOINT protocol (az 2.45 and Cloud Shell style
 * clients) and the App Service IDENTITY_ENDPOINT protocol (MSAL, az 2.73+).
 * It answers with a placeholder token signed by the app key; the agent swaps
 * it for a real one. Field names and messages follow the reference notes.
 */
import { Hono, type Context } from "hono";
import { signPlaceholder } from "../azure/placeholder.ts";
import { IDENTITY_HOST, MSI_HOST } from "./session-env.ts";


export interface TokenEndpointOptions {
  secret: string;
  /** The app session's Azure identity, exactly as in its certificate. */
  identity: string;
  tenant: string;
  key: CryptoKey;
  /** The app certificate's end: no token outlives it. */
  expires: Date;
  /** Reported as client_id (a stable per-session value; clients only display it). */
  clientId: string;
}

const badRequest = (c: Context, message: string) => c.json({ error: "invalid_request", error_description: message, message }, 400);

async function params(c: Context): Promise<URLSearchParams> {
  const q = new URL(c.req.url).searchParams;
  if (c.req.method === "POST") {
    const form = new URLSearchParams(await c.req.text());
    for (const [k, v] of form) if (!q.has(k)) q.set(k, v);
  }
  return q;
}

export function tokenEndpoint(opts: TokenEndpointOptions) {
  const answer = async (c: Context, p: URLSearchParams, identityField: "msi_res_id" | "mi_res_id") => {
    for (const field of ["client_id", "clientid", "object_id", "principal_id"]) {
      if (p.get(field)) {
        return badRequest(c, `azgate serves one Azure identity per app session, by resource ID: ${opts.identity}; ${field} is not supported (use --resource-id or ${identityField})`);
      }
    }
    const resource = p.get("resource");
    if (!resource) return badRequest(c, "missing value for parameter 'resource'");
    const asked = p.get(identityField) ?? p.get("msi_res_id") ?? p.get("mi_res_id");
    if (asked && asked.toLowerCase() !== opts.identity.toLowerCase()) {
      return badRequest(c, `unexpected value for parameter '${identityField}': ${asked}; this app session uses ${opts.identity} (run azgate apps login to change it)`);
    }
    const now = Math.floor(Date.now() / 1000);
    const expiresOn = Math.floor(opts.expires.getTime() / 1000);
    if (expiresOn <= now) {
      const message = `the azgate app session expired at ${opts.expires.toISOString()}; run azgate apps login again`;
      return c.json({ error: "unauthorized_client", error_description: message, message }, 401);
    }
    const token = await signPlaceholder(opts.key, { tid: opts.tenant, resource, identity: opts.identity, expires: opts.expires });
    c.header("Cache-Control", "no-store");
    return c.json({
      access_token: token,
      client_id: opts.clientId,
      expires_in: Math.max(expiresOn - now, 0),
      expires_on: String(expiresOn),
      ext_expires_in: Math.max(expiresOn - now, 0),
      not_before: String(now - 10),
      resource,
      token_type: "Bearer",
    });
  };

  const msi = new Hono();
  msi.all("/:secret{.*}", async (c) => {
    if (c.req.param("secret").replace(/\/$/, "") !== opts.secret) return badRequest(c, "invalid secret");
    if (c.req.header("metadata") !== "true") return badRequest(c, "expected Metadata header with value 'true'");
    return answer(c, await params(c), "msi_res_id");
  });

  const appService = new Hono();
  appService.all("*", async (c) => {
    if (c.req.header("x-identity-header") !== opts.secret) return badRequest(c, "invalid secret");
    return answer(c, await params(c), "mi_res_id");
  });

  return (req: Request): Promise<Response> | Response | null => {
    const host = new URL(req.url).hostname.toLowerCase();
    if (host === MSI_HOST) return msi.fetch(req);
    if (host === IDENTITY_HOST) return appService.fetch(req);
    return null;
  };
}
