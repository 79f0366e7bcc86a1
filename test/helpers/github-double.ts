/**
 * A small stand-in for GitHub (the one fake in the SSO tests: GitHub cannot
 * run here). It does what an OAuth app login touches: the authorize page
 * with a password form, the code-for-token exchange (client secret, single
 * use, bound to its redirect_uri), and the API's /user and /user/teams
 * (under /api/v3, as on GitHub Enterprise).
 */
import { Hono } from "hono";
import { html } from "hono/html";
import { serve } from "../../src/runtime/index.ts";

export interface GithubAccount {
  password: string;
  teams: { organization: string; team: string }[];
}

export interface GithubDouble {
  url: string;
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  close(): Promise<void>;
}

export async function startGithubDouble(o: { accounts: Record<string, GithubAccount> }): Promise<GithubDouble> {
  const clientId = "Iv1.azgate-test";
  const clientSecret = `gh-secret-${crypto.randomUUID()}`;
  const codes = new Map<string, { login: string; redirectUri: string }>();
  const tokens = new Map<string, string>();
  const app = new Hono();

  app.get("/login/oauth/authorize", (c) => {
    const q = c.req.query();
    if (q.client_id !== clientId) return c.text("unknown client_id", 404);
    return c.html(loginPage(q.redirect_uri ?? "", q.state ?? "", ""));
  });
  app.post("/session", async (c) => {
    const f = await c.req.parseBody();
    const get = (k: string) => String(f[k] ?? "");
    const account = o.accounts[get("login")];
    if (!account || account.password !== get("password")) return c.html(loginPage(get("redirect_uri"), get("state"), "Incorrect username or password."), 401);
    const code = crypto.randomUUID().replace(/-/g, "");
    codes.set(code, { login: get("login"), redirectUri: get("redirect_uri") });
    const back = new URL(get("redirect_uri"));
    back.searchParams.set("code", code);
    back.searchParams.set("state", get("state"));
    return c.redirect(back.toString(), 302);
  });
  app.post("/login/oauth/access_token", async (c) => {
    const f = await c.req.parseBody();
    const grant = codes.get(String(f.code ?? ""));
    codes.delete(String(f.code ?? ""));
    if (f.client_id !== clientId || f.client_secret !== clientSecret) return c.json({ error: "incorrect_client_credentials" });
    if (!grant || (f.redirect_uri && f.redirect_uri !== grant.redirectUri)) return c.json({ error: "bad_verification_code", error_description: "The code passed is incorrect or expired." });
    const token = `gho_${crypto.randomUUID().replace(/-/g, "")}`;
    tokens.set(token, grant.login);
    return c.json({ access_token: token, token_type: "bearer", scope: "read:org" });
  });
  const who = (auth: string | undefined) => tokens.get((auth ?? "").replace(/^Bearer /, ""));
  app.get("/api/v3/user", (c) => {
    const login = who(c.req.header("authorization"));
    return login ? c.json({ login, id: 1 }) : c.json({ message: "Bad credentials" }, 401);
  });
  app.get("/api/v3/user/teams", (c) => {
    const login = who(c.req.header("authorization"));
    if (!login) return c.json({ message: "Bad credentials" }, 401);
    return c.json(o.accounts[login].teams.map((t) => ({ slug: t.team, name: t.team, organization: { login: t.organization } })));
  });

  const server = await serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${server.port}`;
  return { url, apiUrl: `${url}/api/v3`, clientId, clientSecret, close: () => server.close() };
}

function loginPage(redirectUri: string, state: string, error: string) {
  return html`<!doctype html><html><head><title>Sign in to GitHub (test double)</title></head><body>
    ${error ? html`<p id="error">${error}</p>` : ""}
    <form method="post" action="/session"><input type="hidden" name="redirect_uri" value="${redirectUri}"><input type="hidden" name="state" value="${state}">
    <label>Username <input name="login"></label><label>Password <input name="password" type="password"></label>
    <button type="submit" id="sign-in">Sign in</button></form></body></html>`;
}
