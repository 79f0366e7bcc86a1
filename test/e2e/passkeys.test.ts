/**
 * Passkeys in a real browser (issue 36): Debian's headless Chromium with a
 * virtual authenticator (Chrome DevTools Protocol WebAuthn domain), against a
 * proxy process at a host name (WebAuthn refuses IP addresses and pages with
 * certificate errors: the browser is told the proxy's key instead), a real
 * agent and the emulator, and the real CLI and az. The cluster signs in with
 * passkeys (auth.second_factor webauthn): the invite registers one, the web
 * UI signs in with it, `azgate login` goes through the browser, and a role
 * with require_session_mfa makes apps login and proxy azure ask for a fresh
 * check; az keeps working through proxy azure past the on-disk certificate's
 * minute (this file really waits for it: the certificate's end is the proxy's
 * real clock's).
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { createHash } from "node:crypto";
import tls from "node:tls";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from "playwright-core";
import { CHROMIUM } from "../helpers/browser.ts";
import { IDENTITY, SEED_DIR, spawnAgent, startCluster, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { useEmulator } from "../helpers/emulator.ts";
import { freePort } from "../helpers/tls-front.ts";
import { cli, parseExports, startCli, tempDir, type LongRunningCli } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";
import { stopAll } from "../helpers/stop.ts";
import { x509 } from "../../src/pki/x509.ts";
import { loadAppSession } from "../../src/client/app-store.ts";
import type { AuditEvent } from "../../src/audit/sink.ts";
import { ApiClient } from "../../src/api/client.ts";
import { generateKeyPair, publicKeyToPem } from "../../src/pki/keys.ts";

const fx = useEmulator({ projectToken: true });
const HOST = "proxy.azgate.test";
const READER = IDENTITY("teleport-reader");
const PASSWORD = "correct horse battery alice";
const MFA_ROLE = `kind: role
version: v7
metadata: {name: prod-mfa}
spec:
  allow: {app_labels: {'*': '*'}, azure_identities: ['${READER}']}
  options: {require_session_mfa: true}
`;

/** The proxy's TLS key as Chromium's --ignore-certificate-errors-spki-list wants it. */
function spkiOf(port: number): Promise<string> {
  return new Promise((ok, fail) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: HOST, rejectUnauthorized: false }, () => {
      const spki = s.getPeerX509Certificate()!.publicKey.export({ type: "spki", format: "der" });
      s.end();
      ok(createHash("sha256").update(spki).digest("base64"));
    });
    s.once("error", fail);
  });
}

