/**
 * The agent's side of one Azure request (DESIGN.md section 4 step 6):
 * check the target, verify the placeholder token against the client's key and
 * the session's identity, swap in a real token, and stream the request to
 * Azure and the response back, with the upstream status and timings in a
 * trailer.
 */
import { isAzureEndpoint } from "../azure/endpoints.ts";
import { isAzureMethod } from "../azure/methods.ts";
import { scopeForResource } from "../azure/scopes.ts";
import { tokenMayGoTo } from "../azure/audiences.ts";
import { PlaceholderError, verifyPlaceholder } from "../azure/placeholder.ts";
import { ErrorCode, type TunnelStream } from "../tunnel/index.ts";
import { headerValue, requestHeadSchema, respondJson, type HeaderList, type ResponseTrailer } from "../tunnel/http.ts";
import { z } from "zod";
import { TargetRefused, type Outbound } from "./outbound.ts";
import { TokenError, type AzureTokenProvider } from "./tokens.ts";

/** Hop-by-hop headers (RFC 9110 7.6.1) and ones that would let a client steer or spoof the request. */
const STRIPPED_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "forwarded",
  "x-real-ip",
]);
const isStripped = (name: string) => STRIPPED_HEADERS.has(name) || name.startsWith("x-forwarded-") || name.startsWith("x-azgate-");

const streamMetaSchema = requestHeadSchema.extend({
  session: z.object({ user: z.string(), app: z.string(), azure_identity: z.string().min(1), session_id: z.string() }),
  client_key: z.record(z.string(), z.unknown()),
  request_id: z.string(),
});

export interface ForwarderDeps {
  outbound: Outbound;
  tokens: AzureTokenProvider;
  log?: (line: string) => void;
}

type Refusal = { status: number; code: string; message: string };
const refusal = (status: number, code: string, message: string): Refusal => ({ status, code, message });

