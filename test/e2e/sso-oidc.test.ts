/**
 * OIDC single sign-on end to end: the real CLI and proxy processes, a real
 * OpenID provider (oidc-provider) on loopback, and headless Chromium typing
 * into the provider's own login page. The user's claims pick their roles,
 * and their azure_identities claim feeds {{external.azure_identities}}.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, startCluster, startClusterWithAgent, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, tempDir } from "../helpers/azgate.ts";
import { freshPage, launchBrowser, recordRequests, textOf } from "../helpers/browser.ts";
import { startOidcIdp, startIssuerImpostor, type OidcIdp } from "../helpers/idp-oidc.ts";
import { x509 } from "../../src/pki/x509.ts";
import { ApiClient } from "../../src/client/api.ts";
import { generateKeyPair, publicKeyToPem } from "../../src/pki/keys.ts";
import { startRawAttempt, startSsoLogin, waitForCallback } from "../helpers/sso.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const ACCOUNTS = {
  "alice@example.com": { email: "alice@example.com", email_verified: true, groups: ["azure-users", "staff"], azure_identities: [READER] },
  "bob@example.com": { email: "bob@example.com", email_verified: true, groups: ["staff"] },
};

const connector = (idp: { issuer: string; clientId: string; clientSecret: string }, name: string, port: number) => ({
  kind: "oidc",
  version: "v3",
  metadata: { name },
  spec: {
    display: "Corporate SSO",
    issuer_url: idp.issuer,
    client_id: idp.clientId,
    client_secret: idp.clientSecret,
    redirect_url: `https://127.0.0.1:${port}/v1/webapi/oidc/callback`,
    scope: ["groups", "azure"],
    claims_to_roles: [{ claim: "groups", value: "azure-*", roles: ["access", "azure-cli-access"] }],
  },
});

/** Types into oidc-provider's login page, then accepts its consent page. */
async function signIn(page: Page, url: string, login: string): Promise<void> {
  await page.goto(url);
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', "any password works on this IdP");
  await page.click('button[type="submit"]');
  // The consent page; a returning user with consent already given skips it.
  const consent = page.locator('button[type="submit"]:has-text("Continue")');
  if (await consent.isVisible({ timeout: 5_000 }).catch(() => false)) await consent.click();
}

