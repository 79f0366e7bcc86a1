/**
 * At apps login, the facts of the chosen Azure identity (client, principal and
 * tenant IDs), asked of an agent that serves the app for this caller (see
 * api/types.ts IDENTITY_FACTS_CALL). Best effort: an agent that cannot say
 * (an older agent, no token for the identity yet) leaves them unknown, and
 * the workstation then knows the identity by its resource ID alone.
 */
import { controlCall } from "../tunnel/index.ts";
import { IDENTITY_FACTS_CALL, type IdentityFacts } from "../api/types.ts";
import type { AppRegistry, AppServer } from "./registry.ts";
import { isGuid } from "../azure/guid.ts";
const ASK_TIMEOUT_MS = 5_000;

export async function askIdentityFacts(registry: AppRegistry, app: string, accept: (s: AppServer) => boolean, identity: string): Promise<{ facts: IdentityFacts | null; problem?: string }> {
  let problem = "no agent serves the app for this identity now";
  // Two agents at most: the answer is the same from any, and apps login should not wait on many.
  for (const server of registry.servers(app, accept).slice(0, 2)) {
    try {
      const a = await controlCall<Partial<IdentityFacts> & { ok?: boolean; message?: string }>(server.tunnel.session, { type: IDENTITY_FACTS_CALL, identity }, ASK_TIMEOUT_MS);
      if (a.ok === true && [a.client_id, a.principal_id, a.tenant_id].every(isGuid)) {
        return { facts: { client_id: a.client_id!, principal_id: a.principal_id!, tenant_id: a.tenant_id! } };
      }
      problem = typeof a.message === "string" ? a.message : "the agent does not answer identity_facts";
    } catch (e) {
      problem = (e as Error).message;
    }
  }
  return { facts: null, problem };
}
