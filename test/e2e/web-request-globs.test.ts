/**
 * The web UI's access requests with a glob in `request.azure_identities`
 * (the README's form), in headless Chromium (issue 31, item 2): My access and
 * the New request page offer the identities the glob matches, by name (the
 * agent lists them from the emulator's ARM), and a request made there stores
 * the full ID. The attack: a form posting a short name that is one
 * requestable and one non-requestable identity (the world holds a second
 * `teleport-reader` in resource group `production`) is refused as ambiguous,
 * listing both, audited, and nothing is stored. The proxy runs in process on
 * a memory cluster (fake clock), served over HTTPS for the browser.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { parse, stringify } from "yaml";
import type { Browser, Page } from "playwright-core";
import { useEmulator } from "../helpers/emulator.ts";
import { IDENTITY, SUB } from "../helpers/cluster.ts";
import { tempDir } from "../helpers/azgate.ts";
import { startMemoryCluster, type MemoryCluster } from "../helpers/memory-cluster.ts";
import { serveWebUi } from "../helpers/web-server.ts";
import { freshPage, launchBrowser } from "../helpers/browser.ts";
import { DEFAULT_WORLD_YAML } from "../../src/emulator/default-world.ts";
import { KEYS } from "../../src/proxy/keys.ts";
import type { AccessRequest } from "../../src/resources/access-request.ts";

const worldFile = path.join(tempDir("azgate-world-"), "world.yaml");
{
  const world = parse(DEFAULT_WORLD_YAML);
  world.identities.push({ subscription: SUB, resource_group: "production", name: "teleport-reader", client_id: "00000000-0000-4000-8000-000000000030", principal_id: "10000000-0000-4000-8000-000000000030", federated_credentials: [] });
  writeFileSync(worldFile, stringify(world));
}
const fx = useEmulator({ projectToken: true, worldFile });
const READER = IDENTITY("teleport-reader");
const CONTRIB = IDENTITY("teleport-contributor");
const PROD_READER = `/subscriptions/${SUB}/resourceGroups/production/providers/Microsoft.ManagedIdentity/userAssignedIdentities/teleport-reader`;
const GLOB = "/subscriptions/*/resourceGroups/myResourceGroup/providers/Microsoft.ManagedIdentity/userAssignedIdentities/*";
const ROLES = `kind: role
version: v7
metadata: {name: requester}
spec:
  allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${GLOB}'], max_duration: 2h}}
  deny: {request: {azure_identities: ['${IDENTITY("teleport-azure-cli-aks-agent")}']}}
`;

describe("web UI: requests for identities a glob matches", () => {
  let c: MemoryCluster;
  let web: Awaited<ReturnType<typeof serveWebUi>>;
  let browser: Browser;
  const stored = async () => (await c.ctx.backend.list<AccessRequest>(KEYS.accessRequests)).map((i) => i.value);

  async function signIn(page: Page, user: string) {
    await page.goto(`${web.base}/web/login`);
    await page.fill("input[name=user]", user);
    await page.fill("input[name=password]", `correct horse battery ${user}`);
    await page.click("button[type=submit]");
    await page.waitForURL(`${web.base}/web`);
  }

  beforeAll(async () => {
    c = await startMemoryCluster(fx);
    await c.createRoles(ROLES);
    c.agent();
    await c.signIn("alice", ["requester"], {});
    web = await serveWebUi(c.ctx, c.registry);
    browser = await launchBrowser();
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await web?.close();
    await c?.close();
  });

  it("My access and New request offer the glob's identities by name (with their group); a request made there stores the full ID", async () => {
    const { page, context } = await freshPage(browser);
    await signIn(page, "alice");
    const card = page.locator("section.card", { hasText: "azure-cli" });
    expect(await card.locator("ul.requestable > li > b").allTextContents()).toEqual(["teleport-contributor", "teleport-reader"]);
    expect(await card.locator("ul.requestable > li .muted").allTextContents()).toEqual([CONTRIB, READER]);
    await page.goto(`${web.base}/web/requests`);
    await page.click("a.button[href='/web/requests/new']");
    await page.waitForURL(`${web.base}/web/requests/new`);
    const options = await page.locator("select[name=azure_identity] option").evaluateAll((os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent]));
    expect(options).toEqual([
      [CONTRIB, "teleport-contributor in myResourceGroup (up to 2h)"],
      [READER, "teleport-reader in myResourceGroup (up to 2h)"],
    ]);
    await page.selectOption("select[name=azure_identity]", CONTRIB);
    await page.fill("textarea[name=reason]", "deploy 12");
    await page.click("form[action='/web/requests'] button[type=submit]");
    await page.waitForURL(/\/web\/requests\/[0-9a-f-]{36}\?ok=request_created$/);
    expect(await page.locator("tr:has(th:text-is('Azure identity')) td .muted").textContent()).toBe(CONTRIB);
    await context.close();
  });

  it("the attack through the form: a short name that is one requestable and one non-requestable identity is refused, listing both, audited; nothing stored", async () => {
    const { page, context } = await freshPage(browser);
    await signIn(page, "alice");
    await page.goto(`${web.base}/web/requests/new`);
    const before = (await stored()).length;
    // What a hand-made form (or an old page) posts: the name alone.
    await page.evaluate(() => {
      const select = document.querySelector("select[name=azure_identity]")!;
      const input = document.createElement("input");
      input.name = "azure_identity";
      input.value = "teleport-reader";
      select.replaceWith(input);
    });
    await page.fill("textarea[name=reason]", "which one?");
    const [answer] = await Promise.all([page.waitForResponse((r) => r.url() === `${web.base}/web/requests` && r.request().method() === "POST"), page.click("form[action='/web/requests'] button[type=submit]")]);
    expect(answer.status()).toBe(400);
    const said = `"teleport-reader" names 2 Azure identities; give the full resource ID of the one you mean: ${[READER, PROD_READER].sort().join(", ")}`;
    expect(await page.locator(".flash.error").textContent()).toBe(said);
    expect((await stored()).length).toBe(before);
    const refused = (await c.ctx.audit.search({ event: "access_request.create" })).filter((e) => e.user === "alice" && e.success === false);
    expect(refused).toContainEqual(expect.objectContaining({ azure_identity: "teleport-reader", error_code: "bad_parameter", reason: said }));
    await context.close();
  });
});
