/**
 * The agent's answer to the proxy's identity_facts call (api/types.ts): the
 * identity's client, principal and tenant IDs, taken from the claims of a
 * real ARM token for it. The token is cached for the requests that follow,
 * and a failure here (no federated credential, say) is the one the user
 * would otherwise meet at the first request, told at apps login instead.
 */
import { decodeJwt } from "jose";
import type { TunnelStream } from "../tunnel/index.ts";
import { answerControl, parseControlRequest } from "../api/control.ts";
import { AzgateError } from "../errors/index.ts";
import type { IdentityFacts } from "../api/types.ts";
import type { AzureTokenProvider } from "./tokens.ts";
import { isGuid } from "../azure/guid.ts";

export async function identityFacts(tokens: AzureTokenProvider, identity: string): Promise<IdentityFacts> {
  const { token } = await tokens.getToken(identity, tokens.armScope);
  const claims = decodeJwt(token);
  const facts = { client_id: claims.appid ?? claims.azp, principal_id: claims.oid, tenant_id: claims.tid };
  for (const [k, v] of Object.entries(facts)) {
    if (!isGuid(v)) throw new Error(`the token Entra ID issued for ${identity} has no ${k.replace("_id", "")} ID claim`);
  }
  return facts as IdentityFacts;
}

export async function answerIdentityFacts(tokens: AzureTokenProvider, stream: TunnelStream): Promise<void> {
  try {
    const { identity } = parseControlRequest("identity_facts", stream.meta);
    answerControl(stream, "identity_facts", { ok: true, ...(await identityFacts(tokens, identity)) });
  } catch (e) {
    answerControl(stream, "identity_facts", { ok: false, ...(e instanceof AzgateError ? { code: e.code } : {}), message: (e as Error).message });
  }
}
