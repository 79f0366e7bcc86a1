/**
 * A real OpenID provider on loopback: oidc-provider (certified) with its own
 * login and consent pages. Any password is accepted on its development login
 * page; the login typed in picks the account, whose claims are given here.
 */
import type { Page } from "playwright-core";
import { createServer } from "node:http";
import Provider from "oidc-provider";
import { Hono } from "hono";
import { listenTracked } from "../../src/net/listen.ts";
import { serve } from "../../src/runtime/index.ts";

export interface OidcIdp {
  issuer: string;
  clientId: string;
  clientSecret: string;
  close(): Promise<void>;
}

export async function startOidcIdp(o: { redirectUri: string; accounts: Record<string, Record<string, unknown>> }): Promise<OidcIdp> {
  const server = createServer();
  const listening = await listenTracked(server, 0, "127.0.0.1");
  const issuer = `http://127.0.0.1:${listening.port}`;
  const clientId = "azgate";
  const clientSecret = `oidc-secret-${crypto.randomUUID()}`;
  const provider = new Provider(issuer, {
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: [o.redirectUri], response_types: ["code"], grant_types: ["authorization_code"] }],
    claims: { openid: ["sub"], email: ["email", "email_verified"], groups: ["groups"], azure: ["azure_identities"] },
    scopes: ["openid", "email", "groups", "azure"],
    cookies: { keys: [crypto.randomUUID()] },
    async findAccount(_ctx: unknown, id: string) {
      const claims = o.accounts[id];
      if (!claims) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
    },
  } as never);
  server.on("request", provider.callback());
  return { issuer, clientId, clientSecret, close: () => listening.close() };
}

/**
 * A stand-in issuer that hands out the real provider's endpoints under its
 * own name: ID tokens then carry an issuer the relying party did not ask for.
 */
export async function startIssuerImpostor(real: OidcIdp): Promise<{ issuer: string; close(): Promise<void> }> {
  const app = new Hono();
  let own = "";
  app.get("/.well-known/openid-configuration", async () => {
    const doc = (await (await fetch(`${real.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    return Response.json({ ...doc, issuer: own });
  });
  const server = await serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
  own = `http://127.0.0.1:${server.port}`;
  return { issuer: own, close: () => server.close() };
}

/** Types into oidc-provider's own login page (any password works there), then accepts its consent page; a returning user with consent given skips it. */
export async function signInAtIdp(page: Page, login: string): Promise<void> {
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', "any password works on this IdP");
  await page.click('button[type="submit"]');
  const consent = page.locator('button[type="submit"]:has-text("Continue")');
  if (await consent.isVisible({ timeout: 5_000 }).catch(() => false)) await consent.click();
}
