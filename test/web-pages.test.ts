/**
 * The proxy's web pages and login answers in process (the real API on the
 * real state, called with Hono's request(), no browser): the invite page's
 * security headers, flash messages named by code only, and what a locked-out
 * login tells an anonymous caller. The browser suite (test/e2e/web-ui.test.ts)
 * drives the same pages in Chromium.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { createApi } from "../src/proxy/api.ts";
import { AppRegistry } from "../src/proxy/registry.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser } from "../src/proxy/admin.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { createLock } from "../src/proxy/locks.ts";
import { addBot } from "../src/proxy/bots/admin.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import type { AuditEvent } from "../src/audit/sink.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";

const BASE = "https://proxy.example:3080";
const PASSWORD = (user: string) => `correct horse battery ${user}`;

let ctx: ProxyContext;
let close: () => Promise<void>;
let admin: Caller;
let api: ReturnType<typeof createApi>;
let users = 0;

beforeAll(async () => {
  const clock = new FakeClock();
  ({ ctx, close } = await openState(tempDir("azgate-web-"), { clusterName: "web", settings: settingsFrom(configSchema.parse({ auth: { second_factor: "off" } })), purpose: "web pages test", clock }));
  admin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
  api = createApi(ctx, { publicUrl: () => BASE, registry: new AppRegistry(clock, 45_000) });
});
afterAll(async () => close?.());

const get = (path: string, cookie?: string) => api.request(`${BASE}${path}`, { headers: { host: "proxy.example:3080", ...(cookie ? { cookie } : {}) } });
const postForm = (path: string, fields: Record<string, string>, cookie?: string) =>
  api.request(`${BASE}${path}`, { method: "POST", body: new URLSearchParams(fields).toString(), headers: { host: "proxy.example:3080", "content-type": "application/x-www-form-urlencoded", origin: BASE, "sec-fetch-site": "same-origin", ...(cookie ? { cookie } : {}) } });
const events = async (event: string, user: string): Promise<AuditEvent[]> => (await ctx.audit.search({ event })).filter((e) => e.event === event && e.user === user);

/** A user with a password (made, invited, signed up), and their invite token before it was used. */
async function newUser(roles: string[]): Promise<string> {
  const name = `user${++users}`;
  const { invite } = await addUser(ctx, admin, name, roles, {});
  await acceptInvite(ctx, invite.token, { password: PASSWORD(name) });
  return name;
}

/** Signed in to the web UI: the session cookie. */
async function webSession(user: string): Promise<string> {
  const res = await postForm("/web/login", { user, password: PASSWORD(user) });
  expect(res.status).toBe(303);
  return /__Host-azgate_session=[0-9a-f]+/.exec(res.headers.get("set-cookie") ?? "")![0];
}

describe("the invite page", () => {
  it("answers with the web UI's security headers (no framing, nothing inline), and sends no Referer", async () => {
    const { invite } = await addUser(ctx, admin, `invited${++users}`, ["access"], {});
    const invitePage = await get(`/web/invite/${invite.token}`);
    const webPage = await get("/web/login");
    expect(invitePage.status).toBe(200);
    expect(webPage.status).toBe(200);
    const headers = (res: Response) => Object.fromEntries([...res.headers].filter(([k]) => k !== "content-length"));
    // The same headers, but for a Referrer-Policy that is stricter still: the page's URL holds the invite's secret.
    expect(headers(invitePage)).toEqual({ ...headers(webPage), "referrer-policy": "no-referrer" });
    expect(invitePage.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(invitePage.headers.get("content-security-policy")).not.toContain("unsafe-inline");
    expect(invitePage.headers.get("x-frame-options")).toBe("DENY");
    const body = await invitePage.text();
    expect(body).toContain("Set up the account <b>invited");
    // Nothing inline that the policy would block: the styles come from the web UI's stylesheet.
    expect(body).not.toMatch(/<style|style=|<script>/);
    expect(body).toContain('<link rel="stylesheet" href="/web/assets/app.css">');
    // An invalid invite and a refused form answer with the same headers.
    const refused = await get("/web/invite/0000");
    expect(refused.status).toBe(401);
    expect(headers(refused)).toEqual({ ...headers(webPage), "referrer-policy": "no-referrer" });
  });
});

describe("flash messages", () => {
  const flash = async (res: Response) => /<p class="flash[^"]*"[^>]*>([^<]*)<\/p>/.exec(await res.text())?.[1];

  it("come from a fixed table of codes: text in the query string is never shown, an unknown code shows nothing", async () => {
    const lure = "Your session expired. Call +1 555 0100 to restore access.";
    expect(await flash(await get(`/web/login?error=${encodeURIComponent(lure)}`))).toBeUndefined();
    expect(await flash(await get(`/web/login?ok=${encodeURIComponent(lure)}`))).toBeUndefined();
    for (const code of ["constructor", "__proto__", "toString", "hasOwnProperty"]) expect(await flash(await get(`/web/login?error=${code}`)), code).toBeUndefined();
    expect(await flash(await get("/web/login?ok=signed_out"))).toBe("Signed out.");
    expect(await flash(await get("/web/login?error=locked"))).toContain("a lock is in force for you");
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    expect(await flash(await get(`/web?ok=${encodeURIComponent(lure)}`, cookie))).toBeUndefined();
    expect(await flash(await get("/web?ok=lock_lifted", cookie))).toBe("Lock lifted.");
  });

  it("every redirect names its message by code: signing out, a session ended by a lock (audited), a lock made and lifted in the admin page", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const out = await postForm("/web/logout", { _csrf: await csrfOf(cookie) }, cookie);
    expect(out.headers.get("location")).toBe("/web/login?ok=signed_out");

    const locked = await webSession(user);
    await createLock(ctx, admin, { target: { user }, message: "Call +1 555 0100 now" });
    const ended = await get("/web/requests", locked);
    expect(ended.status).toBe(303);
    expect(ended.headers.get("location")).toBe("/web/login?error=locked");
    expect(await events("web.session.end", user)).toContainEqual(expect.objectContaining({ error_code: "locked", why: expect.stringContaining("Call +1 555 0100 now") }));

    const editor = await newUser(["editor"]);
    const ed = await webSession(editor);
    const target = await newUser(["access"]);
    const made = await postForm("/web/admin/locks", { _csrf: await csrfOf(ed), kind: "user", value: target, message: "leaving" }, ed);
    expect(made.headers.get("location")).toBe("/web/admin?ok=lock_created");
    const lockName = (await ctx.backend.list<{ metadata: { name: string }; spec: { target: { user?: string } } }>("locks/")).find((l) => l.value.spec.target.user === target)!.value.metadata.name;
    const lifted = await postForm(`/web/admin/locks/${lockName}/delete`, { _csrf: await csrfOf(ed) }, ed);
    expect(lifted.headers.get("location")).toBe("/web/admin?ok=lock_lifted");
  });

  /** The session's CSRF token, as its pages carry it. */
  async function csrfOf(cookie: string): Promise<string> {
    return /name="_csrf" value="([^"]+)"/.exec(await (await get("/web", cookie)).text())![1];
  }
});