describe("OIDC login", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let idp: OidcIdp;
  let browser: Browser;
  const admin = (args: string[]) => cli(["admin", "--data-dir", cluster.proxy.dataDir, ...args], { home: tempDir("azgate-admin-") });

  beforeAll(async () => {
    ({ cluster, agent } = await startClusterWithAgent(fx, ["azure-cli-access-external.yaml"]));
    idp = await startOidcIdp({ redirectUri: `https://127.0.0.1:${cluster.proxy.port}/v1/webapi/oidc/callback`, accounts: ACCOUNTS });
    await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector(idp, "corp", cluster.proxy.port)) });
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await idp?.close();
    await agent?.stop();
    await cluster?.stop();
  });

  it("signs alice in with her groups' roles and her azure_identities claim, and apps login honours it", async () => {
    const home = tempDir("azgate-home-");
    const login = await startSsoLogin(cluster, home, "corp");
    expect(new URL(login.url).origin).toBe(idp.issuer);
    const { context, page } = await freshPage(browser);
    await signIn(page, login.url, "alice@example.com");
    await waitForCallback(page);
    expect(await textOf(page, "#result")).toMatch(/Login successful/);
    await context.close();

    const res = await login.done;
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/Logged in as:\s+alice@example.com/);
    expect(res.stdout).toMatch(/Roles:\s+access, azure-cli-access/);

    const status = await cli(["status", "--format", "json"], { home });
    const s = JSON.parse(status.stdout);
    expect(s.roles).toEqual(["access", "azure-cli-access"]);
    expect(s.azure_identities).toEqual([READER]);
    expect(s.traits.groups).toEqual(["azure-users", "staff"]);

    const apps = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"], { home });
    expect(apps.code, apps.stderr).toBe(0);
    const other = await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-contributor"], { home });
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/teleport-contributor/);

    const users = await admin(["users", "ls"]);
    expect(users.stdout).toMatch(/alice@example.com\s+access,azure-cli-access\s+\S+teleport-reader\s+sso: oidc\/corp until \d{4}-/);
  });

  it("says what is wrong with a login request, and names the connectors there are", async () => {
    const unknown = await cli(["login", "--proxy", cluster.proxy.addr, "--ca-pin", cluster.proxy.pin, "--auth", "nosuch", "--browser", "none"], { home: tempDir("azgate-home-") });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no SSO connector named "nosuch"; this cluster has: .*corp/);
    const badBrowser = await cli(["login", "--proxy", cluster.proxy.addr, "--ca-pin", cluster.proxy.pin, "--auth", "corp", "--browser", "firefox"], { home: tempDir("azgate-home-") });
    expect(badBrowser.stderr).toContain('--browser takes only "none"');

    const api = new ApiClient(cluster.target);
    const keys = await generateKeyPair();
    const good = { connector: "corp", public_key_pem: await publicKeyToPem(keys.publicKey), redirect_url: "http://127.0.0.1:9/callback", secret_hash: "a".repeat(64) };
    await expect(api.call("POST", "/v1/sso/login", { ...good, redirect_url: "https://attacker.example.com/callback" })).rejects.toThrow(/redirect_url must be http:\/\/127.0.0.1:PORT/);
    await expect(api.call("POST", "/v1/sso/login", { ...good, secret_hash: "short" })).rejects.toThrow(/secret_hash must be the hex SHA-256/);
    await expect(api.call("POST", "/v1/sso/login", { ...good, public_key_pem: "nope" })).rejects.toThrow(/public_key_pem must be a PEM-encoded/);
    await expect(api.call("POST", "/v1/sso/pickup", { attempt: "x", code: "y", secret: "z" })).rejects.toThrow(/unknown, used or expired/);
  });

  it("refuses a user whose claims map to no role, and says so in the terminal", async () => {
    const login = await startSsoLogin(cluster, tempDir("azgate-home-"), "corp");
    const { context, page } = await freshPage(browser);
    await signIn(page, login.url, "bob@example.com");
    await waitForCallback(page);
    expect(await textOf(page, "#result")).toMatch(/Login failed: .*nothing they have maps to a role/);
    await context.close();
    const res = await login.done;
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('user "bob@example.com" signed in with oidc connector "corp", but nothing they have maps to a role');
  });

  it("refuses an ID token whose nonce is not the one this login asked for", async () => {
    const login = await startSsoLogin(cluster, tempDir("azgate-home-"), "corp");
    const tampered = new URL(login.url);
    tampered.searchParams.set("nonce", "a-nonce-the-proxy-never-made");
    const { context, page } = await freshPage(browser);
    await signIn(page, tampered.toString(), "alice@example.com");
    await waitForCallback(page);
    await context.close();
    const res = await login.done;
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/OIDC login was refused: .*nonce/);
  });

  it("refuses a callback whose state is not its login's: replayed, another attempt's, or none at all", async () => {
    const login = await startSsoLogin(cluster, tempDir("azgate-home-"), "corp");
    const other = await startRawAttempt(cluster, "corp");
    try {
      const { context, page } = await freshPage(browser);
      const callbacks = recordRequests(page, "/v1/webapi/oidc/callback");
      await signIn(page, login.url, "alice@example.com");
      await waitForCallback(page);
      expect((await login.done).code).toBe(0);
      expect(callbacks).toHaveLength(1);
      // The same callback again: its attempt is used up.
      const again = await page.goto(callbacks[0]);
      expect(again?.status()).toBe(403);
      expect(await textOf(page, "#error")).toMatch(/already been completed|unknown, used or expired/);
      // Its code under another pending attempt's state: that attempt fails, and its client is told.
      const swapped = new URL(callbacks[0]);
      swapped.searchParams.set("state", other.attempt);
      await page.goto(swapped.toString());
      await expect.poll(() => other.arrived.length, { timeout: 15_000 }).toBe(1);
      expect(other.arrived[0].searchParams.get("code")).toBeNull();
      expect(other.arrived[0].searchParams.get("error")).toMatch(/OIDC login was refused/);
      // A state that names no attempt gets an error page at the proxy.
      const forged = new URL(callbacks[0]);
      forged.searchParams.set("state", "0".repeat(48));
      const answer = await page.goto(forged.toString());
      expect(answer?.status()).toBe(403);
      expect(await textOf(page, "#error")).toMatch(/unknown, used or expired/);
      await context.close();
    } finally {
      await other.close();
      await login.cancel();
    }
  });

  /** A login made by hand (see startRawAttempt), signed in as alice: the attempt and the code its loopback got. */
  async function signedInAttempt(name: string) {
    const attempt = await startRawAttempt(cluster, name);
    const { context, page } = await freshPage(browser);
    try {
      await signIn(page, attempt.auth_url, "alice@example.com");
      await expect.poll(() => attempt.arrived.length, { timeout: 15_000 }).toBe(1);
      return { attempt, code: attempt.arrived[0].searchParams.get("code")! };
    } catch (e) {
      await attempt.close();
      throw e;
    } finally {
      await context.close();
    }
  }

  it("gives the certificate only to the client holding the secret, once", async () => {
    const { attempt, code } = await signedInAttempt("corp");
    try {
      expect(code).toMatch(/^[0-9a-f]{32}$/);
      // Another client received the browser (and so the code), but not the secret.
      await expect(attempt.pickup(code, "f".repeat(64))).rejects.toThrow(/started by another client/);
      // Guessing cancelled the attempt: not even the right secret gets it now.
      await expect(attempt.pickup(code)).rejects.toThrow(/unknown, used or expired/);
    } finally {
      await attempt.close();
    }
  });

  it("picks up once: a second pickup with the same code and secret is refused", async () => {
    const { attempt, code } = await signedInAttempt("corp");
    try {
      expect((await attempt.pickup(code)).user).toBe("alice@example.com");
      await expect(attempt.pickup(code)).rejects.toThrow(/unknown, used or expired/);
    } finally {
      await attempt.close();
    }
  });

  it("bounds an SSO certificate by the connector's max_session_ttl and by the roles'", async () => {
    const brief = { kind: "role", version: "v7", metadata: { name: "brief" }, spec: { options: { max_session_ttl: "20m" }, allow: { app_labels: { "*": "*" } } } };
    await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(brief) });
    const short = connector(idp, "short", cluster.proxy.port);
    short.spec = { ...short.spec, max_session_ttl: "45m" } as typeof short.spec;
    const briefRole = connector(idp, "brief-role", cluster.proxy.port);
    briefRole.spec.claims_to_roles = [{ claim: "groups", value: "azure-users", roles: ["access", "brief"] }];
    for (const c of [short, briefRole]) await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(c) });

    const lifetimeMin = async (name: string) => {
      const { attempt, code } = await signedInAttempt(name);
      try {
        const cert = await attempt.pickup(code);
        return (new x509.X509Certificate(cert.cert_pem).notAfter.getTime() - Date.now()) / 60_000;
      } finally {
        await attempt.close();
      }
    };
    const withShortConnector = await lifetimeMin("short");
    expect(withShortConnector).toBeGreaterThan(43);
    expect(withShortConnector).toBeLessThanOrEqual(45);
    const withBriefRole = await lifetimeMin("brief-role");
    expect(withBriefRole).toBeGreaterThan(18);
    expect(withBriefRole).toBeLessThanOrEqual(20);
  });

  it("refuses an ID token from an issuer other than the connector's", async () => {
    const impostor = await startIssuerImpostor(idp);
    try {
      await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector({ ...idp, issuer: impostor.issuer }, "impostor", cluster.proxy.port)) });
      const login = await startSsoLogin(cluster, tempDir("azgate-home-"), "impostor");
      const { context, page } = await freshPage(browser);
      await signIn(page, login.url, "alice@example.com");
      await waitForCallback(page);
      await context.close();
      const res = await login.done;
      expect(res.code).toBe(1);
      expect(res.stderr).toMatch(/OIDC login was refused: .*iss/);
    } finally {
      await impostor.close();
    }
  });
});

