/**
 * GitHub's OAuth app flow: the browser authorizes at GitHub, the proxy
 * trades the code for a token and asks the API who the user is and which
 * teams they are in; `teams_to_roles` picks the roles. GitHub has no custom
 * claims, so GitHub users carry only their login and teams as traits: roles
 * using `{{external.azure_identities}}` give them nothing (list identities
 * statically instead, as the seed guide says).
 */
import { AzgateError } from "../../errors/index.ts";
import type { GithubConnector } from "../../resources/connector.ts";
import { rolesFromTeams } from "../../sso/mapping.ts";
import type { SsoIdentity } from "./finish.ts";

const endpoint = (c: GithubConnector) => (c.spec.endpoint_url ?? "https://github.com").replace(/\/$/, "");
const apiEndpoint = (c: GithubConnector) => (c.spec.api_endpoint_url ?? "https://api.github.com").replace(/\/$/, "");

export function githubStart(c: GithubConnector, state: string): { url: string; protocol: Record<string, never> } {
  const url = new URL(`${endpoint(c)}/login/oauth/authorize`);
  url.searchParams.set("client_id", c.spec.client_id);
  url.searchParams.set("redirect_uri", c.spec.redirect_url);
  url.searchParams.set("scope", "read:org");
  url.searchParams.set("state", state);
  return { url: url.toString(), protocol: {} };
}

export async function githubCallback(c: GithubConnector, code: string): Promise<SsoIdentity> {
  if (!code) throw new AzgateError("sso_failed", "GitHub sent no authorization code");
  const token = await call<{ access_token?: string; error?: string; error_description?: string }>(`${endpoint(c)}/login/oauth/access_token`, {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: c.spec.client_id, client_secret: c.spec.client_secret, code, redirect_uri: c.spec.redirect_url }).toString(),
  });
  if (!token.access_token) throw new AzgateError("sso_failed", `GitHub refused the code: ${token.error_description ?? token.error ?? "no access token"}`);
  const auth = { headers: { accept: "application/vnd.github+json", authorization: `Bearer ${token.access_token}` } };
  const me = await call<{ login?: string; id?: number }>(`${apiEndpoint(c)}/user`, auth);
  const teams = await call<{ slug: string; organization: { login: string } }[]>(`${apiEndpoint(c)}/user/teams?per_page=100`, auth);
  if (!me.login || typeof me.id !== "number") throw new AzgateError("sso_failed", "GitHub did not say who the user is");
  const memberships = teams.map((t) => ({ organization: t.organization.login, team: t.slug }));
  return {
    user: me.login,
    // The numeric id survives a renamed login; the login name may be taken by someone else later.
    subject: `github:${apiEndpoint(c)}:${me.id}`,
    roles: rolesFromTeams(c.spec.teams_to_roles, memberships),
    traits: { github_teams: memberships.map((m) => `${m.organization}/${m.team}`), logins: [me.login!] },
  };
}

async function call<T>(url: string, init: RequestInit): Promise<T> {
  const res = await fetch(url, init).catch((e: Error) => {
    throw new AzgateError("sso_failed", `cannot reach GitHub at ${new URL(url).origin}: ${e.message}`);
  });
  if (!res.ok) throw new AzgateError("sso_failed", `GitHub answered HTTP ${res.status} for ${new URL(url).pathname}`);
  return (await res.json()) as T;
}
