/**
 * An outside review's attacks on the web UI (/web) and every browser-facing
 * route: the real API in process (Hono's request(), no browser), the proxy's
 * real state, a fake clock. Each `it` asserts the secure behaviour. It found:
 * a CLI's SSO callback link signing any browser that opened it in as the
 * link's owner (sso/routes.ts now starts no web session for a CLI's
 * attempt); a link's words on our pages through a made-up connector name, a
 * request ID and audit filters (a refused GET shows a fixed text per code,
 * web/flash.ts refusedText); and a sign-in post saying neither Origin nor
 * Sec-Fetch-Site taken (web/session.ts checkCsrf). The rest held.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHash, randomBytes } from "node:crypto";
import { openState, settingsFrom } from "../src/proxy/state.ts";
import { configSchema } from "../src/config/schema.ts";
import type { ProxyContext } from "../src/proxy/context.ts";
import { createApi } from "../src/proxy/api.ts";
import { AppRegistry, servedApps } from "../src/proxy/registry.ts";
import { resolveCaller, type Caller } from "../src/proxy/caller.ts";
import { addUser, createResources, removeResource, resetUser, updateUser } from "../src/proxy/admin.ts";
import { acceptInvite } from "../src/proxy/users.ts";
import { createLock } from "../src/proxy/locks.ts";
import { createRequest, getRequest } from "../src/proxy/access-requests.ts";
import { parseResources } from "../src/resources/parse.ts";
import { generateKeyPair, publicKeyToPem } from "../src/pki/keys.ts";
import { memoryPair } from "../src/tunnel/memory.ts";
import { tempDir } from "./helpers/azgate.ts";
import { FakeClock } from "./helpers/fake-clock.ts";
import { startGithubDouble, type GithubDouble } from "./helpers/github-double.ts";

const BASE = "https://proxy.example:3080";
const HOST = "proxy.example:3080";
const PASSWORD = (user: string) => `correct horse battery ${user}`;
const READER = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader";
const ROLES = `kind: role
version: v7
metadata: {name: requester}
spec: {allow: {app_labels: {'*': '*'}, request: {azure_identities: ['${READER}'], thresholds: [{approve: 2, deny: 1}]}}}
---
kind: role
version: v7
metadata: {name: reviewer}
spec: {allow: {review_requests: {azure_identities: ['${READER}']}}}
---
kind: role
version: v7
metadata: {name: short-lived}
spec: {options: {max_session_ttl: 1h}, allow: {app_labels: {'*': '*'}}}
---
kind: role
version: v7
metadata: {name: temp-editor}
spec: {allow: {rules: [{resources: [user, role, lock], verbs: [list, read, create, delete]}]}}
`;

let ctx: ProxyContext;
let close: () => Promise<void>;
let admin: Caller;
let api: ReturnType<typeof createApi>;
const clock = new FakeClock();
const registry = new AppRegistry(clock, 45_000);
let users = 0;

beforeAll(async () => {
  ({ ctx, close } = await openState(tempDir("azgate-attack-web-"), { clusterName: "attack", settings: settingsFrom(configSchema.parse({ auth: { second_factor: "off" } })), purpose: "web attack review", clock }));
  admin = await resolveCaller(ctx, { kind: "local-admin", name: "@local-admin", roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: ctx.localAdminSession });
  api = createApi(ctx, { publicUrl: () => BASE, registry });
  registry.heartbeat({ id: "t", hostId: "agent", hostName: "agent", session: memoryPair().acceptor, connectedAt: clock.now() }, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: {} }]);
  await createResources(ctx, admin, parseResources(ROLES, "roles.yaml").resources, true);
});
afterAll(async () => close?.());
// Each test starts a minute later: the per-address sign-in limit (30 a minute, one address in process) starts afresh; the agent heartbeats again.
beforeEach(async () => {
  await clock.advance(61_000);
  registry.heartbeat({ id: "t", hostId: "agent", hostName: "agent", session: memoryPair().acceptor, connectedAt: clock.now() }, [{ name: "azure-cli", cloud: "Azure", uri: "cloud://Azure", labels: {} }]);
});

type Headers = Record<string, string>;
const get = (path: string, cookie?: string, headers: Headers = {}) => api.request(`${BASE}${path}`, { headers: { host: HOST, ...(cookie ? { cookie } : {}), ...headers } });
const SAME = { origin: BASE, "sec-fetch-site": "same-origin" };
const postForm = (path: string, fields: Record<string, string>, cookie?: string, headers: Headers = SAME) =>
  api.request(`${BASE}${path}`, { method: "POST", body: new URLSearchParams(fields).toString(), headers: { host: HOST, "content-type": "application/x-www-form-urlencoded", ...headers, ...(cookie ? { cookie } : {}) } });

async function newUser(roles: string[]): Promise<string> {
  const name = `user${++users}`;
  const { invite } = await addUser(ctx, admin, name, roles, {});
  await acceptInvite(ctx, invite.token, { password: PASSWORD(name) });
  return name;
}
const cookieOf = (res: Response) => /__Host-azgate_session=[0-9a-f]+/.exec(res.headers.get("set-cookie") ?? "")?.[0];
async function webSession(user: string): Promise<string> {
  const res = await postForm("/web/login", { user, password: PASSWORD(user) });
  expect(res.status).toBe(303);
  return cookieOf(res)!;
}
async function csrfOf(cookie: string): Promise<string> {
  return /name="_csrf" value="([^"]+)"/.exec(await (await get("/web", cookie)).text())![1];
}
/** Is this cookie a live session? (the My access page answers 200) */
const live = async (cookie: string) => (await get("/web", cookie)).status === 200;
const callerOf = async (user: string) => resolveCaller(ctx, { kind: "user", name: user, roles: [], traits: {}, azure_identities: [], login_method: "local", session_id: crypto.randomUUID(), ...(await stamp(user)) });
async function stamp(user: string) {
  const u = (await ctx.backend.get<{ status: { id: string; generation: number } }>(`users/${user}`))?.value;
  return u ? { user_id: u.status.id, generation: u.status.generation } : {};
}

