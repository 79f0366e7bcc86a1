/**
 * Every stream the proxy opens on the agent's tunnel: an identity_facts call
 * at apps login (identity-facts.ts), or an Azure request to forward
 * (forward.ts). The one dispatch, for the agent and the in-process harness.
 */
import { IDENTITY_FACTS_CALL } from "../api/types.ts";
import type { TunnelStream } from "../tunnel/index.ts";
import { forwardStream, type ForwarderDeps } from "./forward.ts";
import { answerIdentityFacts } from "./identity-facts.ts";

export const isIdentityFactsCall = (stream: TunnelStream) => stream.meta.type === IDENTITY_FACTS_CALL;

export function serveProxyStream(deps: ForwarderDeps, stream: TunnelStream): Promise<void> {
  return isIdentityFactsCall(stream) ? answerIdentityFacts(deps.tokens, stream) : forwardStream(deps, stream);
}