export async function forwardStream(deps: ForwarderDeps, stream: TunnelStream): Promise<void> {
  const started = performance.now();
  const refuse = (r: Refusal) => {
    deps.log?.(`refused ${r.code}: ${r.message}`);
    return respondJson(stream, r.status, { error: { code: r.code, message: `azgate agent: ${r.message}` } }).catch(() => undefined);
  };
  const parsed = streamMetaSchema.safeParse(stream.meta);
  if (!parsed.success) return refuse(refusal(400, "bad_request", "malformed stream metadata"));
  const meta = parsed.data;
  let url: URL;
  try {
    url = new URL(meta.url);
  } catch {
    return refuse(refusal(400, "bad_request", "malformed URL"));
  }

  // 0. The method: only those Azure APIs use, so a TRACE cannot echo the real token back.
  if (!isAzureMethod(meta.method)) return refuse(refusal(405, "method_not_allowed", `method ${meta.method} is not used by Azure APIs; refused before any token was attached`));

  // 1. The target: an Azure API host, over HTTPS on 443, named only by the URL.
  const targetProblem = checkTarget(url, meta.headers);
  if (targetProblem) return refuse(targetProblem);
  let pinned;
  try {
    pinned = await deps.outbound.pin(url.hostname, 443, true);
  } catch (e) {
    return refuse(e instanceof TargetRefused ? refusal(403, "target_refused", e.message) : refusal(502, "target_unreachable", (e as Error).message));
  }

  // 2. The token: verify the placeholder, then swap in a real one.
  const headers: [string, string][] = meta.headers.filter(([k]) => !isStripped(k.toLowerCase()) && k.toLowerCase() !== "authorization");
  let tokenMs: number | undefined;
  const auth = headerValue(meta.headers, "authorization");
  if (auth.length > 1) return refuse(refusal(400, "bad_request", "more than one Authorization header"));
  if (auth.length === 1) {
    const m = /^Bearer (\S+)$/.exec(auth[0]);
    if (!m) return refuse(refusal(401, "token_invalid", "Authorization must be a Bearer token from azgate's token endpoint"));
    let resource: string;
    try {
      resource = verifyPlaceholder(m[1], meta.client_key as JsonWebKey, meta.session.azure_identity).resource;
    } catch (e) {
      const problem = e instanceof PlaceholderError ? e.message : "the client key is unusable";
      return refuse(refusal(401, "token_invalid", problem));
    }
    if (!tokenMayGoTo(resource, url.hostname)) {
      return refuse(refusal(403, "token_audience_mismatch", `a token for ${resource} is not sent to ${url.hostname}; ask the token endpoint for this service's resource`));
    }
    const t0 = performance.now();
    try {
      headers.push(["authorization", `Bearer ${(await deps.tokens.getToken(meta.session.azure_identity, scopeForResource(resource))).token}`]);
    } catch (e) {
      const code = e instanceof TokenError ? `token_${e.reason}` : "token_unavailable";
      return refuse(refusal(e instanceof TokenError && e.reason === "timeout" ? 504 : 502, code, (e as Error).message));
    }
    tokenMs = performance.now() - t0;
  }

  // 3. Forward, streaming both ways with backpressure.
  const t1 = performance.now();
  const abort = new AbortController();
  void stream.done().then(() => stream.resetError && abort.abort(new Error(`stream reset: ${stream.resetError.reason}`)));
  let res;
  try {
    res = await deps.outbound.send(url, pinned, { method: meta.method, headers, body: stream.readable, signal: abort.signal });
  } catch (e) {
    if (stream.resetError) return;
    return refuse(refusal(502, "upstream_failed", `${url.host}: ${(e as Error).message}`));
  }
  const upstreamMs = performance.now() - t1;
  const responseHeaders = res.headers.filter(([k]) => !STRIPPED_HEADERS.has(k.toLowerCase()) || k.toLowerCase() === "host");
  try {
    stream.sendMeta({ status: res.status, headers: responseHeaders });
    await res.body.pipeTo(stream.writable, { preventClose: true });
  } catch (e) {
    if (!stream.resetError) stream.reset(ErrorCode.INTERNAL_ERROR, `upstream body failed: ${(e as Error).message}`);
    abort.abort();
    return;
  }
  const trailer: ResponseTrailer = { timings: { total_ms: round(performance.now() - started), upstream_ms: round(upstreamMs), ...(tokenMs !== undefined ? { token_ms: round(tokenMs) } : {}) } };
  stream.sendMeta(trailer as unknown as Record<string, unknown>);
  stream.end();
}

const round = (ms: number) => Math.round(ms * 10) / 10;

/** Why the target is refused, or null. Exported for tests. */
export function checkTarget(url: URL, headers: HeaderList): Refusal | null {
  if (url.protocol !== "https:") return refusal(403, "target_refused", `${url.protocol}//${url.host} is not HTTPS; the agent forwards to Azure over HTTPS only`);
  if (url.port && url.port !== "443") return refusal(403, "target_refused", `port ${url.port} is not allowed; Azure APIs are on 443`);
  if (url.username || url.password) return refusal(403, "target_refused", "URLs with credentials are not forwarded");
  if (!isAzureEndpoint(url.hostname)) return refusal(403, "target_refused", `${url.hostname} is not an Azure API host`);
  // The URL names the target; a header that names another is an attempt to steer the agent.
  for (const name of ["host", "x-forwarded-host", "forwarded", "x-original-host", "x-host"]) {
    for (const v of headerValue(headers, name)) {
      const claimed = name === "forwarded" ? /host="?([^;,"]+)/i.exec(v)?.[1] : v.trim();
      if (claimed && claimed.toLowerCase().replace(/:443$/, "") !== url.hostname.toLowerCase()) {
        return refusal(403, "target_refused", `the ${name} header names ${claimed}, not the request's host ${url.hostname}`);
      }
    }
  }
  return null;
}