// ---------------------------------------------------------------- cookies
describe("the session cookie", () => {
  it("cookie: __Host- prefix, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", async () => {
    const user = await newUser(["access"]);
    const res = await postForm("/web/login", { user, password: PASSWORD(user) });
    const sc = res.headers.get("set-cookie") ?? "";
    expect(sc).toMatch(/^__Host-azgate_session=[0-9a-f]{64};/);
    expect(sc).toMatch(/;\s*Secure/i);
    expect(sc).toMatch(/;\s*HttpOnly/i);
    expect(sc).toMatch(/;\s*SameSite=Strict/i);
    expect(sc).toMatch(/;\s*Path=\//i);
    expect(sc).not.toMatch(/Domain=/i);
  });

  it("fixation: a cookie planted before sign-in is ignored and replaced by a fresh token", async () => {
    const user = await newUser(["access"]);
    const planted = `__Host-azgate_session=${"a".repeat(64)}`;
    const res = await postForm("/web/login", { user, password: PASSWORD(user) }, planted);
    const fresh = cookieOf(res)!;
    expect(fresh).not.toBe(planted);
    expect(await live(planted)).toBe(false);
    expect(await live(fresh)).toBe(true);
  });

  it("logout: the same cookie replayed after sign-out is dead", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    expect((await postForm("/web/logout", { _csrf: await csrfOf(cookie) }, cookie)).status).toBe(303);
    expect(await live(cookie)).toBe(false);
  });

  it("revocation: user deleted -> next request ends the session", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    await removeResource(ctx, admin, "user", user);
    expect(await live(cookie)).toBe(false);
  });

  it("revocation: user deleted and re-created under the same name -> old cookie stays dead", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    await removeResource(ctx, admin, "user", user);
    const { invite } = await addUser(ctx, admin, user, ["access"], {});
    await acceptInvite(ctx, invite.token, { password: PASSWORD(user) });
    expect(await live(cookie)).toBe(false);
  });

  it("revocation: user reset -> next request ends the session", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    await resetUser(ctx, admin, user);
    expect(await live(cookie)).toBe(false);
  });

  it("revocation: a lock ends the session; lifting the lock does not revive that cookie", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const lock = await createLock(ctx, admin, { target: { user } });
    expect(await live(cookie)).toBe(false);
    const name = (await ctx.backend.list<{ metadata: { name: string }; spec: { target: { user?: string } } }>("locks/")).find((l) => l.value.spec.target.user === user)!.value.metadata.name;
    void lock;
    await removeResource(ctx, admin, "lock", name);
    expect(await live(cookie)).toBe(false);
  });

  it("revocation: a role taken away (users update) -> the admin page closes on the very next request", async () => {
    const user = await newUser(["temp-editor"]);
    const cookie = await webSession(user);
    expect(await (await get("/web/admin", cookie)).text()).toContain("<h2>Users</h2>");
    await updateUser(ctx, admin, user, { roles: ["access"] });
    const after = await get("/web/admin", cookie);
    expect(await after.text()).not.toContain("<h2>Users</h2>");
    // and a lock form post is refused
    const post = await postForm("/web/admin/locks", { _csrf: await csrfOf(cookie), kind: "user", value: "user1" }, cookie);
    expect(post.status).toBe(403);
  });

  it("revocation: the role deleted -> its rights go on the very next request", async () => {
    await createResources(ctx, admin, parseResources(`kind: role\nversion: v7\nmetadata: {name: doomed-editor}\nspec: {allow: {rules: [{resources: [user], verbs: [list, read]}]}}\n`, "r.yaml").resources, true);
    const user = await newUser(["doomed-editor"]);
    const cookie = await webSession(user);
    expect(await (await get("/web/admin", cookie)).text()).toContain("<h2>Users</h2>");
    await removeResource(ctx, admin, "role", "doomed-editor");
    const after = await get("/web/admin", cookie);
    expect(await after.text()).not.toContain("<h2>Users</h2>");
  });

  it("expiry: a session never outlives the roles' max_session_ttl (1h), nor 8 h", async () => {
    const user = await newUser(["short-lived"]);
    const cookie = await webSession(user);
    expect(await live(cookie)).toBe(true);
    await clock.advance(61 * 60_000);
    expect(await live(cookie)).toBe(false);
    const other = await newUser(["access"]);
    const c2 = await webSession(other);
    await clock.advance(8 * 3_600_000 + 60_000);
    expect(await live(c2)).toBe(false);
  });

  it("malformed cookies (too long, non-hex, duplicated) never read as a session", async () => {
    expect((await get("/web", `__Host-azgate_session=${"A".repeat(64)}`)).status).toBe(303);
    expect((await get("/web", `__Host-azgate_session=${"a".repeat(100000)}`)).status).not.toBe(200);
    expect((await get("/web", `azgate_session=${"a".repeat(64)}`)).status).toBe(303);
  });
});

