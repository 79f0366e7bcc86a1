/**
 * Passkeys in a real browser (issue 36): Debian's headless Chromium with a
 * virtual authenticator (Chrome DevTools Protocol WebAuthn domain), against a
 * proxy process at a host name (WebAuthn refuses IP addresses and pages with
 * certificate errors: the browser is told the proxy's key instead). A user
 * signs in with a password, registers a passkey on the Passkeys page, signs
 * out, and signs in with the password and the passkey.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { createHash } from "node:crypto";
import tls from "node:tls";
import { existsSync } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import { CHROMIUM } from "../helpers/browser.ts";
import { startCluster, type TestCluster } from "../helpers/cluster.ts";
import { freePort } from "../helpers/tls-front.ts";
import { stopAll } from "../helpers/stop.ts";
import type { AuditEvent } from "../../src/audit/sink.ts";

const HOST = "proxy.azgate.test";

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

describe("passkeys in the web UI", () => {
  let cluster: TestCluster;
  let browser: Browser;
  let base: string;
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found`);
    const port = await freePort();
    cluster = await startCluster({ args: ["--public-addr", `${HOST}:${port}`], port });
    base = `https://${HOST}:${port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", `--host-resolver-rules=MAP ${HOST} 127.0.0.1`, `--ignore-certificate-errors-spki-list=${await spkiOf(port)}`],
    });
  });
  afterAll(async () => {
    await browser?.close();
    await stopAll(cluster);
  });

  it("registers a passkey with Chromium's virtual authenticator, then signs in with the password and the passkey", async () => {
    await cluster.user("alice", ["access"]);
    const context = await browser.newContext();
    const page = await context.newPage();
    const seen: string[] = [];
    page.on("console", (m) => seen.push(`console ${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => seen.push(`pageerror: ${e.message}`));
    onTestFailed(() => console.error(seen.join("\n")));
    const cdp = await context.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", { options: { protocol: "ctap2", transport: "internal", hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true } });

    await page.goto(`${base}/web/login`);
    await page.fill("input[name=user]", "alice");
    await page.fill("input[name=password]", "correct horse battery alice");
    await page.click("button[type=submit]");
    await page.waitForURL(`${base}/web`);
    await page.click("a[href='/web/keys']");
    await page.fill("input[name=name]", "laptop");
    await page.click("form[data-passkey-register] button[type=submit]");
    await page.waitForURL(/\/web\/keys\?ok=passkey_added/);
    expect(await page.locator("table tbody tr td").first().textContent()).toBe("laptop");
    const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
    expect(credentials).toHaveLength(1);

    await page.click("form[action='/web/logout'] button");
    await page.waitForURL(/\/web\/login/);
    await page.click("a[href^='/web/login/passkey']");
    await page.fill("input[name=user]", "alice");
    await page.fill("input[name=password]", "correct horse battery alice");
    await page.click("form[data-passkey-login] button[type=submit]");
    await page.waitForURL(`${base}/web`);
    expect(await page.locator("header .muted").last().textContent()).toBe("alice");
    const signCount = (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials[0].signCount;
    expect(signCount).toBeGreaterThanOrEqual(1);

    const { items } = await cluster.admin.call<{ items: AuditEvent[] }>("GET", "/v1/admin/audit?user=alice");
    expect(items.filter((e) => e.event === "mfa.add")).toEqual([expect.objectContaining({ device: "laptop" })]);
    expect(items.filter((e) => e.event === "user.login" && e.second_factor === "webauthn" && e.success)).toHaveLength(1);
    await context.close();
  });
});
