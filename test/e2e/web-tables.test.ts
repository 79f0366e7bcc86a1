/**
 * The web UI's tables as a person reads them, in headless Chromium at 1280
 * and 390 px (issue 31, item 4): the audit log, the admin tables and the
 * request lists, measured in the browser. A cell whose text wraps inside a
 * token fails; a time takes one line in a column of one width; a cell cut to
 * its column carries its whole value on hover (title); the audit log is one
 * row per event; nothing scrolls sideways. Times and deadlines read relative
 * to the proxy's clock ("in 58 min"), which the test moves (a fake clock:
 * the proxy runs in process on a memory cluster, served over HTTPS for the
 * browser), and the countdowns run from the time the page was given, not
 * the browser's. Screenshots go to AZGATE_SCREENSHOTS's docs/screenshots.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import path from "node:path";
import { mkdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, ROOT } from "../helpers/cluster.ts";
import { tempDir } from "../helpers/azgate.ts";
import { startMemoryCluster, type MemoryCluster } from "../helpers/memory-cluster.ts";
import { serveWebUi } from "../helpers/web-server.ts";
import { freshPage, launchBrowser } from "../helpers/browser.ts";
import { createRequest, reviewRequest } from "../../src/proxy/access-requests.ts";
import { createLock } from "../../src/proxy/locks.ts";
import { servedApps } from "../../src/proxy/registry.ts";
import { relativeTime } from "../../src/util/relative-time.ts";

const fx = useEmulator({ projectToken: true });
const READER = IDENTITY("teleport-reader");
const CONTRIB = IDENTITY("teleport-contributor");
const SHOTS = process.env.AZGATE_SCREENSHOTS ? path.join(ROOT, "docs/screenshots") : tempDir("azgate-shots-");
const GROUPS = "https://management.azure.com/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups?api-version=2022-09-01";
/** Long names and values, as real clusters have them. */
const OPS = "platform-engineering-oncall@example.com";
const ROLES = `kind: role
version: v7
metadata: {name: azure-cli-access}
spec: {allow: {app_labels: {'*': '*'}, azure_identities: ['{{internal.azure_identities}}']}}
---
kind: role
version: v7
metadata: {name: requester-for-the-production-subscription}
spec: {allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${READER}', '${CONTRIB}'], max_duration: 2h}}}
---
kind: role
version: v7
metadata: {name: reviewer-of-every-production-identity}
spec: {allow: {review_requests: {azure_identities: ['${READER}', '${CONTRIB}']}}}
`;
const WIDTHS = [1280, 390] as const;

/**
 * What is wrong with the page's tables, measured per character
 * in the browser: a line break inside a token, a time on more than one line,
 * time columns of different widths, a cut cell without its whole value in
 * its title, a page wider than the screen.
 */
function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const problems: string[] = [];
    const visible = (el: Element) => el.getClientRects().length > 0 && getComputedStyle(el).display !== "none";
    for (const table of document.querySelectorAll("main table")) {
      const timeWidths = new Set<number>();
      for (const cell of table.querySelectorAll("th, td")) {
        if (!visible(cell)) continue;
        const shown = (cell.textContent ?? "").trim().replace(/\s+/g, " ").slice(0, 60);
        const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT, { acceptNode: (n) => (n.parentElement?.closest(".pop") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT) });
        // A character starts a new line when it lies below the current line (smaller text on one line sits lower, but overlaps it).
        let prev: { ch: string } | null = null;
        let line: { top: number; bottom: number } | null = null;
        let lines = 0;
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          const text = n.textContent ?? "";
          for (let i = 0; i < text.length; i++) {
            const range = document.createRange();
            range.setStart(n, i);
            range.setEnd(n, i + 1);
            const rect = range.getClientRects()[0];
            if (!rect || rect.height === 0) continue;
            const newLine = !line || rect.top >= line.bottom - 1;
            if (newLine) {
              if (line && prev && /\S/.test(text[i]) && /\S/.test(prev.ch)) problems.push(`a line breaks inside a token in "${shown}" before "${text.slice(i, i + 12)}"`);
              line = { top: rect.top, bottom: rect.bottom };
              lines++;
            } else line = { top: Math.min(line!.top, rect.top), bottom: Math.max(line!.bottom, rect.bottom) };
            prev = { ch: text[i] };
          }
        }
        if (cell.classList.contains("time")) {
          if (lines > 1) problems.push(`a time on ${lines} lines: "${shown}"`);
          if ((cell as HTMLElement).scrollWidth > (cell as HTMLElement).clientWidth + 1) problems.push(`a time cut short by its column: "${shown}"`);
          timeWidths.add(Math.round(cell.getBoundingClientRect().width));
        }
        const el = cell as HTMLElement;
        if (el.scrollWidth > el.clientWidth + 1 && !(el.title && el.title.trim().length >= Math.min(shown.length, 8))) problems.push(`cut without its whole value on hover: "${shown}"`);
      }
      if (timeWidths.size > 1) problems.push(`time cells of ${timeWidths.size} widths in table.${[...table.classList].join(".")}: ${[...timeWidths].join(", ")}`);
    }
    if (document.documentElement.scrollWidth > window.innerWidth) problems.push(`the page is ${document.documentElement.scrollWidth} px wide on a ${window.innerWidth} px screen`);
    return problems;
  });
}

