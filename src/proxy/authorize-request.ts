/**
 * May this app session send this request? Every check of the proxy's request
 * path, in order, each refusal an AzgateError with its registered code:
 * the session's identity, the account as it is now (deleted, reset, locked),
 * a server of the app the caller's roles allow on that server's own labels,
 * then the method and the target (the rules of azure/forwarding.ts) in that
 * app's cloud: a request is routed only to servers of the cloud it targets.
 */
import { checkAzureMethod, checkAzureTarget } from "../azure/forwarding.ts";
import { AccessDenied, AppUnavailable } from "../errors/index.ts";
import type { Identity } from "../pki/identity.ts";
import { checkAzureIdentity } from "../rbac/engine.ts";
import type { HeaderList } from "../tunnel/http.ts";
import { resolveCaller, type Caller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import type { AppRegistry, AppServer } from "./registry.ts";

export interface Authorized {
  caller: Caller;
  app: string;
  azureIdentity: string;
  /** The servers of the app this caller may be routed to. */
  allowedOn: (s: AppServer) => boolean;
}

export async function authorizeRequest(ctx: ProxyContext, registry: AppRegistry, identity: Identity, request: { method: string; url: URL; headers: HeaderList }): Promise<Authorized> {
  const route = identity.route;
  if (!route?.azure_identity) throw new AccessDenied("this session has no Azure identity; run azgate apps login APP --azure-identity NAME");
  const azureIdentity = route.azure_identity;
  const caller = await resolveCaller(ctx, identity);
  const known = registry.all(route.app);
  if (known.length === 0) throw new AppUnavailable(`no agent serves app "${route.app}" right now; azgate apps ls shows the apps that are up`);
  const permitted = (s: AppServer) => checkAzureIdentity(caller.roles, caller.traits, s.app, azureIdentity).allowed;
  const first = known.find(permitted);
  if (!first) throw new AccessDenied(checkAzureIdentity(caller.roles, caller.traits, known[0].app, azureIdentity).reason);
  // An app's agents name one cloud; should two disagree, the request goes only to those of the first's.
  const cloud = first.app.cloud;
  const problem = checkAzureMethod(request.method) ?? checkAzureTarget(request.url, request.headers, cloud);
  if (problem) throw problem;
  const allowedOn = (s: AppServer) => s.app.cloud === cloud && permitted(s);
  return { caller, app: route.app, azureIdentity, allowedOn };
}
