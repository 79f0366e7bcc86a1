/**
 * At apps login, the facts of the chosen Azure identity (client, principal and
 * tenant IDs), asked of an agent that serves the app for this caller (see
 * api/types.ts IDENTITY_FACTS_CALL). Best effort: an agent that cannot say
 * (an older agent, no token for the identity yet) leaves them unknown, and
 * the workstation then knows the identity by its resource ID alone.
 */
import { callControl } from "../api/control.ts";
import type { IdentityFacts } from "../api/types.ts";
import type { AppRegistry, AppServer } from "./registry.ts";

const ASK_TIMEOUT_MS = 5_000;

export async function askIdentityFacts(registry: AppRegistry, app: string, accept: (s: AppServer) => boolean, identity: string): Promise<{ facts: IdentityFacts | null; problem?: string }> {
  let problem = "no agent serves the app for this identity now";
  // Two agents at most: the answer is the same from any, and apps login should not wait on many.
  for (const server of registry.servers(app, accept).slice(0, 2)) {
    try {
      // The answer is validated (api/control.ts): IDs are GUIDs, or the call failed.
      const a = await callControl(server.tunnel.session, "identity_facts", { type: "identity_facts", identity }, ASK_TIMEOUT_MS);
      if (a.ok) return { facts: { client_id: a.client_id, principal_id: a.principal_id, tenant_id: a.tenant_id } };
      problem = a.message;
    } catch (e) {
      problem = (e as Error).message;
    }
  }
  return { facts: null, problem };
}