// ---------------------------------------------------------------- CSRF
describe("cross-site request forgery", () => {
  it("csrf: an authed form post from another Origin is refused even with the right token", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const csrf = await csrfOf(cookie);
    const res = await postForm("/web/logout", { _csrf: csrf }, cookie, { origin: "https://evil.example" });
    expect(res.status).toBe(403);
    expect(await live(cookie)).toBe(true);
  });

  it("csrf: Sec-Fetch-Site same-site (a sibling subdomain) and cross-site are refused", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const csrf = await csrfOf(cookie);
    for (const site of ["same-site", "cross-site", "none"]) {
      const res = await postForm("/web/logout", { _csrf: csrf }, cookie, { "sec-fetch-site": site });
      expect(res.status, site).toBe(403);
    }
    expect(await live(cookie)).toBe(true);
  });

  it("csrf: Origin: null, and an origin differing only by scheme or port, are refused", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const csrf = await csrfOf(cookie);
    for (const origin of ["null", "http://proxy.example:3080", "https://proxy.example", "https://proxy.example:3080.evil.example", "HTTPS://PROXY.EXAMPLE:3080x"]) {
      const res = await postForm("/web/logout", { _csrf: csrf }, cookie, { origin });
      expect(res.status, origin).toBe(403);
    }
    expect(await live(cookie)).toBe(true);
  });

  it("csrf: no Origin, no Sec-Fetch-Site: the token alone decides (missing, wrong, another session's -> refused)", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const other = await webSession(await newUser(["access"]));
    for (const token of ["", "x", await csrfOf(other)]) {
      const res = await postForm("/web/logout", token ? { _csrf: token } : {}, cookie, {});
      expect(res.status, token).toBe(403);
    }
    expect(await live(cookie)).toBe(true);
  });

  it("csrf: a simple text/plain post carrying _csrf=... is not read as the form", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const csrf = await csrfOf(cookie);
    const res = await api.request(`${BASE}/web/logout`, { method: "POST", body: `_csrf=${csrf}`, headers: { host: HOST, cookie, "content-type": "text/plain" } });
    expect(res.status).toBe(403);
    expect(await live(cookie)).toBe(true);
  });

  it("csrf: the token is never offered to a GET by another site (no token in any URL of a page)", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const csrf = await csrfOf(cookie);
    for (const path of ["/web", "/web/requests", "/web/keys", "/web/requests/new"]) {
      const page = await (await get(path, cookie)).text();
      expect(page).not.toMatch(new RegExp(`href="[^"]*${csrf}`));
    }
  });

  it("login csrf: a cross-site sign-in post (Origin evil, same-site, null) is refused", async () => {
    const user = await newUser(["access"]);
    for (const h of [{ origin: "https://evil.example" }, { "sec-fetch-site": "same-site" }, { origin: "null" }, { "sec-fetch-site": "cross-site", origin: BASE }] as Headers[]) {
      const res = await postForm("/web/login", { user, password: PASSWORD(user) }, undefined, h);
      expect(cookieOf(res), JSON.stringify(h)).toBeUndefined();
    }
  });

  it("login csrf: a sign-in post that carries neither Origin nor Sec-Fetch-Site (a browser that sends neither) starts no session", async () => {
    const user = await newUser(["access"]);
    const res = await postForm("/web/login", { user, password: PASSWORD(user) }, undefined, {});
    expect(cookieOf(res)).toBeUndefined();
  });

  it("anonymous JSON routes (passkey sign-in, CLI step) refuse another origin", async () => {
    for (const path of ["/web/login/passkey/begin", "/web/login/passkey", "/web/cli/abc/begin", "/web/cli/abc"]) {
      const res = await postForm(path, { user: "x", password: "y" }, undefined, { origin: "https://evil.example" });
      expect(res.status, path).toBe(403);
    }
  });
});

