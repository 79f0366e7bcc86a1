/**
 * GitHub single sign-on end to end: the real CLI and proxy, a GitHub double
 * (GitHub itself cannot run here), Chromium at its login page. Teams pick
 * roles; GitHub has no custom claims, so {{external.azure_identities}} gives
 * GitHub users nothing and identities come from static role lists.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, startClusterWithAgent, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, tempDir } from "../helpers/azgate.ts";
import { freshPage, launchBrowser, textOf } from "../helpers/browser.ts";
import { startGithubDouble, type GithubDouble } from "../helpers/github-double.ts";
import { startSsoLogin, waitForCallback } from "../helpers/sso.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");

describe("GitHub login", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let github: GithubDouble;
  let browser: Browser;

  async function loginAs(login: string, password: string) {
    const home = tempDir("azgate-home-");
    const pending = await startSsoLogin(cluster, home, "github");
    const { context, page } = await freshPage(browser);
    await page.goto(pending.url);
    await page.fill('input[name="login"]', login);
    await page.fill('input[name="password"]', password);
    await page.click("#sign-in");
    await waitForCallback(page);
    const shown = await textOf(page, "#result");
    await context.close();
    return { ...(await pending.done), shown, home };
  }

  beforeAll(async () => {
    ({ cluster, agent } = await startClusterWithAgent(fx, ["azure-cli-access-external.yaml"]));
    github = await startGithubDouble({
      accounts: {
        carol: { password: "carol's github password", teams: [{ organization: "octocats", team: "azure-admins" }, { organization: "octocats", team: "devs" }] },
        dave: { password: "dave's github password", teams: [{ organization: "other-org", team: "azure-admins" }] },
      },
    });
    const staticRole = { kind: "role", version: "v7", metadata: { name: "azure-reader-static" }, spec: { allow: { app_labels: { "*": "*" }, azure_identities: [READER] } } };
    await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(staticRole) });
    const connector = {
      kind: "github",
      version: "v3",
      metadata: { name: "github" },
      spec: {
        client_id: github.clientId,
        client_secret: github.clientSecret,
        redirect_url: `https://127.0.0.1:${cluster.proxy.port}/v1/webapi/github/callback`,
        endpoint_url: github.url,
        api_endpoint_url: github.apiUrl,
        teams_to_roles: [
          { organization: "octocats", team: "azure-admins", roles: ["azure-reader-static"] },
          { organization: "octocats", team: "devs", roles: ["access", "azure-cli-access"] },
        ],
      },
    };
    await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector) });
    browser = await launchBrowser();
  }, 60_000);
  afterAll(() => stopAll(browser, github, agent, cluster));

  it("maps carol's teams to roles; her identities come from the static role, none from {{external...}}", async () => {
    const res = await loginAs("carol", "carol's github password");
    expect(res.shown).toMatch(/Login successful/);
    expect(res.code, res.stderr).toBe(0);
    const status = JSON.parse((await cli(["status", "--format", "json"], { home: res.home })).stdout).active;
    expect(status.username).toBe("carol");
    expect(status.roles).toEqual(["azure-reader-static", "access", "azure-cli-access"]);
    expect(status.azure_identities).toEqual([READER]);
    expect(status.traits.github_teams).toEqual(["octocats/azure-admins", "octocats/devs"]);
    expect(status.traits.azure_identities).toBeUndefined();
    expect((await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"], { home: res.home })).code).toBe(0);
    expect((await cli(["apps", "login", "azure-cli", "--azure-identity", "teleport-contributor"], { home: res.home })).code).toBe(1);
    const users = await cli(["admin", "--data-dir", cluster.proxy.dataDir, "users", "ls"], { home: tempDir() });
    expect(users.stdout).toMatch(/carol\s+azure-reader-static,access,azure-cli-access\s+-\s+sso: github\/github until/);
  });

  it("--browser none: a browser on another machine ends at an address that is pasted into the terminal", async () => {
    const home = tempDir("azgate-home-");
    const pending = await startSsoLogin(cluster, home, "github");
    const { context, page } = await freshPage(browser);
    // That browser cannot reach this machine's loopback: the redirects after the GitHub
    // login are followed by hand up to the loopback address, which is shown as unreachable.
    let unreachable = "";
    await page.route((u) => u.pathname === "/session", async (route) => {
      const toProxy = (await route.fetch({ maxRedirects: 0 })).headers()["location"];
      const toLoopback = (await page.request.get(toProxy, { maxRedirects: 0 })).headers()["location"];
      unreachable = toLoopback;
      return route.fulfill({ status: 502, contentType: "text/html", body: "<p>This site can't be reached</p>" });
    });
    await page.goto(pending.url);
    await page.fill('input[name="login"]', "carol");
    await page.fill('input[name="password"]', "carol's github password");
    await page.click("#sign-in");
    await expect.poll(() => unreachable, { timeout: 15_000 }).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/);
    await context.close();
    pending.type("not an address");
    pending.type(unreachable);
    const res = await pending.done;
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toContain("paste that address here");
    expect(res.stdout).toMatch(/Logged in as:\s+carol/);
  });

  it("refuses a user in no mapped team (same team name, other organization)", async () => {
    const res = await loginAs("dave", "dave's github password");
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('user "dave" signed in with github connector "github", but nothing they have maps to a role; ask an administrator to check the connector\'s teams_to_roles');
  });
});
