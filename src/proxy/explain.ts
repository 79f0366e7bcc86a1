/**
 * `roles explain`: what the proxy would decide for a request, from the same
 * code as its per-request decision (rbac/azure-api.ts), with every rule.
 * For yourself, any signed-in user; for another user, the caller needs to
 * read roles and users (the auditor and editor presets can).
 */
import { AzgateError } from "../errors/index.ts";
import { allowedAzureIdentities, checkAzureIdentity } from "../rbac/engine.ts";
import { explainAzureApi, type AzureApiExplanation } from "../rbac/azure-api.ts";
import type { Role } from "../rbac/types.ts";
import { identityName, requireIdentityId } from "../azure/resource-id.ts";
import { readRequest } from "../azure/operation.ts";
import { accessSnapshot } from "./access-cache.ts";
import { authorize, type Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import type { AppRegistry } from "./registry.ts";
import { MAX_URL_CHARS } from "../tunnel/http.ts";

export interface ExplainRequest {
  user?: string;
  app?: string;
  azure_identity?: string;
  method?: string;
  url?: string;
}

export interface ExplainResponse extends AzureApiExplanation {
  user: string;
  app: string;
  azure_identity: string;
  /** Whether the roles allow the identity on the app at all, and why. */
  identity: { allowed: boolean; reason: string };
  request: { method: string; url: string };
}

export async function explainRequest(ctx: ProxyContext, registry: AppRegistry, caller: Caller, q: ExplainRequest): Promise<ExplainResponse> {
  const method = String(q.method ?? "").toUpperCase();
  if (!method) throw new AzgateError("bad_parameter", "give the request's method (--method GET)");
  const given = String(q.url ?? "");
  // What no request through the tunnel can be is refused before any work: the policy's cost grows with the path.
  if (given.length > MAX_URL_CHARS) throw new AzgateError("bad_parameter", `the URL is ${given.length} characters long; a request through azgate has at most ${MAX_URL_CHARS}, so there is nothing to explain`);
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw new AzgateError("bad_parameter", `give the request's full URL (--url https://management.azure.com/subscriptions/...), not ${JSON.stringify(q.url ?? "")}`);
  }
  const { name, roles, traits } = await subject(ctx, caller, q.user);
  const servers = registry.all(q.app);
  const appName = q.app ?? servers[0]?.app.name;
  if (!appName || servers.length === 0) throw new AzgateError("not_found", q.app ? `no agent serves app "${q.app}" right now` : "no app is connected right now; name one with --app");
  const identity = resolveIdentity(roles, traits, q.azure_identity);
  const server = servers.find((s) => s.app.name === appName && checkAzureIdentity(roles, traits, s.app, identity).allowed) ?? servers.find((s) => s.app.name === appName)!;
  const verdict = checkAzureIdentity(roles, traits, server.app, identity);
  const explained = explainAzureApi(roles, traits, server.app, identity, readRequest({ method, host: url.hostname, path: url.pathname, query: url.searchParams }, server.app.cloud));
  return { user: name, app: appName, azure_identity: identity, identity: { allowed: verdict.allowed, reason: verdict.reason }, request: { method, url: url.toString() }, ...explained };
}

/** Whose roles: the caller's own, or (with the right to read users and roles) another user's as the backend has them now. */
async function subject(ctx: ProxyContext, caller: Caller, user: string | undefined): Promise<{ name: string; roles: Role[]; traits: Record<string, string[]> }> {
  if (!user || user === caller.name) {
    if (caller.identity.kind !== "user" && !user) throw new AzgateError("bad_parameter", "say whose access to explain: --user NAME");
    if (caller.identity.kind === "user") return { name: caller.name, roles: caller.roles, traits: caller.traits };
  }
  authorize(caller, "user", "read");
  authorize(caller, "role", "read");
  const now = await accessSnapshot(ctx.backend, ctx.clock);
  const record = await now.user(user!);
  if (!record) throw new AzgateError("not_found", `user "${user}" not found`);
  const roles = (await Promise.all(record.spec.roles.map((r) => now.role(r)))).filter((r): r is Role => r !== null);
  return { name: record.metadata.name, roles, traits: record.spec.traits };
}

/** A resource ID (in the one grammar, Azure's spelling), or a name (teleport-reader) among the identities the roles allow. */
function resolveIdentity(roles: Role[], traits: Record<string, string[]>, given: string | undefined): string {
  if (!given) throw new AzgateError("bad_parameter", "give the Azure identity (--azure-identity NAME or resource ID)");
  if (given.startsWith("/")) return requireIdentityId(given, "--azure-identity").id;
  const matches = allowedAzureIdentities(roles, traits).filter((id) => identityName(id).toLowerCase() === given.toLowerCase());
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) throw new AzgateError("bad_parameter", `"${given}" names several identities; give the resource ID: ${matches.join(", ")}`);
  throw new AzgateError("not_found", `no role allows an Azure identity named "${given}"; give its resource ID to explain a refusal`);
}