describe("web UI tables, at desktop and phone widths", () => {
  let c: MemoryCluster;
  let web: Awaited<ReturnType<typeof serveWebUi>>;
  let browser: Browser;
  let pendingId = "";
  let approvedId = "";
  let pendingDeadline = 0;
  let grantEnds = 0;
  let lockExpires = 0;

  async function signIn(page: Page, user: string) {
    await page.goto(`${web.base}/web/login`);
    await page.fill("input[name=user]", user);
    await page.fill("input[name=password]", `correct horse battery ${user}`);
    await page.click("button[type=submit]");
    await page.waitForURL(`${web.base}/web`);
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    c = await startMemoryCluster(fx);
    await c.createRoles(ROLES);
    c.agent();
    // Traffic: requests through azgate, access requests (one approved, one pending), a lock with a TTL.
    const app = await c.appSession("carol", ["azure-cli-access"], READER);
    for (let i = 0; i < 12; i++) expect((await app.request(GROUPS)).status).toBe(200);
    const { caller: requester } = await c.signIn("dave-from-the-data-platform-team", ["requester-for-the-production-subscription"], {});
    const { caller: reviewer } = await c.signIn(OPS, ["reviewer-of-every-production-identity", "auditor", "editor"], {});
    const approved = await createRequest(c.ctx, requester, { app: "azure-cli", azure_identity: READER, duration: "1h", reason: "INC-20417: restore the reporting database after the failed migration of last night" }, servedApps(c.registry));
    approvedId = (await reviewRequest(c.ctx, reviewer, approved.metadata.name, { state: "APPROVED", reason: "on call" })).metadata.name;
    grantEnds = c.clock.now() + 3_600_000;
    const pending = await createRequest(c.ctx, requester, { app: "azure-cli", azure_identity: CONTRIB, duration: "2h", reason: "CHG-88121: rotate the storage account keys (scheduled change)" }, servedApps(c.registry));
    pendingId = pending.metadata.name;
    pendingDeadline = Date.parse(pending.spec.review_deadline);
    const lock = await createLock(c.ctx, c.admin, { target: { user: "carol" }, ttl: "1h", message: "suspicious sign-ins from an unknown address range; talk to security before lifting" });
    lockExpires = Date.parse(lock.metadata.expires!);
    // The proxy's clock moves on; the browser's does not know it.
    c.clock.advance(30 * 60_000 + 2 * 60_000);
    c.agent();
    web = await serveWebUi(c.ctx, c.registry);
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await web?.close();
    await c?.close();
  });

  for (const width of WIDTHS) {
    it(`at ${width} px: no cell wraps inside a token, times take one line in one width, cut cells carry their value, one row per event`, async () => {
      const { page, context } = await freshPage(browser);
      await page.setViewportSize({ width, height: 900 });
      await signIn(page, OPS);
      for (const [where, name] of [["/web/audit", "audit"], ["/web/admin", "admin"], ["/web/requests", "requests"]] as const) {
        await page.goto(`${web.base}${where}`);
        await shot(page, `table-${name}-${width}`);
        expect(await layoutProblems(page), `${where} at ${width} px`).toEqual([]);
      }
      await page.goto(`${web.base}/web/audit`);
      const rows = await page.locator("table.audit > tbody > tr").count();
      expect(rows).toBeGreaterThan(20);
      // One row per event: each row holds its event's whole record (opened from its last cell).
      expect(await page.locator("table.audit > tbody > tr pre").count()).toBe(rows);
      const heights = await page.locator("table.audit > tbody > tr").evaluateAll((trs) => trs.map((tr) => tr.getBoundingClientRect().height));
      expect(Math.max(...heights)).toBeLessThan(44);
      // The whole record opens over the rows below, and the table keeps its rows.
      await page.locator("table.audit > tbody > tr").first().locator("summary").click();
      expect(await page.locator("table.audit > tbody > tr").first().locator(".pop pre").isVisible()).toBe(true);
      expect(await page.locator("table.audit > tbody > tr").count()).toBe(rows);
      await shot(page, `table-audit-open-${width}`);
      await context.close();
    });
  }

  it("times and deadlines read relative to the proxy's clock; countdowns run from the time the page was given", async () => {
    const now = c.clock.now();
    const { page, context } = await freshPage(browser);
    await signIn(page, OPS);
    await page.goto(`${web.base}/web/audit`);
    // The lock was made 32 minutes ago by the proxy's clock; this sign-in now.
    expect(await page.locator(`table.audit > tbody > tr:has(td[title="lock.created"]) td.time .rel`).first().textContent()).toBe("32 min ago");
    expect(await page.locator(`table.audit > tbody > tr:has(td[title="web.session.start"]) td.time .rel`).first().textContent()).toBe("now");
    await page.goto(`${web.base}/web/admin`);
    expect(await page.locator("table.locks td.time .rel").first().textContent()).toBe(relativeTime(lockExpires, now));
    expect(relativeTime(lockExpires, now)).toBe("in 28 min");
    await page.goto(`${web.base}/web/requests`);
    expect(await page.locator(`tr:has(a[href="/web/requests/${pendingId}"]) .rel`).first().textContent()).toBe(relativeTime(pendingDeadline, now));
    await page.goto(`${web.base}/web/requests/${pendingId}`);
    expect(await page.locator("tr:has(th:text-is('Review deadline')) .rel").textContent()).toBe(`(${relativeTime(pendingDeadline, now)})`);
    expect(relativeTime(pendingDeadline, now)).toBe("in 28 min");
    // The grant's countdown: 28 minutes left by the proxy's clock (the browser's would say about 60).
    await page.goto(`${web.base}/web/requests/${approvedId}`);
    expect(relativeTime(grantEnds, now)).toBe("in 28 min");
    expect(await page.locator("[data-until]").first().textContent()).toMatch(/^(27m5\d|28m0)s left$/);
    await context.close();
  });
});
