/**
 * The agent's side of one Azure request (DESIGN.md section 4 step 6):
 * check the target, verify the placeholder token against the client's key and
 * the session's identity, swap in a real token, and stream the request to
 * Azure and the response back, with the upstream status and timings in a
 * trailer.
 */
import { checkFraming, checkFramingHead, framedBody, isBodyless } from "../azure/framing.ts";
import { scopeForResource } from "../azure/scopes.ts";
import { tokenMayGoTo } from "../azure/audiences.ts";
import { verifyPlaceholder } from "../azure/placeholder.ts";
import { agentRequestSchema, checkAzureMethod, checkAzureTarget, forwardableHeaders, refusal, releaseSchema } from "../azure/forwarding.ts";
import { differsFromDecided } from "../azure/operation.ts";
import { identityRefusal } from "../azure/resource-id.ts";
import { AzgateError, BadRequest, PlaceholderInvalid, PolicyDenied, TargetUnreachable, TokenAudienceMismatch, TokenUnavailable, UpstreamFailed } from "../errors/index.ts";
import { ErrorCode, type TunnelStream } from "../tunnel/index.ts";
import { headerValue, respondJson, type ResponseTrailer } from "../tunnel/http.ts";
import type { Outbound } from "./outbound.ts";
import type { PreparedHttpsRequest } from "../runtime/index.ts";
import type { AzureTokenProvider } from "./tokens.ts";
import type { Clock } from "../util/clock.ts";
import type { LogLine } from "../util/log.ts";
import { endWithStatus, NO_TRACING, SpanKind, type Span, type Tracing } from "../tracing/index.ts";

export interface ForwarderDeps {
  outbound: Outbound;
  tokens: AzureTokenProvider;
  log?: LogLine;
  /** Judges the placeholder's expiry. */
  clock: Clock;
  /** The agent's spans (tracing/): its part of the request, the token, the call to Azure. */
  tracing?: Tracing;
}