// ---------------------------------------------------------------- headers
describe("framing and other headers", () => {
  it("headers: every /web answer (pages, refusals, redirects, unknown paths, assets) forbids framing", async () => {
    const user = await newUser(["access"]);
    const cookie = await webSession(user);
    const paths: [string, string | undefined][] = [
      ["/web", cookie],
      ["/web/login", undefined],
      ["/web/login/passkey", undefined],
      ["/web/continue?next=/web/requests", undefined],
      ["/web/cli/0000", undefined],
      ["/web/audit", cookie], // refused: not an auditor
      ["/web/requests/00000000-0000-0000-0000-000000000000", cookie],
      ["/web/keys", cookie],
      ["/web/invite/0000", undefined],
    ];
    for (const [p, c] of paths) {
      const res = await get(p, c);
      expect(res.headers.get("x-frame-options"), p).toBe("DENY");
      expect(res.headers.get("content-security-policy") ?? "", p).toContain("frame-ancestors 'none'");
    }
  });
});

// ---------------------------------------------------------------- redirects
describe("open redirects", () => {
  const bad = ["//evil.example", "https://evil.example", "/\\evil.example", "/web/../evil", "/web/%2f%2fevil.example", "/web/\t/evil", "/web\\@evil.example", "/web/.evil", "javascript:alert(1)"];

  it("redirect: next= on sign-in, continue and passkey sign-in never leaves the origin", async () => {
    const user = await newUser(["access"]);
    for (const next of bad) {
      const res = await postForm("/web/login", { user, password: PASSWORD(user), next });
      const loc = res.headers.get("location") ?? "";
      expect(loc, next).toMatch(/^\/web(\/|$)/);
      expect(loc, next).not.toMatch(/^\/\/|\\/);
      const cont = await (await get(`/web/continue?next=${encodeURIComponent(next)}`)).text();
      expect(cont, next).not.toContain("evil");
      const signIn = await (await get(`/web/login?next=${encodeURIComponent(next)}`)).text();
      expect(signIn, next).not.toContain("evil");
    }
  });

  it("redirect: an unauthenticated GET of an odd path is bounced to our own sign-in with the path encoded", async () => {
    const res = await get("/web//evil.example/x");
    const loc = res.headers.get("location") ?? "";
    expect(loc.startsWith("/web/")).toBe(true);
    const next = new URL(loc, BASE).searchParams.get("next") ?? "";
    const cont = await (await get(`/web/continue?next=${encodeURIComponent(next)}`)).text();
    // A path under /web with a double slash is still same-origin (path-only)
    expect(cont).not.toMatch(/url=\/\/|url=https?:/);
  });
});

