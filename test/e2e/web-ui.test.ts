/**
 * The web UI in headless Chromium against a real proxy, agent and the real
 * az: sign-in (password, and OTP on a cluster that requires it), My access
 * showing exactly what the roles allow, a reviewer approving in the browser
 * so the requester's running `azgate proxy azure` gets through, a CSRF
 * attempt from another origin refused, and a lock ending a browser session
 * on the next click. With AZGATE_SCREENSHOTS=1 the pages are saved to
 * docs/screenshots/ (docs/web-ui.md shows two).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http from "node:http";
import path from "node:path";
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import type { Browser, Page } from "playwright-core";
import { TOTP, Secret } from "otpauth";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, ROOT, spawnAgent, startCluster, workstationHome, type AgentProcess, type TestCluster } from "../helpers/cluster.ts";
import { cli, startCli, tempDir, type LongRunningCli } from "../helpers/azgate.ts";
import { runCommand } from "../helpers/run.ts";
import { freshPage, launchBrowser } from "../helpers/browser.ts";
import { ApiClient } from "../../src/api/client.ts";
import { signInAtIdp, startOidcIdp, type OidcIdp } from "../helpers/idp-oidc.ts";
import { startSsoLogin, waitForCallback } from "../helpers/sso.ts";
import { stopAll } from "../helpers/stop.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const CONTRIB = IDENTITY("teleport-contributor");
const SHOTS = process.env.AZGATE_SCREENSHOTS ? path.join(ROOT, "docs/screenshots") : tempDir("azgate-shots-");
const ROLES = [
  `kind: role\nversion: v7\nmetadata: {name: both}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    azure_identities: ["${READER}", "${CONTRIB}"]\n`,
  `kind: role\nversion: v7\nmetadata: {name: no-contributor}\nspec:\n  deny:\n    azure_identities: ["${CONTRIB}"]\n`,
  `kind: role\nversion: v7\nmetadata: {name: requester}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    request:\n      azure_identities: ["${READER}"]\n      max_duration: 1h\n      reason: {mode: required}\n`,
  `kind: role\nversion: v7\nmetadata: {name: reviewer}\nspec:\n  allow:\n    app_labels: {"*": "*"}\n    review_requests:\n      azure_identities: ["${READER}"]\n`,
];
const PASSWORD = (name: string) => `correct horse battery ${name}`;
const LOCKED_FLASH = "Your session has ended: a lock is in force for you. Sign in again once an administrator lifts it.";

async function signIn(page: Page, base: string, user: string, otp?: string) {
  await page.goto(`${base}/web`);
  await page.waitForURL(/\/web\/login$/);
  await page.fill("input[name=user]", user);
  await page.fill("input[name=password]", PASSWORD(user));
  if (otp) await page.fill("input[name=otp]", otp);
  await page.click("button[type=submit]");
}
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

describe("web UI", () => {
  let cluster: TestCluster;
  let agent: AgentProcess;
  let browser: Browser;
  let base: string;
  let proxy: LongRunningCli | undefined;
  let approvedId = "";
  const homes = new Map<string, string>();
  const as = (user: string, args: string[]) => cli(args, { home: homes.get(user)!, env: { HOME: homes.get(user)! } });
  const audit = async (event: string) => (await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", `/v1/admin/audit?event=${event}`)).items.filter((e) => e.event === event);

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    cluster = await startCluster();
    base = `https://127.0.0.1:${cluster.proxy.port}`;
    agent = spawnAgent({ proxy: cluster.proxy, fx, token: await cluster.joinToken() });
    await agent.waitFor(/tunnel to .* is up/);
    for (const text of ROLES) await cluster.admin.call("POST", "/v1/admin/resources", { text });
    for (const [name, roles] of [["alice", ["requester"]], ["bob", ["reviewer"]], ["carol", ["both", "no-contributor"]], ["dave", ["auditor"]], ["ed", ["editor"]]] as const) {
      homes.set(name, await workstationHome(cluster, await cluster.user(name, [...roles])));
    }
    browser = await launchBrowser();
  }, 180_000);
  afterAll(() => stopAll(browser, proxy, agent, cluster));

  it("My access shows exactly the identities the roles allow: a deny role hides one; what one may request, with its commands", async () => {
    const { context, page } = await freshPage(browser);
    await signIn(page, base, "carol");
    await page.waitForURL(/\/web$/);
    const card = page.locator("section.card", { hasText: "azure-cli" });
    const allowed = await card.locator("ul.identities > li > b").allTextContents();
    expect(allowed).toEqual(["teleport-reader"]);
    expect(await card.textContent()).not.toContain("teleport-contributor");
    expect(await card.locator("code").allTextContents()).toContain("azgate apps login azure-cli --azure-identity teleport-reader");
    await shot(page, "my-access");
    // Readable on a phone: nothing wider than the screen, so no sideways scrolling.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await shot(page, "my-access-phone");
    await context.close();

    const alice = await freshPage(browser);
    await signIn(alice.page, base, "alice");
    await alice.page.waitForURL(/\/web$/);
    expect(await alice.page.locator("ul.identities > li").count()).toBe(0);
    expect(await alice.page.locator("ul.requestable > li > b").allTextContents()).toEqual(["teleport-reader"]);
    await alice.context.close();
  });

  it("a reviewer approves in the browser and the requester's running proxy azure gets through on the next az group list", async () => {
    // alice had access once (approved on the CLI), so her proxy azure runs; revoked, az is refused.
    const first = /^Request ID:\s+(\S+)$/m.exec((await as("alice", ["request", "create", "--azure-identity", "teleport-reader", "--for", "10m", "--reason", "first", "--nowait"])).stdout)![1];
    expect((await as("bob", ["request", "approve", first])).code).toBe(0);
    expect((await as("alice", ["apps", "login", "azure-cli", "--azure-identity", "teleport-reader"])).code).toBe(0);
    proxy = await startCli(["proxy", "azure", "--format", "unix"], { home: homes.get("alice")!, env: { HOME: homes.get("alice")! }, ready: /export NODE_EXTRA_CA_CERTS=.*\n/ });
    const exports = proxy.output().split("\n").filter((l) => l.startsWith("export ")).join("\n");
    const az = () => runCommand("/bin/sh", ["-c", `${exports}\naz group list -o json --only-show-errors`], { HOME: homes.get("alice")!, PATH: process.env.PATH! });
    expect((await as("bob", ["request", "revoke", first])).code).toBe(0);
    expect((await az()).code).not.toBe(0);

    // alice asks in the browser...
    const a = await freshPage(browser);
    await signIn(a.page, base, "alice");
    await a.page.goto(`${base}/web/requests/new`);
    await a.page.fill("input[name=duration]", "10m");
    await a.page.fill("textarea[name=reason]", "incident 12 from the browser");
    await shot(a.page, "new-request");
    await a.page.click("form[action='/web/requests'] button[type=submit]");
    await a.page.waitForURL(/\/web\/requests\/[0-9a-f-]{36}\?ok=request_created$/);
    const id = /\/web\/requests\/([0-9a-f-]{36})/.exec(a.page.url())![1];
    approvedId = id;
    // The flash is the code's fixed text (web/flash.ts); the page itself says the state.
    expect(await a.page.locator(".flash").textContent()).toBe("Request created.");
    expect(await a.page.locator("tr:has(th:text-is('State')) td > span").first().textContent()).toBe("PENDING");

    // ...bob sees it in his inbox and approves, with a reason.
    // ...bob follows the link a notification carries: signed out, he signs in and lands on the request.
    const b = await freshPage(browser);
    await b.page.goto(`${base}/web/requests/${id}`);
    await b.page.waitForURL(`${base}/web/login?next=${encodeURIComponent(`/web/requests/${id}`)}`);
    await b.page.fill("input[name=user]", "bob");
    await b.page.fill("input[name=password]", PASSWORD("bob"));
    await b.page.click("button[type=submit]");
    await b.page.waitForURL(`${base}/web/requests/${id}`);
    // Signed in, the link from a chat or mail client (another site: no Strict cookie on the first hop) lands on the page.
    const chat = http.createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(`<a id=l href="${base}/web/requests/${id}">open the request</a>`));
    await new Promise<void>((r) => chat.listen(0, "127.0.0.1", r));
    await b.page.goto(`http://127.0.0.1:${(chat.address() as AddressInfo).port}/`);
    await b.page.click("#l");
    await b.page.waitForURL(`${base}/web/requests/${id}?hop=1`);
    chat.close();
    expect(await b.page.locator("h1").textContent()).toBe(`Request ${id}`);
    await b.page.goto(`${base}/web/requests`);
    expect(await b.page.locator(`a[href="/web/requests/${id}"]`).count()).toBe(1);
    await shot(b.page, "requests");
    await b.page.click(`a[href="/web/requests/${id}"]`);
    await shot(b.page, "review");
    await b.page.fill("textarea[name=reason]", "ok for incident 12");
    await b.page.click("button[value=APPROVED]");
    await b.page.waitForURL(/\?ok=reviewed$/);
    expect(await b.page.locator(".flash").textContent()).toBe("Review recorded.");
    expect(await b.page.locator("tr:has(th:text-is('State')) td > span").first().textContent()).toBe("APPROVED");
    const after = await az();
    expect(after.code, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout).map((g: { name: string }) => g.name)).toContain("myResourceGroup");
    expect(await audit("access_request.approve")).toContainEqual(expect.objectContaining({ user: "bob", access_request_id: id, reason: "ok for incident 12" }));
    await a.page.goto(`${base}/web`);
    await shot(a.page, "my-access-grant");
    expect(await a.page.locator("ul.identities > li").first().textContent()).toMatch(/granted by request .* left/);
    await a.context.close();
    await b.context.close();
  }, 120_000);

  it("the audit page filters by user, identity, status and request, matching admin audit ls for the same filter; exports it; only for auditors", async () => {
    const d = await freshPage(browser);
    await signIn(d.page, base, "dave");
    await d.page.waitForURL(/\/web$/);
    const pageEvents = async () => (await d.page.locator("table.audit pre").allTextContents()).map((t) => JSON.parse(t) as Record<string, unknown>);
    const cliEvents = async (flags: string[]) => JSON.parse((await cli(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "ls", ...flags, "--format", "json"], { home: homes.get("dave")! })).stdout) as Record<string, unknown>[];
    const filters: [Record<string, string>, string[]][] = [
      [{ user: "alice", identity: READER, status: "200" }, ["--user", "alice", "--identity", READER, "--status", "200"]],
      [{ request: approvedId }, ["--request", approvedId]],
      [{ event: "app.request.denied", user: "alice" }, ["--event", "app.request.denied", "--user", "alice"]],
    ];
    // One request through azgate (x-azgate-request-id): its start and its end.
    const oneRequest = String((await cliEvents(["--request", approvedId, "--event", "app.request"]))[0].request_id);
    filters.push([{ request_id: oneRequest }, ["--request-id", oneRequest]]);
    for (const [query, flags] of filters) {
      await d.page.goto(`${base}/web/audit?${new URLSearchParams(query)}`);
      const shown = await pageEvents();
      const listed = await cliEvents(flags);
      expect(shown.length, JSON.stringify(query)).toBeGreaterThan(0);
      expect(shown).toEqual([...listed].reverse());
    }
    // Page 2 is the next 50 back from the newest, exactly (no event skipped or repeated between pages).
    const until = new Date().toISOString();
    await d.page.goto(`${base}/web/audit?until=${until}&page=2`);
    const second = await pageEvents();
    const newest = [...(await cliEvents(["--until", until, "--limit", "100"]))].reverse();
    expect(newest.length).toBeGreaterThan(50);
    expect(second).toEqual(newest.slice(50, 100));
    // The form itself: type a filter, search.
    await d.page.goto(`${base}/web/audit`);
    await d.page.fill("input[name=user]", "alice");
    await d.page.fill("input[name=status]", "200");
    await d.page.click("form[action='/web/audit'] button[type=submit]");
    await d.page.waitForURL(/user=alice/);
    expect((await pageEvents()).every((e) => e.user === "alice" && e.status === 200)).toBe(true);
    await shot(d.page, "audit");
    const exported = await d.context.request.get(`${base}/web/audit/export?format=jsonl&request=${approvedId}`);
    expect(exported.headers()["content-disposition"]).toContain("azgate-audit.jsonl");
    expect((await exported.text()).trim().split("\n").map((l) => JSON.parse(l))).toEqual(await cliEvents(["--request", approvedId]));
    const csv = await (await d.context.request.get(`${base}/web/audit/export?format=csv&request=${approvedId}`)).text();
    expect(csv.split("\r\n")[0]).toMatch(/^time,event,code,user,app,azure_identity/);

    // By command (issue 32): the same rows as admin audit commands, each linking to its requests.
    const cliCommands = JSON.parse((await cli(["admin", "--data-dir", cluster.proxy.dataDir, "audit", "commands", "--user", "alice", "--format", "json"], { home: homes.get("dave")! })).stdout) as { command: string | null; requests: number; result: string; id: string; session_id: string }[];
    expect(cliCommands.some((r) => r.command === "az group list")).toBe(true);
    await d.page.click("a[href='/web/audit/commands']");
    await d.page.fill("input[name=user]", "alice");
    await d.page.click("form[action='/web/audit/commands'] button[type=submit]");
    await d.page.waitForURL(/\/web\/audit\/commands\?.*user=alice/);
    const shownRows = await d.page.locator("table.commands tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent?.trim() ?? "")));
    expect(shownRows.map((r) => [r[3], r[5], r[7]])).toEqual(cliCommands.map((r) => [r.command ?? expect.any(String), String(r.requests), r.result]));
    const listRow = cliCommands.find((r) => r.command === "az group list")!;
    await d.page.locator("table.commands a", { hasText: "az group list" }).first().click();
    await d.page.waitForURL(/\/web\/audit\?session=.*&command=/);
    const ofCommand = await pageEvents();
    expect(ofCommand.length).toBeGreaterThan(0);
    expect(ofCommand.every((e) => (e.client as { command?: string }).command === "group list" && e.user === "alice")).toBe(true);
    expect(new Set(ofCommand.map((e) => e.request_id)).size).toBe(listRow.requests);
    await shot(d.page, "audit-commands");
    await d.context.close();

    const a = await freshPage(browser);
    await signIn(a.page, base, "alice");
    await a.page.waitForURL(/\/web$/);
    expect(await a.page.locator("nav a[href='/web/audit']").count()).toBe(0);
    const refused = await a.page.goto(`${base}/web/audit`);
    expect(refused?.status()).toBe(403);
    // A refused GET says a fixed text for its code (a link's words never reach the page); the audit event has the rule.
    expect(await a.page.locator(".flash.error").textContent()).toBe("Your roles do not open this page.");
    expect(await audit("web.request.denied")).toContainEqual(expect.objectContaining({ user: "alice", method: "GET", path: "/web/audit", error_code: "access_denied", reason: 'access denied to perform action "list" on "event"', success: false }));
    expect((await a.page.goto(`${base}/web/audit/commands`))?.status()).toBe(403);
    await a.context.close();
  });

  it("refuses a state-changing request from another origin or without the form's token, and audits it", async () => {
    const id = /Request ID:\s+(\S+)/.exec((await as("alice", ["request", "create", "--azure-identity", "teleport-reader", "--for", "5m", "--reason", "csrf target", "--nowait"])).stdout)![1];
    const b = await freshPage(browser);
    await signIn(b.page, base, "bob");
    await b.page.waitForURL(/\/web$/);
    // A page on another origin that bob happens to open, auto-submitting an approval.
    const evil = http.createServer((_req, res) =>
      res.writeHead(200, { "content-type": "text/html" }).end(`<form id=f method=post action="${base}/web/requests/${id}/review"><input name=state value=APPROVED><input name=reason value=pwned></form><script>document.getElementById("f").submit()</script>`),
    );
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", r));
    await b.page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
    await b.page.waitForLoadState("networkidle");
    evil.close();
    // With the cookie and bob's own origin but no token, or with another origin: refused either way.
    const noToken = await b.context.request.post(`${base}/web/requests/${id}/review`, { form: { state: "APPROVED", reason: "x" }, headers: { origin: base }, maxRedirects: 0 });
    expect(noToken.status()).toBe(403);
    const otherOrigin = await b.context.request.post(`${base}/web/requests/${id}/review`, { form: { state: "APPROVED", reason: "x" }, headers: { origin: "https://evil.example" }, maxRedirects: 0 });
    expect(otherOrigin.status()).toBe(403);
    expect(JSON.parse((await as("alice", ["request", "show", id, "--format", "json"])).stdout).spec.state).toBe("PENDING");
    expect((await audit("web.request.denied")).filter((e) => e.user === "bob").length).toBeGreaterThanOrEqual(2);
    await b.context.close();
  });

  it("a locked user's browser session ends on the next click, audited; sign out ends it too", async () => {
    const c = await freshPage(browser);
    await signIn(c.page, base, "carol");
    await c.page.waitForURL(/\/web$/);
    await cluster.admin.call("POST", "/v1/admin/locks", { target: { user: "carol" }, message: "suspicious activity" });
    await c.page.click("nav a[href='/web/requests']");
    await c.page.waitForURL(/\/web\/login\?error=locked$/);
    // The page says so in fixed words (never text from the URL); the lock's own message is in the audit event.
    expect(await c.page.locator(".flash").textContent()).toBe(LOCKED_FLASH);
    expect(await audit("web.session.end")).toContainEqual(expect.objectContaining({ user: "carol", error_code: "locked", why: `lock targeting user:"carol" is in force: suspicious activity` }));
    // The cookie is gone: the pages do not come back once the lock is lifted, only a new sign-in does.
    await c.page.goto(`${base}/web`);
    await c.page.waitForURL(/\/web\/login/);
    await c.context.close();

    // A next= that points elsewhere is ignored: sign-in lands on our own page.
    const b = await freshPage(browser);
    await b.page.goto(`${base}/web/login?next=${encodeURIComponent("//evil.example/web/")}`);
    await b.page.fill("input[name=user]", "bob");
    await b.page.fill("input[name=password]", PASSWORD("bob"));
    await b.page.click("button[type=submit]");
    await b.page.waitForURL(`${base}/web`);
    await b.page.click("header form button[type=submit]");
    await b.page.waitForURL(/\/web\/login\?ok=signed_out$/);
    await b.page.goto(`${base}/web/requests`);
    await b.page.waitForURL(/\/web\/login\?next=%2Fweb%2Frequests$/);
    await b.context.close();
  });

  it("admin pages: users, roles as YAML, agents with their apps; an editor locks a user there (their browser session ends) and lifts it; nothing for others", async () => {
    const victim = await freshPage(browser);
    await signIn(victim.page, base, "dave");
    await victim.page.waitForURL(/\/web$/);
    const e = await freshPage(browser);
    await signIn(e.page, base, "ed");
    await e.page.waitForURL(/\/web$/);
    await e.page.click("nav a[href='/web/admin']");
    expect(await e.page.locator("table.users td:first-child").allTextContents()).toEqual(expect.arrayContaining(["alice", "bob", "carol", "dave", "ed"]));
    await e.page.click("details.role summary:has-text('requester')");
    expect(await e.page.locator("details.role[open] pre").textContent()).toContain("      reason:\n        mode: required");
    expect(await e.page.locator("table.agents td:first-child").allTextContents()).toContain("azure-cli");
    await shot(e.page, "admin");
    await e.page.selectOption("select[name=kind]", "user");
    await e.page.fill("input[name=value]", "dave");
    await e.page.fill("input[name=message]", "leaving the company");
    await e.page.click("form[action='/web/admin/locks'] button[type=submit]");
    await e.page.waitForURL(/\/web\/admin\?ok=lock_created$/);
    expect(await audit("lock.created")).toContainEqual(expect.objectContaining({ user: "ed" }));
    await victim.page.click("nav a[href='/web/audit']");
    await victim.page.waitForURL(/\/web\/login\?error=locked$/);
    expect(await victim.page.locator(".flash").textContent()).toBe(LOCKED_FLASH);
    expect(await audit("web.session.end")).toContainEqual(expect.objectContaining({ user: "dave", error_code: "locked", why: `lock targeting user:"dave" is in force: leaving the company` }));
    await e.page.click("table.locks tr:has-text('user=dave') button");
    await e.page.waitForURL(/\/web\/admin\?ok=lock_lifted$/);
    expect(await e.page.locator("table.locks tr:has-text('user=dave')").count()).toBe(0);
    await e.context.close();
    await victim.context.close();

    const a = await freshPage(browser);
    await signIn(a.page, base, "alice");
    await a.page.waitForURL(/\/web$/);
    expect(await a.page.locator("nav a[href='/web/admin']").count()).toBe(0);
    await a.page.goto(`${base}/web/admin`);
    expect(await a.page.locator("main").textContent()).toContain("Your roles give you nothing to administer.");
    const forged = await a.context.request.post(`${base}/web/admin/locks`, { form: { kind: "user", value: "bob", _csrf: await a.page.locator("header input[name=_csrf]").inputValue() }, headers: { origin: base }, maxRedirects: 0 });
    expect(forged.status()).toBe(403);
    expect(await audit("web.request.denied")).toContainEqual(expect.objectContaining({ user: "alice", method: "POST", path: "/web/admin/locks", error_code: "access_denied" }));
    expect((await audit("lock.created")).filter((e) => e.user === "alice")).toEqual([]);
    await a.context.close();
  });

  it("an invited user sets a password on the invite page and signs in to the web UI from there", async () => {
    const { invite_token } = await cluster.admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name: "gina", roles: ["both"], traits: {} });
    const { page, context } = await freshPage(browser);
    await page.goto(`${base}/web/invite/${invite_token}`);
    await page.fill("input[name=password]", PASSWORD("gina"));
    await page.fill("input[name=password_confirm]", PASSWORD("gina"));
    await page.click("button[type=submit]");
    await page.click("a[href='/web/login']");
    await page.fill("input[name=user]", "gina");
    await page.fill("input[name=password]", PASSWORD("gina"));
    await page.click("button[type=submit]");
    await page.waitForURL(`${base}/web`);
    expect((await page.locator("ul.identities > li > b").allTextContents()).sort()).toEqual(["teleport-contributor", "teleport-reader"]);
    await context.close();
  });
});

describe("web UI sign-in with OTP, and with OIDC", () => {
  let cluster: TestCluster;
  let browser: Browser;
  let idp: OidcIdp;
  beforeAll(async () => {
    cluster = await startCluster({ args: ["--second-factor", "otp"] });
    await cluster.admin.call("POST", "/v1/admin/resources", { text: ROLES[0] });
    idp = await startOidcIdp({ redirectUri: `https://127.0.0.1:${cluster.proxy.port}/v1/webapi/oidc/callback`, accounts: { "frank@example.com": { email: "frank@example.com", email_verified: true, groups: ["azure-users"] } } });
    const connector = { kind: "oidc", version: "v3", metadata: { name: "corp" }, spec: { display: "Corporate SSO", issuer_url: idp.issuer, client_id: idp.clientId, client_secret: idp.clientSecret, redirect_url: `https://127.0.0.1:${cluster.proxy.port}/v1/webapi/oidc/callback`, scope: ["groups"], claims_to_roles: [{ claim: "groups", value: "azure-*", roles: ["both"] }] } };
    await cluster.admin.call("POST", "/v1/admin/resources", { text: JSON.stringify(connector) });
    browser = await launchBrowser();
  }, 120_000);
  afterAll(() => stopAll(browser, idp, cluster));

  it("signs in through the OIDC provider from the sign-in page's button; a callback finished in another browser is refused", async () => {
    const base = `https://127.0.0.1:${cluster.proxy.port}`;
    // An attacker starts a sign-in and sends the provider's URL to a victim: it ends in the victim's browser, refused.
    const attacker = await freshPage(browser);
    const started = await attacker.context.request.get(`${base}/web/sso/oidc/corp`, { maxRedirects: 0 });
    const lure = started.headers().location;
    expect(lure.startsWith(idp.issuer)).toBe(true);
    const victim = await freshPage(browser);
    await victim.page.goto(lure);
    await signInAtIdp(victim.page, "frank@example.com");
    await victim.page.waitForURL(/\/web\/login\?error=sso_attempt_invalid$/);
    expect(await victim.page.locator(".flash.error").textContent()).toBe("This sign-in was started in another browser, or it expired or was already used: start it again here.");
    const loginEvents = async () => (await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", "/v1/admin/audit?event=user.login")).items;
    expect(await loginEvents()).toContainEqual(expect.objectContaining({ method: "oidc", via: "web", success: false, error: "this sign-in was started in another browser; start it again here" }));
    expect((await loginEvents()).filter((e) => e.user === "frank@example.com" && e.success)).toEqual([]);
    await attacker.context.close();
    await victim.context.close();

    const { page, context } = await freshPage(browser);
    await page.goto(`${base}/web/login`);
    expect(await page.locator("a.sso").textContent()).toBe("Corporate SSO");
    await page.click("a.sso");
    await signInAtIdp(page, "frank@example.com");
    await page.waitForURL(`${base}/web`);
    expect(await page.locator("h1").textContent()).toBe("My access");
    expect(await page.locator("header form .muted").textContent()).toBe("frank@example.com");
    const logins = (await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", "/v1/admin/audit?event=user.login")).items.filter((e) => e.user === "frank@example.com");
    expect(logins.at(-1)).toMatchObject({ success: true, method: "oidc", via: "web" });
    await context.close();
  });

  it("the CLI's browser sign-in signs in the CLI only: its last page links to the web UI, which asks that browser to sign in", async () => {
    const base = `https://127.0.0.1:${cluster.proxy.port}`;
    const login = await startSsoLogin(cluster, tempDir("azgate-home-"), "corp");
    const { page, context } = await freshPage(browser);
    await page.goto(login.url);
    await signInAtIdp(page, "frank@example.com");
    await waitForCallback(page);
    expect((await login.done).code).toBe(0);
    // The callback planted no session: its link works in any browser, so one would be a login CSRF (an attacker's own
    // link signing a victim's browser in as the attacker).
    expect((await context.cookies(base)).map((c) => c.name)).not.toContain("__Host-azgate_session");
    await page.click("#web-ui");
    await page.waitForURL(/\/web\/login/);
    expect(await page.locator("a.sso").textContent()).toBe("Corporate SSO");
    await context.close();
  });

  it("signs in with password and authenticator code; a wrong code is refused with the one message for every failure", async () => {
    const base = `https://127.0.0.1:${cluster.proxy.port}`;
    const { invite_token } = await cluster.admin.call<{ invite_token: string }>("POST", "/v1/admin/users", { name: "erin", roles: ["both"], traits: {} });
    const secret = new Secret({ size: 20 }).base32;
    const totp = new TOTP({ secret: Secret.fromBase32(secret), digits: 6, period: 30 });
    await new ApiClient(cluster.target).call("POST", `/v1/invites/${invite_token}/accept`, { password: PASSWORD("erin"), otp_secret: secret, otp_code: totp.generate() });
    const { page, context } = await freshPage(browser);
    await signIn(page, base, "erin", "000000");
    expect(await page.locator(".flash.error").textContent()).toBe("invalid user name, password or second factor");
    await shot(page, "sign-in");
    // The next period's code: the invite used this one, and a code is good once.
    await page.fill("input[name=user]", "erin");
    await page.fill("input[name=password]", PASSWORD("erin"));
    await page.fill("input[name=otp]", totp.generate({ timestamp: Date.now() + 30_000 }));
    await page.click("button[type=submit]");
    await page.waitForURL(/\/web$/);
    expect(await page.locator("h1").textContent()).toBe("My access");
    const events = (await cluster.admin.call<{ items: Record<string, unknown>[] }>("GET", "/v1/admin/audit?event=user.login")).items.filter((e) => e.user === "erin");
    // Both say they came through the web UI (a refusal too, since the lockout counts each attempt before it is judged: lockout.ts).
    expect(events.map((e) => [e.success, e.via])).toEqual([
      [false, "web"],
      [true, "web"],
    ]);
    await context.close();
  });
});
