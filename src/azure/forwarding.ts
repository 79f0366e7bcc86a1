/**
 * The rules of the Azure request path, each written once (pure, no I/O).
 * The workstation's local proxy, the proxy and the agent all call these:
 *
 *   - what an Azure target is (`checkAzureTarget`);
 *   - which methods are forwarded (`checkAzureMethod`);
 *   - which headers cross a hop (`forwardableHeaders`);
 *   - what each leg carries (`agentRequestSchema`; the client leg and the
 *     response are tunnel/http.ts's `requestHeadSchema`, `responseHeadSchema`
 *     and `responseTrailerSchema`);
 *   - what a refusal looks like (`refusal`).
 *
 * docs/architecture.md points here; docs/tunnel-protocol.md lists the codes.
 */
import { z } from "zod";
import { MethodNotAllowed, TargetRefused, type AzgateError } from "../errors/index.ts";
import { headerValue, requestHeadSchema, type HeaderList } from "../tunnel/http.ts";
import type { CloudName } from "./clouds.ts";
import { isAzureEndpoint } from "./endpoints.ts";
import { AZURE_METHODS, isAzureMethod } from "./methods.ts";

// ---- the legs ----

/** Proxy to agent: the client's request head, plus who asked and with which key (the agent checks the placeholder with it). */
export const agentRequestSchema = requestHeadSchema.extend({
  session: z.object({ user: z.string(), app: z.string(), azure_identity: z.string().min(1), session_id: z.string() }),
  client_key: z.record(z.string(), z.unknown()),
  request_id: z.string(),
  /** The request an azure_api policy authorised (docs/tunnel-protocol.md): the agent forwards exactly that or nothing. */
  decided: z.object({ method: z.string(), host: z.string(), path: z.string(), action: z.string().nullable() }).optional(),
  /**
   * The proxy's audit event for this request may not be stored yet: the agent
   * makes its checks but sends nothing to Azure before the proxy's RELEASE
   * (docs/tunnel-protocol.md). Only to agents whose heartbeat lists "hold".
   */
  hold: z.literal(true).optional(),
});
export type AgentRequest = z.infer<typeof agentRequestSchema>;

/** Proxy to agent, on a held request's stream once its audit event is stored: go ahead. */
export const RELEASE = { release: true } as const;
export const releaseSchema = z.object({ release: z.literal(true) });

/** What this agent can do, in its heartbeats: "hold" is the wait for RELEASE above; "identity_list" answers that call (api/control.ts). */
export const AGENT_FEATURES = ["hold", "identity_list"];

// ---- the target ----

/** Headers that name a host: one that names another than the URL is an attempt to steer the request. */
const HOST_NAMING = ["host", "x-forwarded-host", "forwarded", "x-original-host", "x-host"];

/** Why the request's target is refused, or null: the app's cloud's API hosts over HTTPS on 443, named only by the URL. */
export function checkAzureTarget(url: URL, headers: HeaderList, cloud: CloudName): TargetRefused | null {
  if (url.protocol !== "https:") return new TargetRefused(`${url.protocol}//${url.host} is not HTTPS; azgate forwards to Azure over HTTPS only`);
  if (url.port && url.port !== "443") return new TargetRefused(`port ${url.port} is not allowed; Azure APIs are on 443`);
  if (url.username || url.password) return new TargetRefused("URLs with credentials are not forwarded");
  if (!isAzureEndpoint(url.hostname, cloud)) return new TargetRefused(`${url.hostname} is not an Azure API host${cloud === "Azure" ? "" : ` of ${cloud}`}`);
  for (const name of HOST_NAMING) {
    for (const v of headerValue(headers, name)) {
      const claimed = name === "forwarded" ? /host="?([^;,"]+)/i.exec(v)?.[1] : v.trim();
      if (claimed && claimed.toLowerCase().replace(/:443$/, "") !== url.hostname.toLowerCase()) {
        return new TargetRefused(`the ${name} header names ${claimed}, not the request's host ${url.hostname}`);
      }
    }
  }
  return null;
}

/** Only the methods Azure APIs use: a TRACE would echo the real token back. */
export function checkAzureMethod(method: string): MethodNotAllowed | null {
  return isAzureMethod(method) ? null : new MethodNotAllowed(`method ${method} is not used by Azure APIs; azgate forwards only ${AZURE_METHODS.join(", ")}`);
}

// ---- headers ----

/** Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, never the next. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"]);
/** Headers that name or describe the client's route: the next hop sets its own. */
const ROUTE = new Set(["host", "forwarded", "x-real-ip"]);

/**
 * The headers that cross a hop. Requests lose hop-by-hop headers, route
 * headers (Host, Forwarded, X-Forwarded-*, X-Real-IP) and azgate's own
 * (x-azgate-*), whoever set them; responses lose hop-by-hop headers only.
 */
export function forwardableHeaders(headers: HeaderList, direction: "request" | "response"): HeaderList {
  return headers.filter(([name]) => {
    const n = name.toLowerCase();
    if (HOP_BY_HOP.has(n)) return false;
    if (direction === "response") return true;
    return !ROUTE.has(n) && !n.startsWith("x-forwarded-") && !n.startsWith("x-azgate-");
  });
}

// ---- refusals ----

/** Who refused, as the message starts: a person reading az's output can tell the hops apart. */
export type Speaker = "azgate" | "azgate agent";

/** A refusal as every hop answers it: the error's registered status, and `{"error":{"code","message"}}` (ARM's shape, which az prints). */
export function refusal(err: AzgateError, speaker: Speaker): { status: number; body: { error: { code: string; message: string } } } {
  return { status: err.status, body: { error: { code: err.azureCode ?? err.code, message: `${speaker}: ${err.message}` } } };
}
