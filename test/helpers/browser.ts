/**
 * Headless Debian Chromium driven by playwright-core, for the SSO tests:
 * a person's browser, typing into identity providers' real login pages.
 * The proxy's certificate comes from the test cluster's own CA, so HTTPS
 * errors are ignored in this throwaway browser (and only here).
 */
import { existsSync } from "node:fs";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

export const CHROMIUM = process.env.AZGATE_CHROMIUM ?? "/usr/bin/chromium";

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium (.ci/run does)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** A fresh profile (no cookies from earlier logins). */
export async function freshPage(browser: Browser): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  return { context, page: await context.newPage() };
}

/** The link `azgate login --auth` prints for the browser. */
export function loginUrlFrom(stderr: string): string | null {
  return /open it by clicking on the link:\n (\S+)/.exec(stderr)?.[1] ?? null;
}

/** The text of the first element matching `selector`, once it is there. */
export async function textOf(page: Page, selector: string): Promise<string> {
  return (await page.locator(selector).first().textContent({ timeout: 15_000 })) ?? "";
}

/** Records the browser's requests to `path` (redirect hops included, which page.route cannot see). */
export function recordRequests(page: Page, path: string): string[] {
  const seen: string[] = [];
  page.on("request", (r) => {
    if (new URL(r.url()).pathname === path) seen.push(r.url());
  });
  return seen;
}