// ---------------------------------------------------------------- XSS
describe("HTML injection through user-controlled text", () => {
  const PAYLOAD = `"><script>alert(1)</script><img src=x onerror=alert(1)>'`;
  const clean = (page: string) => {
    expect(page).not.toContain("<script>alert");
    expect(page).not.toContain("<img src=x");
    expect(page).not.toMatch(/"\s*onerror=/);
  };

  it("xss: request reason and ticket on the request page, the list and the reviewer's inbox are escaped", async () => {
    const alice = await newUser(["requester"]);
    const bob = await newUser(["reviewer"]);
    const r = await createRequest(ctx, await callerOf(alice), { app: "azure-cli", azure_identity: READER, reason: PAYLOAD }, servedApps(registry));
    const a = await webSession(alice);
    const b = await webSession(bob);
    clean(await (await get(`/web/requests/${r.metadata.name}`, a)).text());
    clean(await (await get(`/web/requests`, a)).text());
    clean(await (await get(`/web/requests`, b)).text());
    clean(await (await get(`/web/requests/${r.metadata.name}`, b)).text());
    // a review reason is shown too
    const csrf = await csrfOf(b);
    await postForm(`/web/requests/${r.metadata.name}/review`, { _csrf: csrf, state: "APPROVED", reason: PAYLOAD }, b);
    clean(await (await get(`/web/requests/${r.metadata.name}`, a)).text());
  });

  it("xss: values reflected from the query string (new request preset, audit filters) are escaped", async () => {
    const alice = await newUser(["requester", "auditor"]);
    const a = await webSession(alice);
    clean(await (await get(`/web/requests/new?app=${encodeURIComponent(PAYLOAD)}&azure_identity=${encodeURIComponent(PAYLOAD)}`, a)).text());
    clean(await (await get(`/web/audit?user=${encodeURIComponent(PAYLOAD)}&action=${encodeURIComponent(PAYLOAD)}&page=${encodeURIComponent(PAYLOAD)}`, a)).text());
    clean(await (await get(`/web/audit/commands?user=${encodeURIComponent(PAYLOAD)}`, a)).text());
    clean(await (await get(`/web/login?next=${encodeURIComponent(PAYLOAD)}`)).text());
  });

  it("xss: an error message that echoes input (bad app on a new request) is escaped", async () => {
    const alice = await newUser(["requester"]);
    const a = await webSession(alice);
    const res = await postForm("/web/requests", { _csrf: await csrfOf(a), app: PAYLOAD, azure_identity: PAYLOAD, reason: PAYLOAD, ticket: PAYLOAD }, a);
    clean(await res.text());
  });

  it("xss: lock message and audit fields shown to admins and auditors are escaped", async () => {
    const editor = await newUser(["editor", "auditor"]);
    const e = await webSession(editor);
    const target = await newUser(["access"]);
    const made = await postForm("/web/admin/locks", { _csrf: await csrfOf(e), kind: "user", value: target, message: PAYLOAD }, e);
    expect(made.status).toBe(303);
    clean(await (await get("/web/admin", e)).text());
    // an unauthenticated-but-audited field: a refused page path
    const alice = await newUser(["access"]);
    const a = await webSession(alice);
    await get(`/web/audit?x=${encodeURIComponent(PAYLOAD)}`, a); // refused, audited
    clean(await (await get("/web/audit", e)).text());
  });

  it("xss: a user name suggestion on a CLI login page cannot carry markup", async () => {
    const keys = await generateKeyPair();
    const res = await api.request(`${BASE}/v1/auth/browser/login`, {
      method: "POST",
      headers: { host: HOST, "content-type": "application/json" },
      body: JSON.stringify({ public_key_pem: await publicKeyToPem(keys.publicKey), user: PAYLOAD, redirect_url: "http://127.0.0.1:4000/callback", secret_hash: createHash("sha256").update("s").digest("hex") }),
    });
    expect(res.status).toBe(400);
  });
});

// ---------------------------------------------------------------- reviews
describe("access request reviews through the web", () => {
  async function pending(requester: string): Promise<string> {
    return (await createRequest(ctx, await callerOf(requester), { app: "azure-cli", azure_identity: READER, reason: "INC-1" }, servedApps(registry))).metadata.name;
  }

  it("review: the requester cannot approve their own request, even holding the reviewer role", async () => {
    const alice = await newUser(["requester", "reviewer"]);
    const id = await pending(alice);
    const a = await webSession(alice);
    const res = await postForm(`/web/requests/${id}/review`, { _csrf: await csrfOf(a), state: "APPROVED" }, a);
    expect(res.status).not.toBe(303);
    expect((await getRequest(ctx, admin, id)).spec.reviews).toHaveLength(0);
  });

  it("review: a user who may not see a request can neither read nor review, cancel nor revoke it", async () => {
    const alice = await newUser(["requester"]);
    const id = await pending(alice);
    const m = await webSession(await newUser(["access"]));
    expect((await get(`/web/requests/${id}`, m)).status).toBeGreaterThanOrEqual(400);
    for (const action of ["review", "cancel", "revoke", "review/begin"]) {
      const res = await postForm(`/web/requests/${id}/${action}`, { _csrf: await csrfOf(m), state: "APPROVED" }, m);
      expect(res.status, action).toBeGreaterThanOrEqual(400);
    }
    expect((await getRequest(ctx, admin, id)).spec.state).toBe("PENDING");
  });

  it("review: a reviewer's vote posted twice counts once (threshold of two approvals)", async () => {
    const alice = await newUser(["requester"]);
    const bob = await newUser(["reviewer"]);
    const id = await pending(alice);
    const b = await webSession(bob);
    const csrf = await csrfOf(b);
    await postForm(`/web/requests/${id}/review`, { _csrf: csrf, state: "APPROVED" }, b);
    await postForm(`/web/requests/${id}/review`, { _csrf: csrf, state: "APPROVED" }, b);
    await Promise.all([postForm(`/web/requests/${id}/review`, { _csrf: csrf, state: "APPROVED" }, b), postForm(`/web/requests/${id}/review`, { _csrf: csrf, state: "APPROVED" }, b)]);
    const r = await getRequest(ctx, admin, id);
    expect(r.spec.state).toBe("PENDING");
    expect(r.spec.reviews.filter((v) => v.author === bob)).toHaveLength(1);
  });

  it("review: the request ID in the path in another case or encoding reaches the same checks", async () => {
    const alice = await newUser(["requester", "reviewer"]);
    const id = await pending(alice);
    const a = await webSession(alice);
    for (const p of [id.toUpperCase(), encodeURIComponent(id).replace(/-/g, "%2D")]) {
      const res = await postForm(`/web/requests/${p}/review`, { _csrf: await csrfOf(a), state: "APPROVED" }, a);
      expect(res.status, p).not.toBe(303);
    }
    expect((await getRequest(ctx, admin, id)).spec.reviews).toHaveLength(0);
  });
});

// ---------------------------------------------------------------- route guards
describe("route guards and path tricks", () => {
  const tricks = ["/web/admin", "/web/ADMIN", "/web/admin/", "/web//admin", "/web/%61dmin", "/web/./admin", "/web/login/../admin", "/web/login/%2e%2e/admin", "/web/assets/..%2fadmin", "/WEB/admin", "/web%2fadmin", "/web/audit/export?format=csv"];
  it("guards: no path spelling reaches an admin or audit page without a session", async () => {
    for (const p of tricks) {
      const res = await get(p);
      const body = await res.text();
      expect(res.status, p).not.toBe(200);
      expect(body, p).not.toMatch(/<h2>Users<\/h2>|Audit log|"event":/);
    }
  });

  it("guards: no path spelling gets an unprivileged session into admin, audit or export", async () => {
    const m = await webSession(await newUser(["access"]));
    for (const p of [...tricks, "/web/audit", "/web/audit/commands", "/web/audit/export?format=jsonl"]) {
      const res = await get(p, m);
      const body = await res.text();
      expect(body, p).not.toMatch(/<h2>Users<\/h2>|<h1>Audit log|"event":"|<h1>Commands/);
    }
  });

  it("guards: no POST spelling skips the CSRF check (lock form by an editor, no token)", async () => {
    const e = await webSession(await newUser(["editor"]));
    const victim = await newUser(["access"]);
    for (const p of ["/web/admin/locks", "/web//admin/locks", "/web/admin/locks/", "/web/%61dmin/locks", "/web/./admin/locks"]) {
      await postForm(p, { kind: "user", value: victim }, e, { origin: "https://evil.example" });
      await postForm(p, { kind: "user", value: victim }, e, {});
    }
    const locks = await ctx.backend.list<{ spec: { target: { user?: string } } }>("locks/");
    expect(locks.filter((l) => l.value.spec.target.user === victim)).toHaveLength(0);
  });
});

// ---------------------------------------------------------------- unbounded input
describe("bounded input", () => {
  it("bounds: an anonymous 1 MiB sign-in body is refused with 413 (also under path spellings)", async () => {
    const big = `user=a&password=${"x".repeat(1024 * 1024)}`;
    for (const p of ["/web/login", "/web/login/passkey/begin", "/web/cli/abc/begin", "/web/invite/abc"]) {
      const res = await api.request(`${BASE}${p}`, { method: "POST", body: big, headers: { host: HOST, "content-type": "application/x-www-form-urlencoded", ...SAME } });
      expect(res.status, p).toBe(413);
    }
  });

  it("bounds: a chunked (no Content-Length) 1 MiB body to an authed route is refused", async () => {
    const m = await webSession(await newUser(["access"]));
    const chunk = new TextEncoder().encode("a".repeat(64 * 1024));
    let n = 0;
    const stream = new ReadableStream({ pull(c) { if (n++ < 16) c.enqueue(chunk); else c.close(); } });
    const res = await api.request(`${BASE}/web/requests`, { method: "POST", body: stream, headers: { host: HOST, cookie: m, "content-type": "application/x-www-form-urlencoded", ...SAME }, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
  });

  it("bounds: a huge CLI attempt ID or request ID in the path is refused cheaply", async () => {
    const res = await get(`/web/cli/${"a".repeat(5000)}`);
    expect(res.status).toBe(410);
  });
});

// ---------------------------------------------------------------- SSO / CLI login through the browser
describe("sign-in through the browser", () => {
  let github: GithubDouble;
  beforeAll(async () => {
    github = await startGithubDouble({ accounts: { mallory: { password: "mallory gh", teams: [{ organization: "octo", team: "devs" }] }, victim: { password: "victim gh", teams: [{ organization: "octo", team: "devs" }] } } });
    const connector = {
      kind: "github",
      version: "v3",
      metadata: { name: "github" },
      spec: { client_id: github.clientId, client_secret: github.clientSecret, redirect_url: `${BASE}/v1/webapi/github/callback`, endpoint_url: github.url, api_endpoint_url: github.apiUrl, teams_to_roles: [{ organization: "octo", team: "devs", roles: ["access"] }] },
    };
    await createResources(ctx, admin, parseResources(JSON.stringify(connector), "c.json").resources, true);
  });
  afterAll(() => github?.close());

  /** The attacker signs in at the IdP and keeps the callback URL instead of following it. */
  async function callbackUrl(authUrl: string, login: string, password: string): Promise<string> {
    const state = new URL(authUrl).searchParams.get("state")!;
    const res = await fetch(`${github.url}/session`, { method: "POST", redirect: "manual", body: new URLSearchParams({ login, password, redirect_uri: `${BASE}/v1/webapi/github/callback`, state }), headers: { "content-type": "application/x-www-form-urlencoded" } });
    return res.headers.get("location")!;
  }

  it("sso: a web sign-in's callback link opened in another browser (no nonce cookie) signs nobody in", async () => {
    const start = await get("/web/sso/github/github");
    expect(start.status).toBe(303);
    const link = await callbackUrl(start.headers.get("location")!, "mallory", "mallory gh");
    const victim = await api.request(link.replace(BASE, BASE), { headers: { host: HOST } });
    expect(cookieOf(victim)).toBeUndefined();
  });

  it("sso: the callback link of a CLI `azgate login --auth github` (attacker's own) opened in a victim's browser does not sign that browser in as the attacker", async () => {
    const keys = await generateKeyPair();
    const secret = randomBytes(32).toString("hex");
    const started = await api.request(`${BASE}/v1/sso/login`, {
      method: "POST",
      headers: { host: HOST, "content-type": "application/json" },
      body: JSON.stringify({ connector: "github", kind: "github", public_key_pem: await publicKeyToPem(keys.publicKey), secret_hash: createHash("sha256").update(secret).digest("hex"), redirect_url: "http://127.0.0.1:4567/callback" }),
    });
    expect(started.status).toBe(200);
    const { auth_url } = (await started.json()) as { auth_url: string };
    const link = await callbackUrl(auth_url, "mallory", "mallory gh");
    expect(link).toContain("/v1/webapi/github/callback");
    // The victim clicks it (a top-level navigation from the attacker's page or mail): no cookies of ours yet, or their own session.
    const victimOwn = await webSession(await newUser(["access"]));
    const res = await api.request(link, { headers: { host: HOST, cookie: victimOwn, "sec-fetch-site": "cross-site" } });
    const planted = cookieOf(res);
    // Secure behaviour: the victim's browser gets no session for mallory.
    if (planted) {
      const page = await (await get("/web", planted)).text();
      expect(page, "victim's browser is now signed in as the attacker").not.toContain(">mallory<");
    }
    expect(planted).toBeUndefined();
  });

  it("cli: a CLI browser-login page for an unknown, or already-finished attempt shows nothing and takes nothing", async () => {
    expect((await get("/web/cli/deadbeef")).status).toBe(410);
    const res = await postForm("/web/cli/deadbeef", { user: "x", response: "{}" });
    expect(res.status).toBeGreaterThanOrEqual(400);
  });

  it("cli: a CLI login attempt cannot point the browser (and its code) anywhere but the CLI's loopback", async () => {
    const keys = await generateKeyPair();
    for (const redirect_url of ["https://evil.example/callback", "http://127.0.0.1.evil.example:80/callback", "http://127.0.0.1:80@evil.example/callback", "http://localhost:4000/callback", "http://127.0.0.1:4000/callback?x=1", "http://127.0.0.1/callback"]) {
      const res = await api.request(`${BASE}/v1/auth/browser/login`, {
        method: "POST",
        headers: { host: HOST, "content-type": "application/json" },
        body: JSON.stringify({ public_key_pem: await publicKeyToPem(keys.publicKey), redirect_url, secret_hash: createHash("sha256").update("s").digest("hex") }),
      });
      expect(res.status, redirect_url).toBe(400);
    }
  });
});

// ---------------------------------------------------------------- text injection (words from the address on our pages)
describe("words from a link shown on azgate's pages", () => {
  const LURE = "Your session expired Call 555 0100 to restore access";
  const flashText = async (res: Response) => (await res.text()).match(/<p class="flash[^"]*"[^>]*>([^<]*)<\/p>|<p class="error">([^<]*)<\/p>/)?.slice(1).join("") ?? "";

  it("text injection: no anonymous GET (invite, CLI step, SSO callbacks and starts, sign-in flash) puts a link's words on the page", async () => {
    const e = encodeURIComponent(LURE);
    const paths = [
      `/web/invite/${e}%2F..`, `/web/invite/${e}%01`, `/web/cli/${e}%2F..`, `/web/cli/${e}%01`, `/web/login?error=${e}`, `/web/login?ok=${e}`, `/web/continue?next=${e}`,
      `/v1/webapi/oidc/callback?state=${e}&error=${e}&error_description=${e}`, `/v1/webapi/github/callback?state=${e}&error=${e}&error_description=${e}`,
      `/web/sso/oidc/${e}`, `/web/sso/saml/${e}`, `/web/login/passkey?error=${e}`,
    ];
    const shown: string[] = [];
    for (const p of paths) {
      const res = await get(p);
      // Attribute values may carry it (a form's next, a link): escaped and never read as the page's words.
      if ((await res.text()).replace(/value="[^"]*"|href="[^"]*"|action="[^"]*"/g, "").includes(LURE)) shown.push(`${p} -> ${res.status}`);
    }
    expect(shown).toEqual([]);
  });

  it("text injection: an SSO start link with a made-up connector name does not put the link's words on the sign-in page", async () => {
    const res = await get(`/web/sso/github/${encodeURIComponent(LURE)}`);
    expect(await flashText(res)).not.toContain(LURE);
  });

  it("text injection: a made-up request ID in a link does not put its words on the Refused page", async () => {
    const m = await webSession(await newUser(["access"]));
    const res = await get(`/web/requests/${encodeURIComponent(LURE)}`, m);
    expect(await res.text()).not.toContain(LURE);
  });

  it("text injection: a made-up invite token or CLI attempt ID does not put its words on the page", async () => {
    expect(await (await get(`/web/invite/${encodeURIComponent(LURE)}`)).text()).not.toContain(LURE);
    expect(await (await get(`/web/cli/${encodeURIComponent(LURE)}`)).text()).not.toContain(LURE);
  });

  it("text injection: an auditor's audit filters from a link (since, status) do not put the link's words on the page", async () => {
    const a = await webSession(await newUser(["auditor"]));
    for (const k of ["since", "until", "status", "decision", "method"]) {
      const res = await get(`/web/audit?${k}=${encodeURIComponent(LURE)}`, a);
      const page = await res.text();
      // The filter form may hold the value in an input's value attribute; anything else is the link's text on our page.
      expect(page.replace(/value="[^"]*"/g, ""), k).not.toContain(LURE);
    }
  });

  it("text injection: a sign-in post's user name is not echoed into the page", async () => {
    const res = await postForm("/web/login", { user: LURE, password: "x" });
    expect(await res.text()).not.toContain(LURE);
  });
});

describe("path spellings around the body limit", () => {
  it("bounds: POST //web/login, /web/login/ and /web/./login with 1 MiB are not processed as a sign-in", async () => {
    const big = `user=a&password=${"x".repeat(1024 * 1024)}`;
    for (const p of ["//web/login", "/web/login/", "/web/./login", "/web/%6cogin"]) {
      const res = await api.request(`${BASE}${p}`, { method: "POST", body: big, headers: { host: HOST, "content-type": "application/x-www-form-urlencoded", ...SAME } });
      expect([404, 413], `${p} -> ${res.status}`).toContain(res.status);
    }
  });
});
