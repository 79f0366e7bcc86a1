/**
 * The managed-identity token endpoint on the workstation (a Hono app behind
 * the local proxy), speaking every dialect real clients use. It answers with
 * a placeholder token signed by the app key; the agent swaps it for a real
 * one. Which dialect a request is follows from where it carries its secret:
 *
 * | dialect          | who sends it                                  | secret              | Metadata: true |
 * |------------------|-----------------------------------------------|---------------------|----------------|
 * | cloud-shell      | az < 2.73, JS/Go/.NET with MSI_ENDPOINT alone | the URL path        | required       |
 * | app-service-2019 | MSAL (az >= 2.73, JS, Python, .NET), Go       | X-IDENTITY-HEADER   | no             |
 * | app-service-2017 | ms-rest-nodeauth, Python azure-identity's Azure ML source, az in App Service mode (MSI_SECRET set) | secret (on MSI_ENDPOINT: and the URL path) | no |
 * | go-azure-sdk     | Terraform azurerm (IDENTITY_HEADER set)       | x-ms-identity       | no             |
 * | imds             | any client pointed at .../metadata/identity/oauth2/token, with one of the headers above | | required |
 *
 * Azure itself wants Metadata only on the IMDS shape (and Cloud Shell, whose
 * clients all send it); Go and JS omit it on App Service, and the 2017
 * clients send the `secret` header instead (App Service's MSI_SECRET, which
 * azgate exports with the same value as IDENTITY_HEADER). Every secret a
 * request carries must be this session's. A trailing slash on the token
 * path is accepted, as App Service accepts it (ms-rest-nodeauth always adds
 * one). Every selector given (client_id, clientid, object_id, principal_id,
 * mi_res_id, msi_res_id) must name the session's identity by resource ID (any
 * case), client ID or principal ID; one that names another is refused with
 * 400 "Bad Request" (az's IMDS fallback from client_id to object_id relies on
 * that). The api-version is not read: every dialect gets the same answer,
 * times as whole seconds in strings, which each of these clients parses.
 */
import { Hono, type Context } from "hono";
import { timingSafeEqual } from "node:crypto";
import { signPlaceholder } from "../azure/placeholder.ts";
import { IDENTITY_HOST, MSI_HOST } from "./session-env.ts";
import type { Clock } from "../util/clock.ts";

export type TokenDialect = "cloud-shell" | "app-service-2019" | "app-service-2017" | "go-azure-sdk" | "imds";

export interface TokenEndpointOptions {
  secret: string;
  /** The app session's Azure identity, exactly as in its certificate (its resource ID). */
  identity: string;
  /** The identity's client (application) ID and principal (object) ID, when known. */
  clientId?: string;
  principalId?: string;
  tenant: string;
  /** The key tokens are signed with now, and its thumbprint (the tokens' kid): a user CA rotation gives the session a new one. */
  signer: () => { key: CryptoKey; kid?: string };
  /** The app certificate's end: no token outlives it. */
  expires: Date;
  /** Told of every token issued, with the dialect it was asked in. */
  observe?: (issued: { dialect: TokenDialect; resource: string; selector?: string }) => void;
  /** Dates each token and refuses once the session has ended. */
  clock: Clock;
}

/** Where clients put the identity they want. */
export const SELECTORS = ["client_id", "clientid", "object_id", "principal_id", "mi_res_id", "msi_res_id"] as const;

const IMDS_PATH = /^\/metadata\/identity\/oauth2\/token\/?$/i;
/** A client ID where azgate knows none: clients only display it. */
const UNKNOWN_CLIENT_ID = "00000000-0000-0000-0000-000000000000";

// Azure's reason phrase matters: az's IMDS fallback matches "Bad Request".
const badRequest = (c: Context, message: string) => c.json({ error: "invalid_request", error_description: message, message }, 400);