describe("OIDC login attempts expire", () => {
  it("refuses a login finished after the attempt's time is up", async () => {
    const cluster = await startCluster({ env: { AZGATE_SSO_LOGIN_TIMEOUT: "3s" } });
    const idp = await startOidcIdp({ redirectUri: `https://127.0.0.1:${cluster.proxy.port}/v1/webapi/oidc/callback`, accounts: ACCOUNTS });
    const browser = await launchBrowser();
    try {
      await cluster.admin.call("POST", "/v1/admin/resources", { text: "kind: role\nversion: v7\nmetadata: {name: azure-cli-access}\nspec: {allow: {app_labels: {'*': '*'}}}\n" });
      await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector(idp, "corp", cluster.proxy.port)) });
      const attempt = await startRawAttempt(cluster, "corp");
      await new Promise((r) => setTimeout(r, 3_500));
      const { page } = await freshPage(browser);
      await signIn(page, attempt.auth_url, "alice@example.com");
      await page.waitForURL(/\/v1\/webapi\/oidc\/callback/, { timeout: 15_000 });
      expect(await textOf(page, "#error")).toMatch(/unknown, used or expired/);
      expect(attempt.arrived).toEqual([]);
      await attempt.close();
    } finally {
      await browser.close();
      await idp.close();
      await cluster.stop();
    }
  });
});
