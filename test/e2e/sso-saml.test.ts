/**
 * SAML single sign-on end to end: the real CLI and proxy, a SAML identity
 * provider built on samlify (IdP mode) on loopback, and headless Chromium
 * typing into its login page. Signed assertions only; audience, recipient,
 * request binding and replay are checked.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, startClusterWithAgent, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, tempDir } from "../helpers/azgate.ts";
import { freshPage, launchBrowser, textOf } from "../helpers/browser.ts";
import { startSamlIdp, type Misbehaviour, type SamlIdp } from "../helpers/idp-saml.ts";
import { startRawAttempt, startSsoLogin, waitForCallback } from "../helpers/sso.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");

async function signIn(page: Page, url: string, user: string, password: string): Promise<void> {
  await page.goto(url);
  await page.fill('input[name="username"]', user);
  await page.fill('input[name="password"]', password);
  await page.click("#sign-in");
  await page.click("#continue");
}

describe("SAML login", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let idp: SamlIdp;
  let browser: Browser;
  let acs = "";

  /** One CLI login through the IdP with the IdP misbehaving as asked; the CLI's result. */
  async function loginAs(user: string, password: string, misbehave: Misbehaviour = "none", home = tempDir("azgate-home-")) {
    idp.misbehave = misbehave;
    try {
      const login = await startSsoLogin(cluster, home, "mysaml");
      const { context, page } = await freshPage(browser);
      await signIn(page, login.url, user, password);
      await waitForCallback(page);
      const shown = await textOf(page, "#result");
      await context.close();
      return { ...(await login.done), shown, home };
    } finally {
      idp.misbehave = "none";
    }
  }

  beforeAll(async () => {
    ({ cluster, agent } = await startClusterWithAgent(fx, ["azure-cli-access-external.yaml"]));
    acs = `https://127.0.0.1:${cluster.proxy.port}/v1/webapi/saml/acs/mysaml`;
    idp = await startSamlIdp({
      acs,
      accounts: {
        "alice@example.com": { password: "alice's IdP password", attributes: { groups: ["azure-users"], azure_identities: [READER] } },
        "bob@example.com": { password: "bob's IdP password", attributes: { groups: ["staff"] } },
      },
    });
    const connector = {
      kind: "saml",
      version: "v2",
      metadata: { name: "mysaml" },
      spec: {
        display: "Corporate SAML",
        acs,
        entity_descriptor_url: idp.metadataUrl,
        attributes_to_roles: [{ name: "groups", value: "azure-users", roles: ["access", "azure-cli-access"] }],
      },
    };
    await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector) });
    browser = await launchBrowser();
  }, 60_000);
  afterAll(() => stopAll(browser, idp, agent, cluster));

  it("signs alice in from a signed assertion, with her attributes as traits, and apps login honours them", async () => {
    const res = await loginAs("alice@example.com", "alice's IdP password");
    expect(res.shown).toMatch(/Login successful/);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/Logged in as:\s+alice@example.com/);
    const status = JSON.parse((await cli(["status", "--format", "json"], { home: res.home })).stdout).active;
    expect(status.roles).toEqual(["access", "azure-cli-access"]);
    expect(status.azure_identities).toEqual([READER]);
    expect((await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"], { home: res.home })).code).toBe(0);
    expect((await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-contributor"], { home: res.home })).code).toBe(1);
    const users = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "users", "ls"], { home: tempDir() });
    expect(users.stdout).toMatch(/alice@example.com\s+access,azure-cli-access\s+\S+\s+sso: saml\/mysaml until/);
  });

  it("refuses an unsigned assertion", async () => {
    const res = await loginAs("alice@example.com", "alice's IdP password", "unsigned");
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/SAML response was refused: .*(signature|signed)/i);
  });

  it("refuses an assertion changed after it was signed", async () => {
    const res = await loginAs("alice@example.com", "alice's IdP password", "tampered");
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/SAML response was refused: .*signature/i);
  });

  it("refuses an assertion for another audience", async () => {
    const res = await loginAs("alice@example.com", "alice's IdP password", "other-audience");
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/SAML response was refused: .*audience/i);
  });

  it("refuses an assertion for another recipient", async () => {
    const res = await loginAs("alice@example.com", "alice's IdP password", "other-recipient");
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/recipient https:\/\/elsewhere.example.com\/acs/);
  });

  it("refuses an assertion outside its time window", async () => {
    const res = await loginAs("alice@example.com", "alice's IdP password", "expired");
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/SAML response was refused: .*(expired|NotOnOrAfter|subject confirmation)/i);
  });

  it("refuses a replayed assertion, under its own attempt or another's", async () => {
    const ok = await loginAs("alice@example.com", "alice's IdP password");
    expect(ok.code).toBe(0);
    const used = idp.posted.at(-1)!;
    const other = await startRawAttempt(cluster, "mysaml");
    try {
      const { context, page } = await freshPage(browser);
      const post = async (relayState: string) => {
        await page.setContent(`<form method="post" action="${acs}"><input name="SAMLResponse" value="${used.samlResponse}"><input name="RelayState" value="${relayState}"><button id="go">go</button></form>`);
        await page.click("#go");
        await page.waitForLoadState();
      };
      await post(used.relayState);
      expect(await textOf(page, "#error")).toMatch(/unknown, used or expired/);
      await post(other.attempt);
      await expect.poll(() => other.arrived.length, { timeout: 15_000 }).toBe(1);
      expect(other.arrived[0].searchParams.get("code")).toBeNull();
      expect(other.arrived[0].searchParams.get("error")).toMatch(/SAML response was refused: InResponseTo is not valid/);
      await context.close();
    } finally {
      await other.close();
    }
  });

  it("refuses a user whose attributes map to no role, with a clear message", async () => {
    const res = await loginAs("bob@example.com", "bob's IdP password");
    expect(res.code).toBe(1);
    expect(res.shown).toMatch(/Login failed/);
    expect(res.stderr).toContain('user "bob@example.com" signed in with saml connector "mysaml", but nothing they have maps to a role; ask an administrator to check the connector\'s attributes_to_roles');
  });
});