function sameSecret(given: string | undefined, want: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(want);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function params(c: Context): Promise<URLSearchParams> {
  const q = new URL(c.req.url).searchParams;
  if (c.req.method === "POST") {
    // The query's values come first (what get() reads); the body's are kept too, so every selector is checked.
    for (const [k, v] of new URLSearchParams(await c.req.text())) q.append(k, v);
  }
  return q;
}

/** The secret in MSI_ENDPOINT's path (/SECRET, or /SECRET/ as some clients add); undefined when the path cannot be decoded. */
function pathSecret(path: string): string | undefined {
  try {
    return decodeURIComponent(path.slice(1)).replace(/\/$/, "");
  } catch {
    return undefined;
  }
}

/** The dialect and the secrets it carries (all must be this session's), from the host, the path and the headers. */
function classify(c: Context, host: string): { dialect: TokenDialect; secrets: (string | undefined)[]; needsMetadata: boolean } {
  const path = new URL(c.req.url).pathname;
  const header = (h: string) => c.req.header(h);
  const fromHeaders = header("x-identity-header") ?? header("x-ms-identity") ?? header("secret");
  if (IMDS_PATH.test(path)) return { dialect: "imds", secrets: [fromHeaders], needsMetadata: true };
  if (host === MSI_HOST) {
    // A 2017 client given MSI_ENDPOINT and MSI_SECRET (Python azure-identity's Azure ML source, ms-rest-nodeauth
    // without IDENTITY_ENDPOINT) asks MSI_ENDPOINT itself: the path and the header both carry the secret.
    if (header("secret") !== undefined) return { dialect: "app-service-2017", secrets: [pathSecret(path), header("secret")], needsMetadata: false };
    return { dialect: "cloud-shell", secrets: [pathSecret(path)], needsMetadata: true };
  }
  if (header("x-identity-header") !== undefined) return { dialect: "app-service-2019", secrets: [header("x-identity-header")], needsMetadata: false };
  if (header("x-ms-identity") !== undefined) return { dialect: "go-azure-sdk", secrets: [header("x-ms-identity")], needsMetadata: false };
  return { dialect: "app-service-2017", secrets: [header("secret")], needsMetadata: false };
}

export function tokenEndpoint(opts: TokenEndpointOptions) {
  const names = [opts.identity, opts.clientId, opts.principalId].filter((n): n is string => !!n).map((n) => n.toLowerCase());

  const app = new Hono();
  app.all("*", async (c) => {
    const host = new URL(c.req.url).hostname.toLowerCase();
    const { dialect, secrets, needsMetadata } = classify(c, host);
    if (!secrets.every((s) => sameSecret(s, opts.secret))) return badRequest(c, "invalid secret");
    if (needsMetadata && c.req.header("metadata")?.toLowerCase() !== "true") return badRequest(c, "Required metadata header not specified (expected Metadata: true)");
    const p = await params(c);
    const resource = p.get("resource");
    if (!resource) return badRequest(c, "missing value for parameter 'resource'");
    // Every selector given, not the first: a token for another identity than one the client named would be a lie.
    const given = SELECTORS.filter((f) => p.getAll(f).some((v) => v));
    for (const f of given) {
      const other = p.getAll(f).find((v) => v && !names.includes(v.toLowerCase()));
      if (other) return badRequest(c, `unexpected value for parameter '${f}': ${other}; this app session uses ${opts.identity}${opts.clientId ? ` (client ID ${opts.clientId})` : ""} (run azgate apps login to change it)`);
    }
    const field = given[0];
    const now = Math.floor(opts.clock.now() / 1000);
    const expiresOn = Math.floor(opts.expires.getTime() / 1000);
    if (expiresOn <= now) {
      const message = `the azgate app session expired at ${opts.expires.toISOString()}; run azgate apps login again`;
      return c.json({ error: "unauthorized_client", error_description: message, message }, 401);
    }
    const { key, kid } = opts.signer();
    const token = await signPlaceholder(key, { tid: opts.tenant, resource, identity: opts.identity, now: opts.clock.date(), expires: opts.expires, clientId: opts.clientId, principalId: opts.principalId }, kid);
    opts.observe?.({ dialect, resource, selector: field });
    c.header("Cache-Control", "no-store");
    // Every value a string, as IMDS answers: each client parses the fields it reads from strings.
    const expiresIn = String(Math.max(expiresOn - now, 0));
    return c.json({
      access_token: token,
      client_id: opts.clientId ?? UNKNOWN_CLIENT_ID,
      expires_in: expiresIn,
      expires_on: String(expiresOn),
      ext_expires_in: expiresIn,
      not_before: String(now - 10),
      resource,
      token_type: "Bearer",
    });
  });

  const intercepted = (req: Request): Promise<Response> | Response | null => {
    const host = new URL(req.url).hostname.toLowerCase();
    return host === MSI_HOST || host === IDENTITY_HOST ? app.fetch(req) : null;
  };
  /** The same endpoint on loopback HTTP (session-env.ts LOOPBACK_TOKEN_PATH); the caller checked Host and path. */
  const loopback = (req: Request): Promise<Response> | Response => app.fetch(req);
  return Object.assign(intercepted, { loopback });
}
