/**
 * The agent's answer to the proxy's identity_list call (api/control.ts): the
 * user-assigned identities its own identity can read in ARM, in every
 * subscription it can see. The proxy decides what to offer from them (a
 * request glob's matches, a short name's candidates); the agent only lists.
 * Bounded: at most MAX_LISTED_IDENTITIES identities and MAX_PAGES pages of
 * ARM answers, nextLinks only on the ARM host (tokens.ts armGetAsAgent).
 */
import type { TunnelStream } from "../tunnel/index.ts";
import { answerControl, answerControlWithBody, parseControlRequest } from "../api/control.ts";
import { MAX_LISTED_IDENTITIES } from "../api/types.ts";
import { AzgateError } from "../errors/index.ts";
import { isGuid } from "../azure/guid.ts";
import { parseIdentityId } from "../azure/resource-id.ts";
import type { AzureTokenProvider } from "./tokens.ts";

const SUBSCRIPTIONS_API = "2022-12-01";
const IDENTITIES_API = "2023-01-31";
const MAX_PAGES = 200;

/** Every item of a paged ARM list, following nextLink (on the ARM host only) within the page budget. */
async function armList(tokens: AzureTokenProvider, first: string, budget: { pages: number }): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  for (let next: string | undefined = first; next; ) {
    if (budget.pages-- <= 0) throw new AzgateError("upstream_failed", `ARM's answers ran past ${MAX_PAGES} pages`);
    const res = await tokens.armGetAsAgent(next);
    if (res.status === 401 || res.status === 403) throw new AzgateError("access_denied", `the agent's own identity may not list this in ARM (HTTP ${res.status}); grant it Microsoft.ManagedIdentity/userAssignedIdentities/read (Managed Identity Operator) where the identities live`);
    if (res.status !== 200) throw new AzgateError("upstream_failed", `ARM answered HTTP ${res.status} to a list`);
    const page = JSON.parse(res.body) as { value?: unknown; nextLink?: unknown };
    if (Array.isArray(page.value)) items.push(...page.value.filter((v): v is Record<string, unknown> => typeof v === "object" && v !== null));
    next = typeof page.nextLink === "string" && page.nextLink ? page.nextLink : undefined;
  }
  return items;
}

/** The identities the agent's own identity can read, in Azure's spelling (each parsed: anything else is left out). */
export async function listIdentities(tokens: AzureTokenProvider): Promise<{ identities: string[]; truncated: boolean }> {
  const budget = { pages: MAX_PAGES };
  const subscriptions = (await armList(tokens, `/subscriptions?api-version=${SUBSCRIPTIONS_API}`, budget)).map((s) => s.subscriptionId).filter((id): id is string => typeof id === "string" && isGuid(id));
  const out = new Map<string, string>();
  for (const sub of subscriptions) {
    let found: Record<string, unknown>[];
    try {
      found = await armList(tokens, `/subscriptions/${sub}/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=${IDENTITIES_API}`, budget);
    } catch (e) {
      // A subscription the agent sees but may not list identities in holds none it could serve: the others still count.
      if (e instanceof AzgateError && e.code === "access_denied") continue;
      throw e;
    }
    for (const item of found) {
      const id = typeof item.id === "string" ? parseIdentityId(item.id) : null;
      if (id && !out.has(id.canonical)) out.set(id.canonical, id.id);
      if (out.size > MAX_LISTED_IDENTITIES) return { identities: [...out.values()].slice(0, MAX_LISTED_IDENTITIES), truncated: true };
    }
  }
  return { identities: [...out.values()], truncated: false };
}

/** Answers identity_list: the meta says how many, the body carries them as one JSON array (too many for a META frame). */
export async function answerIdentityList(tokens: AzureTokenProvider, stream: TunnelStream): Promise<void> {
  try {
    parseControlRequest("identity_list", stream.meta);
    const { identities, truncated } = await listIdentities(tokens);
    await answerControlWithBody(stream, "identity_list", { ok: true, count: identities.length, truncated }, new TextEncoder().encode(JSON.stringify(identities)));
  } catch (e) {
    answerControl(stream, "identity_list", { ok: false, ...(e instanceof AzgateError ? { code: e.code } : {}), message: (e as Error).message });
  }
}
