/**
 * The Azure identities azgate knows of, for access requests: what a glob in
 * `request.azure_identities` offers by name (web UI, CLI) and what a short
 * name may mean. Two sources: every identity ID the roles name literally
 * (the backend's roles, and the caller's own roles with their traits), and
 * what agents serving an app the caller's roles allow list from ARM
 * (identity_list, api/control.ts; each agent's list kept LIST_TTL_MS by
 * ctx.clock in the registry). Knowing an identity grants nothing: the
 * request's identity is its full ID, and requestTerms decides on it.
 */
import { callControlWithBody, identityListBody } from "../api/control.ts";
import { MAX_LISTED_IDENTITIES } from "../api/types.ts";
import { distinctIdentities } from "../azure/resource-id.ts";
import { checkAppAccess } from "../rbac/engine.ts";
import { expandAll } from "../rbac/template.ts";
import type { Role } from "../rbac/types.ts";
import type { Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";
import type { AgentTunnel, AppRegistry } from "./registry.ts";

/** How long an agent's list is kept: identities come and go in Azure rarely. */
export const LIST_TTL_MS = 5 * 60_000;
/** A failed list is not asked again for this long (a broken agent must not slow every page). */
const FAILED_TTL_MS = 30_000;
const ASK_TIMEOUT_MS = 5_000;
/** Agents asked at most (each lists what its own identity reads; more agents rarely see more). */
const MAX_AGENTS = 8;

export interface KnownIdentities {
  /** Azure's spelling, each once (canonical form). */
  identities: string[];
  /** False when an agent's list was cut short: a name not found, or found once, may have more holders. */
  complete: boolean;
}

/** Lazily: only a short name or a page that offers identities needs them. */
export type KnownIdentitiesOf = () => Promise<KnownIdentities>;

/** Every identity ID the roles name literally, in any block (templates and patterns are not identities). */
export function identitiesInRoles(roles: Role[]): string[] {
  return distinctIdentities(
    roles.flatMap((r) => [r.spec.allow, r.spec.deny].flatMap((side) => [...(side?.azure_identities ?? []), ...(side?.request?.azure_identities ?? []), ...(side?.review_requests?.azure_identities ?? [])])),
  );
}

/** One agent's list, from the registry's keeping or asked anew. Never throws: an agent that cannot say lists nothing. */
function agentList(ctx: ProxyContext, registry: AppRegistry, tunnel: AgentTunnel): Promise<{ identities: string[]; truncated: boolean }> {
  const now = ctx.clock.now();
  const kept = registry.identityLists.get(tunnel.id);
  if (kept && now < kept.until) return kept.list;
  const list = (async () => {
    try {
      const { answer, body } = await callControlWithBody(tunnel.session, "identity_list", { type: "identity_list" }, { maxBytes: MAX_LISTED_IDENTITIES * 1100, timeoutMs: ASK_TIMEOUT_MS });
      if (!answer.ok) throw new Error(answer.message);
      const ids = identityListBody.parse(JSON.parse(new TextDecoder().decode(body)));
      return { identities: distinctIdentities(ids), truncated: answer.truncated };
    } catch (e) {
      registry.identityLists.set(tunnel.id, { until: ctx.clock.now() + FAILED_TTL_MS, list: Promise.resolve({ identities: [], truncated: false }) });
      console.error(`[proxy] agent ${tunnel.hostName} could not list its Azure identities: ${(e as Error).message}`);
      return { identities: [], truncated: false };
    }
  })();
  registry.identityLists.set(tunnel.id, { until: now + LIST_TTL_MS, list });
  return list;
}

/** What the caller's requests may name: the roles' literal identities and the lists of agents serving apps the caller's roles allow. */
export async function knownIdentities(ctx: ProxyContext, registry: AppRegistry, caller: Caller): Promise<KnownIdentities> {
  const stored = (await ctx.backend.list<Role>(KEYS.roles)).map((i) => i.value);
  const own = caller.roles.flatMap((r) => [r.spec.allow, r.spec.deny].flatMap((side) => [...expandAll(side?.azure_identities, caller.traits), ...expandAll(side?.request?.azure_identities, caller.traits)]));
  const tunnels = new Map<string, AgentTunnel>();
  for (const s of registry.all()) {
    if (s.tunnel.listsIdentities && checkAppAccess(caller.roles, caller.traits, s.app).allowed && !tunnels.has(s.tunnel.id)) tunnels.set(s.tunnel.id, s.tunnel);
  }
  const lists = await Promise.all([...tunnels.values()].slice(0, MAX_AGENTS).map((t) => agentList(ctx, registry, t)));
  return {
    identities: distinctIdentities([...identitiesInRoles(stored), ...own, ...lists.flatMap((l) => l.identities)]),
    complete: lists.every((l) => !l.truncated),
  };
}