describe("the admin page", () => {
  it("lists bots among the users, typed bot (a bot is a user of kind bot)", async () => {
    await addBot(ctx, admin, "deploy-web", ["access"]);
    const editor = await newUser(["editor"]);
    const page = await (await get("/web/admin", await webSession(editor))).text();
    // One cell each (layout.ts cell: its whole value in the title too).
    const row = (...cells: string[]) => new RegExp(`<tr>${cells.map((c) => `<td class="" title="${c}">${c}</td>`).join("")}`);
    expect(page).toMatch(row("bot-deploy-web", "access", "bot"));
    expect(page).toMatch(row(editor, "editor", "local"));
  });
});

describe("a locked-out login", () => {
  it("tells an anonymous caller only what every failure tells, at the API and in the web sign-in; the audit log keeps the reason", async () => {
    const user = await newUser(["access"]);
    const key = await publicKeyToPem((await generateKeyPair()).publicKey);
    const login = (password: string) =>
      api.request(`${BASE}/v1/auth/login`, { method: "POST", body: JSON.stringify({ user, password, public_key_pem: key }), headers: { host: "proxy.example:3080", "content-type": "application/json" } });
    const wrong = await login("not the password");
    const wrongBody = await wrong.json();
    for (let i = 0; i < 4; i++) expect((await login(`guess ${i}`)).status).toBe(401);
    expect(await events("user.locked", user)).toHaveLength(1);

    // Locked now: the right password gets exactly what a wrong one got.
    const right = await login(PASSWORD(user));
    expect(right.status).toBe(wrong.status);
    expect(await right.json()).toEqual(wrongBody);
    expect(wrongBody).toEqual({ error: { code: "login_failed", message: "invalid user name, password or second factor" } });
    // A malformed key gets its own answer, locked or not (it is checked before the lockout is read).
    const badKey = await api.request(`${BASE}/v1/auth/login`, { method: "POST", body: JSON.stringify({ user, password: PASSWORD(user), public_key_pem: "x" }), headers: { host: "proxy.example:3080", "content-type": "application/json" } });
    expect(badKey.status).toBe(400);

    const web = await postForm("/web/login", { user, password: PASSWORD(user) });
    expect(web.status).toBe(401);
    const page = await web.text();
    expect(page).toContain("invalid user name, password or second factor");
    expect(page).not.toMatch(/locked|reset/i);

    const refusals = (await events("user.login", user)).filter((e) => e.success === false);
    expect(refusals.filter((e) => String(e.error).startsWith("locked for "))).toEqual([
      expect.objectContaining({ error: expect.stringMatching(/^locked for 30m more after too many failed login attempts/) }),
      expect.objectContaining({ via: "web", error: expect.stringMatching(/^locked for 30m more/) }),
    ]);
  });
});

describe("relative times (the web UI's, from the proxy's clock)", () => {
  it("reads as a person says it: whole units, at most two, ahead or ago", async () => {
    const { relativeTime } = await import("../src/util/relative-time.ts");
    const now = Date.parse("2030-01-01T12:00:00Z");
    const cases: [number, string][] = [
      [0, "now"],
      [999, "now"],
      [58 * 60_000, "in 58 min"],
      [58 * 60_000 + 59_000, "in 58 min"],
      [-3 * 60_000, "3 min ago"],
      [-45_000, "45 s ago"],
      [2 * 3_600_000 + 5 * 60_000, "in 2 h 5 min"],
      [3_600_000, "in 1 h"],
      [-(86_400_000 + 4 * 3_600_000 + 59 * 60_000), "1 d 4 h ago"],
    ];
    for (const [offset, said] of cases) expect(relativeTime(now + offset, now), String(offset)).toBe(said);
  });
});
