/**
 * OIDC single sign-on end to end: the real CLI and proxy processes, a real
 * OpenID provider (oidc-provider) on loopback, and headless Chromium typing
 * into the provider's own login page. The user's claims pick their roles,
 * and their azure_identities claim feeds {{external.azure_identities}}.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import https from "node:https";
import type { Browser, Page } from "playwright-core";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, startCluster, startClusterWithAgent, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, tempDir } from "../helpers/azgate.ts";
import { freshPage, launchBrowser, recordRequests, textOf } from "../helpers/browser.ts";
import { signInAtIdp, startOidcIdp, startIssuerImpostor, type OidcIdp } from "../helpers/idp-oidc.ts";
import { x509 } from "../../src/pki/x509.ts";
import { ApiClient } from "../../src/api/client.ts";
import { generateKeyPair, publicKeyToPem } from "../../src/pki/keys.ts";
import { startRawAttempt, startSsoLogin, waitForCallback } from "../helpers/sso.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const ACCOUNTS = {
  "alice@example.com": { email: "alice@example.com", email_verified: true, groups: ["azure-users", "staff"], azure_identities: [READER] },
  "bob@example.com": { email: "bob@example.com", email_verified: true, groups: ["staff"] },
  "carol@example.com": { email: "carol@example.com", email_verified: true, groups: ["azure-users"] },
  "dan@example.com": { email: "dan@example.com", email_verified: true, groups: ["azure-users"] },
  // Two people whose e-mail addresses differ by a character user names do not allow (cleaned, they were one name).
  "ops/lead@example.com": { email: "ops/lead@example.com", email_verified: true, groups: ["azure-users"] },
  "ops_lead@example.com": { email: "ops_lead@example.com", email_verified: true, groups: ["azure-users", "azure-admins"] },
  "unverified@example.com": { email: "unverified@example.com", email_verified: "true", groups: ["azure-users"] },
  "erin@example.com": { email: "erin@example.com", email_verified: true, groups: ["azure-users"] },
  // A 300 kB claim: it must not reach a certificate.
  "big@example.com": { email: "big@example.com", email_verified: true, groups: ["azure-users", "x".repeat(300_000)] },
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

/** Opens the provider's page and signs in there. */
async function signIn(page: Page, url: string, login: string): Promise<void> {
  await page.goto(url);
  await signInAtIdp(page, login);
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
  afterAll(() => stopAll(browser, idp, agent, cluster));

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
    const s = JSON.parse(status.stdout).active;
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

  /** A login made by hand (see startRawAttempt), signed in as `login`: the attempt and the code its loopback got. */
  async function signedInAttempt(name: string, login = "alice@example.com", opts: { ttlMs?: number } = {}) {
    const attempt = await startRawAttempt(cluster, name, opts);
    const { context, page } = await freshPage(browser);
    try {
      await signIn(page, attempt.auth_url, login);
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

    // A user name belongs to one connector and subject: each connector signs in a person of its own here.
    const lifetimeMin = async (name: string, login: string) => {
      const { attempt, code } = await signedInAttempt(name, login);
      try {
        const cert = await attempt.pickup(code);
        return (new x509.X509Certificate(cert.cert_pem).notAfter.getTime() - Date.now()) / 60_000;
      } finally {
        await attempt.close();
      }
    };
    const withShortConnector = await lifetimeMin("short", "carol@example.com");
    expect(withShortConnector).toBeGreaterThan(43);
    expect(withShortConnector).toBeLessThanOrEqual(45);
    const withBriefRole = await lifetimeMin("brief-role", "dan@example.com");
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

/**
 * The outside review's SSO attacks, on a proxy of their own (each login
 * spends the per-address login budget, which the tests above use up).
 */
describe("OIDC identities and edges", () => {
  let cluster: TestCluster;
  let idp: OidcIdp;
  let browser: Browser;

  beforeAll(async () => {
    cluster = await startCluster();
    await cluster.admin.call("POST", "/v1/admin/resources", { text: "kind: role\nversion: v7\nmetadata: {name: azure-cli-access}\nspec: {allow: {app_labels: {'*': '*'}}}\n" });
    idp = await startOidcIdp({ redirectUri: `https://127.0.0.1:${cluster.proxy.port}/v1/webapi/oidc/callback`, accounts: ACCOUNTS });
    await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector(idp, "corp", cluster.proxy.port)) });
    browser = await launchBrowser();
  }, 60_000);
  afterAll(() => stopAll(browser, idp, cluster));

  /** The outcome a signed-in attempt's loopback received: a code, or the proxy's error. */
  async function outcomeOf(connectorName: string, login: string, opts: { ttlMs?: number } = {}) {
    const attempt = await startRawAttempt(cluster, connectorName, opts);
    const { context, page } = await freshPage(browser);
    try {
      await signIn(page, attempt.auth_url, login);
      await expect.poll(() => attempt.arrived.length, { timeout: 15_000 }).toBe(1);
      const url = attempt.arrived[0];
      const code = url.searchParams.get("code");
      return { error: url.searchParams.get("error"), cert: code ? await attempt.pickup(code) : null, keyPem: attempt.keyPem };
    } finally {
      await context.close();
      await attempt.close();
    }
  }

  const loginEvents = async (since: number) =>
    ((await cluster.admin.call<{ items: { event: string; user?: string; success?: boolean; error?: string; subject?: string; idp_user?: string; time: string }[] }>("GET", "/v1/admin/audit?event=user.login")).items).filter((e) => Date.parse(e.time) >= since);

  it("never merges two people into one user name: a name azgate would have to rewrite is refused with what to change, whoever signs in first; one name across connectors is refused too", async () => {
    const since = Date.now() - 1000;
    // ops/lead@ is not a user name azgate allows: refused with the connector's field to change, not cleaned into ops_lead@.
    const first = await outcomeOf("corp", "ops/lead@example.com");
    expect(first.cert).toBeNull();
    expect(first.error).toContain(`oidc connector "corp" names this user "ops/lead@example.com", which is not an azgate user name`);
    expect(first.error).toContain(`Ask an administrator to set connector "corp"'s username_claim (now "email") to a claim whose values are such names`);
    expect(await loginEvents(since)).toContainEqual(expect.objectContaining({ success: false, idp_user: "ops/lead@example.com", error: "the identity provider's user name is not an azgate user name", subject: expect.stringMatching(/:ops\/lead@example.com$/) }));
    // So the person whose name it is signs in as themselves, with their own roles, after the other tried first.
    const second = await outcomeOf("corp", "ops_lead@example.com");
    expect(second.error).toBeNull();
    expect(second.cert!.user).toBe("ops_lead@example.com");
    const whoami = await new ApiClient(cluster.target, { keyPem: second.keyPem, certPem: second.cert!.cert_pem }).call<{ name: string; roles: string[] }>("GET", "/v1/whoami");
    expect(whoami).toMatchObject({ name: "ops_lead@example.com", roles: ["access", "azure-cli-access"] });
    const stored = (await cluster.admin.call<{ items: { spec: { created_by: { connector: { subject: string } } }; status: { id: string } }[] }>("GET", "/v1/admin/resources/user/ops_lead@example.com")).items[0];
    expect(stored.spec.created_by.connector.subject).toMatch(/:ops_lead@example.com$/);

    // The same person through another connector (same IdP, same subject) is another identity: refused.
    await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector(idp, "corp2", cluster.proxy.port)) });
    const other = await outcomeOf("corp2", "ops_lead@example.com");
    expect(other.error).toMatch(/the user name "ops_lead@example.com" is in use by another person's sign-in \(oidc connector "corp"\)/);
    expect((await loginEvents(since)).filter((e) => e.user === "ops_lead@example.com" && e.success === false)).toEqual([expect.objectContaining({ error: "user name held by another SSO identity" })]);
  });

  it("a later short login of the same person does not cut the earlier session short", async () => {
    const long = await outcomeOf("corp", "erin@example.com");
    const longEnd = new x509.X509Certificate(long.cert!.cert_pem).notAfter.getTime();
    const short = await outcomeOf("corp", "erin@example.com", { ttlMs: 120_000 });
    expect(new x509.X509Certificate(short.cert!.cert_pem).notAfter.getTime()).toBeLessThan(longEnd - 3_600_000);
    const record = (await cluster.admin.call<{ items: { metadata: { expires: string }; status: { id: string } }[] }>("GET", "/v1/admin/resources/user/erin@example.com")).items[0];
    expect(Math.abs(Date.parse(record.metadata.expires) - longEnd)).toBeLessThan(2000);
  });

  it("counts email_verified only as boolean true, and keeps a 300 kB claim out of the certificate", async () => {
    const since = Date.now() - 1000;
    const unverified = await outcomeOf("corp", "unverified@example.com");
    expect(unverified.cert).toBeNull();
    expect(unverified.error).toContain("the email unverified@example.com is not verified by the identity provider");
    expect(await loginEvents(since)).toContainEqual(expect.objectContaining({ success: false, error: expect.stringContaining("is not verified") }));

    const big = await outcomeOf("corp", "big@example.com");
    expect(big.error).toBeNull();
    expect(big.cert!.cert_pem.length).toBeLessThan(8 * 1024);
    expect(big.cert!.cert_pem).not.toContain("x".repeat(1000));
  });

  it("refuses an ID token issued in the future (an IdP whose clock runs 10 minutes ahead)", async () => {
    const since = Date.now() - 1000;
    const realNow = Date.now;
    const attempt = await startRawAttempt(cluster, "corp");
    const { context, page } = await freshPage(browser);
    try {
      // The IdP runs in this process: its clock, and so the token's iat, is moved ahead while it signs.
      Date.now = () => realNow() + 600_000;
      await signIn(page, attempt.auth_url, "carol@example.com");
      await expect.poll(() => attempt.arrived.length, { timeout: 15_000 }).toBe(1);
    } finally {
      Date.now = realNow;
      await context.close();
      await attempt.close();
    }
    expect(attempt.arrived[0].searchParams.get("code")).toBeNull();
    expect(attempt.arrived[0].searchParams.get("error")).toMatch(/ID token was issued in the future/);
    expect(await loginEvents(since)).toContainEqual(expect.objectContaining({ success: false, error: expect.stringMatching(/issued in the future/) }));
  });

  it("the CLI's loopback callback escapes what it is sent: a page that calls it cannot drive the terminal", async () => {
    const home = tempDir("azgate-home-");
    const login = await startSsoLogin(cluster, home, "corp");
    try {
      // With --browser none the CLI names its loopback address (for pasting); a local web page could find it by scanning.
      const portOf = () => /http:\/\/127\.0\.0\.1:(\d+)\/callback/.exec(login.output())?.[1];
      await expect.poll(portOf).toBeTruthy();
      const port = portOf()!;
      const hostile = "\u001b]0;owned\u0007\u001b]52;c;ZXZpbA==\u0007<script>alert(1)</script>";
      const page = await fetch(`http://127.0.0.1:${port}/callback?error=${encodeURIComponent(hostile)}`);
      const html = await page.text();
      expect(html).not.toContain("<script>");
      expect(html).toContain("&#60;script&#62;");
      const res = await login.done;
      expect(res.code).toBe(1);
      expect(res.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/);
      expect(res.stderr).toContain("ERROR: \\u001b]0;owned\\u0007");
    } finally {
      await login.cancel();
    }
  });

  it("bounds the SSO edges: the client's redirect, the SAML ACS body, and the callbacks' rate (runs last: it spends this address's callback budget)", async () => {
    const api = new ApiClient(cluster.target);
    const keys = await generateKeyPair();
    const start = { connector: "corp", public_key_pem: await publicKeyToPem(keys.publicKey), secret_hash: "a".repeat(64) };
    // Loopback is not enough: another local service's port and path would receive the browser (and the code).
    for (const redirect_url of ["http://127.0.0.1:8080/anything", "http://localhost:8080/callback", "http://127.0.0.1/callback"]) {
      await expect(api.call("POST", "/v1/sso/login", { ...start, redirect_url }), redirect_url).rejects.toThrow(/redirect_url must be http:\/\/127.0.0.1:PORT\/callback/);
    }
    // A 128 MB SAML "response" is refused by its Content-Length, before it is read.
    const huge = await rawHttps(cluster, "POST", "/v1/webapi/saml/acs/corp", { "content-type": "application/x-www-form-urlencoded", "content-length": String(128 * 1024 * 1024) }, "SAMLResponse=x");
    expect(huge.status).toBe(413);
    // Without a Content-Length, by counting: 1 MiB streamed in chunks.
    const chunked = await rawHttps(cluster, "POST", "/v1/webapi/saml/acs/corp", { "content-type": "application/x-www-form-urlencoded", "transfer-encoding": "chunked" }, "SAMLResponse=" + "x".repeat(1024 * 1024));
    expect(chunked.status).toBe(413);
    // A flood of callbacks is cut off (each one costs the proxy a round trip to the IdP).
    const statuses: number[] = [];
    for (let i = 0; i < 65; i++) statuses.push((await rawHttps(cluster, "GET", `/v1/webapi/oidc/callback?state=${i}&code=x`, {})).status);
    expect(new Set(statuses)).toEqual(new Set([403, 429]));
    expect(statuses.at(-1)).toBe(429);
  });
});

describe("OIDC login attempts expire", () => {
  it("refuses a login finished after the attempt's time is up", async () => {
    const cluster = await startCluster({ env: { AZGATE_SSO_LOGIN_TIMEOUT: "1s" } });
    const idp = await startOidcIdp({ redirectUri: `https://127.0.0.1:${cluster.proxy.port}/v1/webapi/oidc/callback`, accounts: ACCOUNTS });
    const browser = await launchBrowser();
    try {
      await cluster.admin.call("POST", "/v1/admin/resources", { text: "kind: role\nversion: v7\nmetadata: {name: azure-cli-access}\nspec: {allow: {app_labels: {'*': '*'}}}\n" });
      await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector(idp, "corp", cluster.proxy.port)) });
      const attempt = await startRawAttempt(cluster, "corp");
      // The attempt's life is real time in the proxy's process (1 s, the shortest): let it pass.
      await new Promise((r) => setTimeout(r, 1_500));
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

/** One HTTPS request to the proxy with exactly these headers (what a browser or an attacker sends). */
function rawHttps(cluster: TestCluster, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: "127.0.0.1", port: cluster.proxy.port, method, path, headers, ca: cluster.target.ca_pem, servername: "localhost", agent: false }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}