describe("passkeys: the web UI, the CLI through the browser, per-session MFA", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let cdp: CDPSession;
  let base: string;
  /** The workstation: its azgate home, and a $BROWSER that writes down each URL the CLI opens (the test is the person at the browser). */
  const home = tempDir("azgate-home-");
  const opened = path.join(home, "opened.txt");
  const browserScript = path.join(home, "browser.sh");
  const env = { HOME: home, BROWSER: browserScript };
  const seen: string[] = [];

  /** The n-th URL the CLI opened (1-based), once it is there. */
  async function nthOpened(n: number): Promise<string> {
    await expect.poll(() => (existsSync(opened) ? readFileSync(opened, "utf8").trim().split("\n").filter(Boolean).length : 0), { timeout: 30_000 }).toBeGreaterThanOrEqual(n);
    return readFileSync(opened, "utf8").trim().split("\n")[n - 1];
  }
  /** The person confirms the CLI's step on the page it opened; the browser ends at the CLI's loopback. */
  async function confirmInBrowser(url: string, fill?: () => Promise<void>) {
    seen.push(`confirm ${url}`);
    await page.goto(url);
    await fill?.();
    await page.click("form[data-passkey-get] button[type=submit]");
    await page.waitForURL(/^http:\/\/127\.0\.0\.1:\d+\/callback\?code=/);
  }
  const audit = async (event: string) => (await cluster.admin.call<{ items: AuditEvent[] }>("GET", `/v1/admin/audit?event=${event}&user=alice`)).items;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found`);
    writeFileSync(browserScript, `#!/bin/sh\necho "$1" >> ${opened}\n`);
    chmodSync(browserScript, 0o755);
    const port = await freePort();
    cluster = await startCluster({ args: ["--public-addr", `${HOST}:${port}`, "--second-factor", "webauthn"], port });
    base = `https://${HOST}:${port}`;
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    await cluster.admin.call("POST", "/v1/admin/resources", { text: readFileSync(path.join(SEED_DIR, "azure-cli-access-internal.yaml"), "utf8") });
    await cluster.admin.call("POST", "/v1/admin/resources", { text: MFA_ROLE });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", `--host-resolver-rules=MAP ${HOST} 127.0.0.1`, `--ignore-certificate-errors-spki-list=${await spkiOf(port)}`],
    });
    context = await browser.newContext();
    page = await context.newPage();
    page.on("console", (m) => seen.push(`console ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => seen.push(`pageerror: ${e.message}`));
    cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", { options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true } });
  });
  afterAll(async () => {
    await browser?.close();
    await stopAll(agent, cluster);
  });

  it("the invite registers a passkey; the web UI signs in with the password and the passkey, and a password alone is refused", async () => {
    onTestFailed(() => console.error(seen.join("\n")));
    const { invite_token } = await cluster.admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name: "alice", roles: ["azure-cli-access", "prod-mfa"], traits: { azure_identities: [READER] } });
    // The CLI cannot register a passkey: it says to open the link.
    const refused = await cli(["users", "accept-invite", "--proxy", cluster.proxy.addr, "--ca-pin", cluster.proxy.pin, invite_token], { home: tempDir("azgate-home-") });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("open the invite link in a browser");

    await page.goto(`${base}/web/invite/${invite_token}`);
    await page.fill("input[name=password]", PASSWORD);
    await page.fill("input[name=password_confirm]", PASSWORD);
    await page.fill("input[name=name]", "laptop");
    await page.click("form[data-passkey-register] button[type=submit]");
    await page.waitForURL(/\/web\/login\/passkey\?ok=account_ready/);

    // The sign-in page offers the passkey only; a password alone (the CLI's API) is refused on this cluster.
    await page.goto(`${base}/web/login`);
    expect(await page.locator("form[action='/web/login']").count()).toBe(0);
    const refusedLogin = await new ApiClient(cluster.target).call("POST", "/v1/auth/login", { user: "alice", password: PASSWORD, public_key_pem: await publicKeyToPem((await generateKeyPair()).publicKey) }).catch((e) => e);
    expect(refusedLogin).toMatchObject({ code: "login_failed" });
    await page.click("a[href^='/web/login/passkey']");

    await page.waitForURL(/\/web\/login\/passkey/);
    await page.fill("input[name=user]", "alice");
    await page.fill("input[name=password]", PASSWORD);
    await page.click("form[data-passkey-get] button[type=submit]");
    await page.waitForURL(`${base}/web`);
    expect(await page.locator("header .muted").last().textContent()).toBe("alice");
    await page.click("a[href='/web/keys']");
    expect(await page.locator("table tbody tr td").first().textContent()).toBe("laptop");
    // A second one (a security key): the page asks the passkey alice has first, then registers the new one; then it is removed, with a check again.
    await cdp.send("WebAuthn.addVirtualAuthenticator", { options: { protocol: "ctap2", transport: "usb", hasResidentKey: false, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true } });
    await page.fill("input[name=name]", "yubikey");
    await page.click("form[data-passkey-register] button[type=submit]");
    await page.waitForURL(/\/web\/keys\?ok=passkey_added/);
    expect(await page.locator("table tbody tr td:first-child").allTextContents()).toEqual(["laptop", "yubikey"]);
    await page.locator("table tbody tr").nth(1).locator("button").click();
    await page.waitForURL(/\/web\/keys\?ok=passkey_removed/);
    expect(await page.locator("table tbody tr td:first-child").allTextContents()).toEqual(["laptop"]);

    expect((await audit("mfa.add")).filter((e) => e.event === "mfa.add").map((e) => e.device)).toEqual(["laptop", "yubikey"]);
    expect((await audit("mfa.delete")).map((e) => e.device)).toEqual(["yubikey"]);
    const logins = await audit("user.login");
    expect(logins.filter((e) => e.success === false).map((e) => e.error)).toContain("this user signs in with a passkey or security key (azgate login --mfa-mode browser, or the web UI's passkey sign-in)");
    expect(logins.filter((e) => e.success && e.second_factor === "webauthn")).toHaveLength(1);
  });

  it("azgate login goes through the browser: the password and the passkey there, the certificate back to the CLI", async () => {
    onTestFailed(() => console.error(seen.join("\n")));
    const login = cli(["login", "--proxy", cluster.proxy.addr, "--ca-pin", cluster.proxy.pin, "--user", "alice"], { home, env });
    await confirmInBrowser(await nthOpened(1), async () => {
      expect(await page.inputValue("input[name=user]")).toBe("alice");
      await page.fill("input[name=password]", PASSWORD);
    });
    const done = await login;
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toMatch(/Logged in as:\s+alice/);
    expect(await page.textContent("#result")).toBe("Login successful. You can close this window and return to the terminal.");
    const status = await cli(["status"], { home, env });
    expect(status.stdout).toMatch(/Logged in as:\s+alice/);
  });

  it("per-session MFA: apps login and proxy azure each ask the passkey; az works through proxy azure past the on-disk certificate's minute", async () => {
    onTestFailed(() => console.error(seen.join("\n")));
    const appsLogin = cli(["apps", "login", "azure-cli", "--azure-identity", READER], { home, env });
    const raced = await Promise.race([appsLogin, nthOpened(2)]);
    if (typeof raced !== "string") throw new Error(`apps login ended before it opened the browser: ${raced.code} ${raced.stderr}`);
    await confirmInBrowser(raced);
    seen.push("confirmed apps login");
    const logged = await appsLogin;
    seen.push(`apps login: ${logged.code} ${logged.stderr}`);
    expect(logged.code, logged.stderr).toBe(0);
    expect(logged.stderr).toContain('role "prod-mfa" (require_session_mfa) asks for a fresh check');
    const stored = (await loadAppSession({ proxy: cluster.proxy.addr, user: "alice", cluster: "e2e", ca_pem: cluster.target.ca_pem }, "azure-cli", home))!;
    const onDiskEnd = new x509.X509Certificate(stored.certPem).notAfter.getTime();
    expect(onDiskEnd - Date.now()).toBeLessThanOrEqual(60_000);

    const proxyStarted = startCli(["proxy", "azure", "--format", "unix"], { home, env, ready: /export NODE_EXTRA_CA_CERTS=.*\n/, timeoutMs: 60_000 });
    const url3 = await Promise.race([proxyStarted.then((p) => { throw new Error(`proxy azure was ready without asking: ${p.output()}`); }), nthOpened(3)]);
    await confirmInBrowser(url3);
    seen.push("confirmed proxy azure");
    const proxy: LongRunningCli = await proxyStarted;
    seen.push("proxy azure ready");
    try {
      const exportsText = proxy.output().split("\n").filter((l) => l.startsWith("export ")).join("\n");
      expect(parseExports(exportsText).HTTPS_PROXY).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const az = () => runCommand("/bin/sh", ["-c", `${exportsText}\naz group list -o json`], { HOME: home });
      const first = await az();
      seen.push(`az: ${first.code} ${first.stderr.slice(0, 500)}`);
      expect(first.code, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout).map((g: { name: string }) => g.name)).toContain("myResourceGroup");
      // Past the certificate on disk: it is expired, and az through the running proxy azure still works.
      await new Promise((r) => setTimeout(r, Math.max(0, onDiskEnd - Date.now() + 2_000)));
      expect(new x509.X509Certificate((await loadAppSession({ proxy: cluster.proxy.addr, user: "alice", cluster: "e2e", ca_pem: cluster.target.ca_pem }, "azure-cli", home))!.certPem).notAfter.getTime()).toBeLessThan(Date.now());
      const later = await az();
      expect(later.code, later.stderr).toBe(0);
      expect(JSON.parse(later.stdout).map((g: { name: string }) => g.name)).toContain("myResourceGroup");
    } finally {
      await proxy.stop();
    }
    const starts = await audit("app.session.start");
    expect(starts.map((e) => e.in_memory)).toEqual([false, true]);
    expect((await audit("mfa.used")).map((e) => e.purpose)).toEqual(["login", "manage", "manage", "login", "session", "session"]);
  }, 150_000);
});
