/**
 * Every stream the proxy opens on the agent's tunnel: an identity_facts call
 * at apps login (identity-facts.ts), an identity_list call for access
 * requests (identity-list.ts), or an Azure request to forward (forward.ts).
 * The one dispatch, for the agent and the in-process harness.
 */
import { IDENTITY_FACTS_CALL, IDENTITY_LIST_CALL } from "../api/types.ts";
import type { TunnelStream } from "../tunnel/index.ts";
import { forwardStream, type ForwarderDeps } from "./forward.ts";
import { answerIdentityFacts } from "./identity-facts.ts";
import { answerIdentityList } from "./identity-list.ts";

export const isIdentityFactsCall = (stream: TunnelStream) => stream.meta.type === IDENTITY_FACTS_CALL;
/** A control call of the proxy's (not a request to forward): identity_facts or identity_list. */
export const isProxyCall = (stream: TunnelStream) => stream.meta.type === IDENTITY_FACTS_CALL || stream.meta.type === IDENTITY_LIST_CALL;

export function serveProxyStream(deps: ForwarderDeps, stream: TunnelStream): Promise<void> {
  if (stream.meta.type === IDENTITY_LIST_CALL) return answerIdentityList(deps.tokens, stream);
  return isIdentityFactsCall(stream) ? answerIdentityFacts(deps.tokens, stream) : forwardStream(deps, stream);
}