export async function forwardStream(deps: ForwarderDeps, stream: TunnelStream): Promise<void> {
  const started = performance.now();
  const tracing = deps.tracing ?? NO_TRACING;
  /** The agent's span, once the request's head is read (a child of the proxy's: its traceparent); ended once. */
  let span: Span | undefined;
  const endSpan = (status: number | undefined, error?: string) => {
    if (span) endWithStatus(span, status, error);
    span = undefined;
  };
  const refuse = (err: AzgateError) => {
    deps.log?.(`refused ${err.code}: ${err.message}`, "warn");
    const r = refusal(err, "azgate agent");
    endSpan(r.status, err.code);
    return respondJson(stream, r.status, r.body).catch(() => undefined);
  };
  const parsed = agentRequestSchema.safeParse(stream.meta);
  if (!parsed.success) return refuse(new BadRequest("malformed stream metadata"));
  const meta = parsed.data;
  // The session's identity in the one grammar (azure/resource-id.ts), checked here again: no token for what ARM would read otherwise.
  const badIdentity = identityRefusal(meta.session.azure_identity, "the session's Azure identity");
  if (badIdentity) return refuse(new BadRequest(badIdentity));
  let url: URL;
  try {
    url = new URL(meta.url);
  } catch {
    return refuse(new BadRequest("malformed URL"));
  }
  const agentSpan = tracing.start(`azgate agent ${meta.method}`, SpanKind.SERVER, meta.headers, { "http.request.method": meta.method, "server.address": url.hostname, "url.path": url.pathname, "azgate.request_id": meta.request_id });
  span = agentSpan;
  // The path only: a query may carry a SAS signature.
  deps.log?.(`forwarding ${meta.method} ${url.host}${url.pathname} as ${meta.session.azure_identity}`, "debug");

  // 1. The method and the target (forwarding.ts): Azure's methods only, an Azure API host over HTTPS on 443
  //    named only by the URL. Checked here again, whatever the proxy decided: nothing is attached before.
  const targetProblem = checkAzureMethod(meta.method) ?? checkAzureTarget(url, meta.headers, deps.tokens.cloud.name);
  if (targetProblem) return refuse(targetProblem);
  try {
    checkFramingHead(meta.method, meta.headers);
  } catch (e) {
    return refuse(e as AzgateError);
  }
  //    Where an azure_api policy applied, exactly the request the proxy decided on (docs/tunnel-protocol.md).
  if (meta.decided) {
    const changed = differsFromDecided(meta.decided, { method: meta.method, host: url.hostname, path: url.pathname, query: url.searchParams, headers: meta.headers }, deps.tokens.cloud.name);
    if (changed) return refuse(new PolicyDenied(changed));
  }
  let pinned;
  try {
    pinned = await deps.outbound.pinChecked(url.hostname, 443);
  } catch (e) {
    return refuse(e instanceof AzgateError ? e : new TargetUnreachable((e as Error).message));
  }

  // 2. The token: verify the placeholder, then swap in a real one.
  const headers = forwardableHeaders(meta.headers, "request").filter(([k]) => k.toLowerCase() !== "authorization");
  let tokenMs: number | undefined;
  let principalId: string | undefined;
  const auth = headerValue(meta.headers, "authorization");
  if (auth.length > 1) return refuse(new BadRequest("more than one Authorization header"));
  if (auth.length === 1) {
    const m = /^Bearer (\S+)$/.exec(auth[0]);
    if (!m) return refuse(new PlaceholderInvalid("malformed", "Authorization must be a Bearer token from azgate's token endpoint"));
    let resource: string;
    try {
      resource = verifyPlaceholder(m[1], meta.client_key as JsonWebKey, meta.session.azure_identity, deps.clock.date()).resource;
    } catch (e) {
      return refuse(e instanceof PlaceholderInvalid ? e : new PlaceholderInvalid("malformed", "the client key is unusable"));
    }
    if (!tokenMayGoTo(resource, url.hostname, deps.tokens.cloud.name)) {
      return refuse(new TokenAudienceMismatch(`a token for ${resource} is not sent to ${url.hostname}; ask the token endpoint for this service's resource`));
    }
    const t0 = performance.now();
    const tokenSpan = tracing.start("Entra ID token", SpanKind.CLIENT, agentSpan, { "azgate.resource": resource });
    try {
      const got = await deps.tokens.getToken(meta.session.azure_identity, scopeForResource(resource));
      headers.push(["authorization", `Bearer ${got.token}`]);
      principalId = got.principalId;
      tokenSpan.end();
    } catch (e) {
      endWithStatus(tokenSpan, undefined, (e as Error).message);
      return refuse(e instanceof TokenUnavailable ? e : new TokenUnavailable("unavailable", (e as Error).message));
    }
    tokenMs = performance.now() - t0;
  }

  // 3. The call to Azure, in a span of its own, which Azure gets as its traceparent (ARM and the data planes log it).
  //    Connections are pooled per Azure identity: none carries one identity's request into another's (defence in depth).
  const azureSpan = tracing.start(`Azure ${meta.method} ${url.hostname}`, SpanKind.CLIENT, agentSpan, { "http.request.method": meta.method, "server.address": url.hostname, "url.path": url.pathname });
  const forwarded: [string, string][] = tracing.forward(headers, azureSpan).filter(([k]) => !["content-length", "expect"].includes(k.toLowerCase()));
  const abort = new AbortController();
  void stream.done().then(() => stream.resetError && abort.abort(new Error(`stream reset: ${stream.resetError.reason}`)));
  const call = (length: number | null, withBody: boolean) =>
    deps.outbound.prepare(url, pinned, { method: meta.method, headers: length === null ? forwarded : [...forwarded, ["content-length", String(length)]], body: withBody ? framedBody(stream.readable, length) : null, signal: abort.signal, pool: meta.session.azure_identity.toLowerCase() });
  //    A held request of a method without a body has its call built while the proxy writes the audit event (a
  //    pooled connection taken, the head serialised), to go on the release: nothing of it is sent before.
  const early = meta.hold && isBodyless(meta.method) ? prepareEarly(meta.method, meta.headers, call) : null;

  // 4. A held request waits for the proxy's word that it is audited (docs/tunnel-protocol.md): nothing reaches Azure before.
  if (meta.hold && !releaseSchema.safeParse(await stream.readMeta().catch(() => null)).success) {
    early?.cancel();
    if (!stream.resetError) stream.reset(ErrorCode.PROTOCOL_ERROR, "a held request goes on only after the proxy's release");
    endWithStatus(azureSpan, undefined, "not released");
    return endSpan(undefined, "not released");
  }

  // 5. Forward, streaming both ways with backpressure, the body framed as azure/framing.ts decides: a declared
  //    length enforced byte for byte, or chunks; never a body Azure could read as a second request.
  await stream.bodyKnown();
  let length: number | null = null;
  try {
    if (stream.resetError) throw new Error("stream reset");
    length = checkFraming(meta.method, meta.headers, !stream.drained);
  } catch (e) {
    early?.cancel();
    endWithStatus(azureSpan, undefined, (e as Error).message);
    if (stream.resetError) return endSpan(undefined, "stream reset");
    return refuse(e as AzgateError);
  }
  // A request whose body has already ended empty (a GET, a DELETE) needs no body stream.
  const t1 = performance.now();
  let res;
  try {
    res = await (early ?? call(length, !stream.drained)).send().catch((e) => {
      // A pooled connection the other end closed as it was reused: a read with no body that got no answer goes once more, on a new one.
      if (stream.resetError || abort.signal.aborted || !stream.drained || (meta.method !== "GET" && meta.method !== "HEAD")) throw e;
      return call(length, false).send();
    });
  } catch (e) {
    endWithStatus(azureSpan, undefined, (e as Error).message);
    if (stream.resetError) return endSpan(undefined, "stream reset");
    const cause = (e as Error).cause as Error | undefined;
    return refuse(new UpstreamFailed(`${url.host}: ${(e as Error).message}${cause?.message ? ` (${cause.message})` : ""}`));
  }
  const upstreamMs = performance.now() - t1;
  const msRequestId = headerValue(res.headers, "x-ms-request-id")[0];
  if (msRequestId) azureSpan.setAttribute("azure.request_id", msRequestId);
  const responseHeaders = forwardableHeaders(res.headers, "response");
  try {
    stream.sendMeta({ status: res.status, headers: responseHeaders });
    for await (const chunk of res.body) await stream.write(chunk);
  } catch (e) {
    if (!stream.resetError) stream.reset(ErrorCode.INTERNAL_ERROR, `upstream body failed: ${(e as Error).message}`);
    abort.abort();
    endWithStatus(azureSpan, res.status, (e as Error).message);
    return endSpan(res.status, (e as Error).message);
  }
  endWithStatus(azureSpan, res.status);
  endSpan(res.status);
  const trailer: ResponseTrailer = { timings: { total_ms: round(performance.now() - started), upstream_ms: round(upstreamMs), ...(tokenMs !== undefined ? { token_ms: round(tokenMs) } : {}) }, ...(principalId ? { principal_id: principalId } : {}) };
  stream.sendMeta(trailer);
  stream.end();
}

const round = (ms: number) => Math.round(ms * 10) / 10;

/** The call of a bodyless request as its head frames it (no body, a length of 0 at most); none when that framing is refused (step 5 says why). */
function prepareEarly(method: string, headers: [string, string][], call: (length: number | null, withBody: boolean) => PreparedHttpsRequest): PreparedHttpsRequest | null {
  try {
    return call(checkFraming(method, headers, false), false);
  } catch {
    return null;
  }
}
