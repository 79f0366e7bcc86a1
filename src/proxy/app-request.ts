/**
 * One client stream, one Azure request, top to bottom:
 *
 *   1. parse the request head;
 *   2. authorise it (authorize-request.ts); a refusal is audited and answered;
 *   3. audit the start: when the log cannot be written, nothing is forwarded;
 *   4. relay it to an agent (relay.ts), which may make its checks while
 *      the start event is written, but sends nothing to Azure before;
 *   5. audit what it did.
 */
import { checkFramingHead, isBodyless } from "../azure/framing.ts";
import { audit } from "../audit/events.ts";
import { refusal, type AgentRequest } from "../azure/forwarding.ts";
import { AZGATE_ERROR_HEADER, errorHeaderValue } from "../api/error-header.ts";
import { redactQuery } from "../azure/redact.ts";
import { commandId, readClientInfo, type ClientInfo } from "../azure/client-info.ts";
import { AuditUnavailable, AgentUnavailable, AzgateError, BadRequest, isAzgateError, PolicyDenied } from "../errors/index.ts";
import { botFields, type Identity } from "../pki/identity.ts";
import type { TunnelStream } from "../tunnel/index.ts";
import { requestHeadSchema, respondJson } from "../tunnel/http.ts";
import { auditPolicy, authorizeRequest } from "./authorize-request.ts";
import type { ProxyContext } from "./context.ts";
import type { AppRegistry } from "./registry.ts";
import { relayToAgents } from "./relay.ts";
import { retiredIssuer } from "./rotation-trust.ts";
import { endWithStatus, SpanKind, traceIdOf, type Span } from "../tracing/index.ts";

export interface ClientSession {
  identity: Identity;
  clientKey: JsonWebKey;
  remoteAddr?: string;
  /** The pin of the CA that signed the tunnel's certificate: a rotation's final standby may retire it (rotation-trust.ts retiredIssuer). */
  issuerPin?: string;
}

export async function handleAppRequest(ctx: ProxyContext, registry: AppRegistry, client: ClientSession, stream: TunnelStream): Promise<void> {
  const requestId = crypto.randomUUID();
  // Elapsed time for the audit event and metrics only (the monotonic clock; util/clock.ts says why not the Clock).
  const started = performance.now();
  /** This request's span (tracing/), from its head on; ended once, with the answer's status. */
  let span: Span | undefined;
  const endSpan = (status: number | undefined, error?: string) => {
    if (span) endWithStatus(span, status, error);
    span = undefined;
  };
  const answer = (err: AzgateError) => {
    const r = refusal(err, "azgate");
    endSpan(r.status, err.code);
    return respondJson(stream, r.status, r.body, [["x-azgate-request-id", requestId], [AZGATE_ERROR_HEADER, errorHeaderValue(err)]]).catch(() => undefined);
  };
  const { identity } = client;
  // A bot's name and its run's facts ride on every event of its requests (they are in its certificate).
  const base = { user: identity.name, ...botFields(identity), app: identity.route?.app, azure_identity: identity.route?.azure_identity, session_id: identity.session_id, request_id: requestId };
  /** The command the request belongs to, what the client said about itself, and the trace, once its head is read. */
  const about: { command_id?: string; client?: ClientInfo; trace_id?: string } = {};

  // 1. Parse.
  const parsed = requestHeadSchema.safeParse(stream.meta);
  let url: URL | null = null;
  try {
    if (parsed.success) url = new URL(parsed.data.url);
  } catch {
    url = null;
  }
  if (!parsed.success || !url) return refuse(new BadRequest("malformed request metadata"), {});
  const { invocation, ...head } = parsed.data;
  const request = { method: head.method, host: url.hostname, path: url.pathname };
  // A child of the client's span (its traceparent, which the client's local proxy set); its trace ID goes on every event.
  const requestSpan = ctx.tracing.start(`azgate proxy ${head.method}`, SpanKind.SERVER, head.headers, { "http.request.method": head.method, "server.address": url.hostname, "url.path": url.pathname, "azgate.request_id": requestId, "azgate.user": identity.name });
  span = requestSpan;
  const traceId = traceIdOf(requestSpan);
  if (traceId) about.trace_id = traceId;
  // What the client says about itself (az's command and parameter names, its run): recorded on each event, never decided on.
  const said = readClientInfo(head.headers, invocation);
  Object.assign(about, { command_id: commandId(said, requestId), ...(Object.keys(said).length ? { client: said } : {}) });

  // 2. Authorise. Every refusal goes through here: counted, audited, answered.
  async function refuse(err: AzgateError, what: Record<string, unknown>) {
    ctx.metrics.denials.inc({ reason: err.code });
    const details = err instanceof PolicyDenied ? err.details : {};
    await ctx.audit.emit(audit("APP_REQUEST_DENIED", { ...base, ...about, ...what, ...details, error_code: err.code, reason: err.message, success: false })).catch((e) => console.error("[proxy] audit failed:", e));
    return answer(err);
  }
  // A body the next hop could read as another request is refused before anything else (azure/framing.ts).
  try {
    checkFramingHead(head.method, head.headers);
    // A bodyless method's END comes in the OPEN's own write (the client sends it so): waiting for it costs nothing.
    if (isBodyless(head.method)) {
      await stream.bodyKnown();
      if (!stream.drained) throw new BadRequest(`a ${head.method} request carries no body`);
    }
  } catch (e) {
    return refuse(e as AzgateError, request);
  }
  let authorized;
  try {
    // A tunnel opened before a rotation retired its certificate's CA serves nothing more.
    const retired = client.issuerPin ? retiredIssuer(ctx, "user", client.issuerPin) : null;
    if (retired) throw retired;
    authorized = await authorizeRequest(ctx, registry, identity, { method: head.method, url, headers: head.headers });
  } catch (e) {
    return refuse(isAzgateError(e) ? e : new AzgateError("internal", "internal error; see the proxy log"), request);
  }

  // 3. Audit the start (credentials in the query, a SAS signature or a function key, are redacted), with the
  //    Azure operation and the policy's decision (an audit-mode "would_deny" is forwarded and recorded).
  const { operation, policy } = authorized;
  const audited = { ...request, query: redactQuery(url.search.slice(1)), action: operation?.action ?? null, scope: operation?.scope ?? null, policy: auditPolicy(policy), ...(authorized.accessRequestId ? { access_request_id: authorized.accessRequestId } : {}) };
  const startAudited = ctx.audit.emit(audit("APP_REQUEST_START", { ...base, ...about, ...audited })).catch((e) => {
    console.error("[proxy] audit failed, request refused:", (e as Error).message);
    throw new AuditUnavailable("the audit log cannot be written; the request was not forwarded");
  });
  startAudited.catch(() => undefined); // the relay waits on it, and reports its failure

  // 4. Relay.
  const agentRequest: AgentRequest = {
    ...head,
    // ARM's correlation ID is azgate's request ID (the client's own is recorded as it said it): the Activity Log's
    // correlationId then names an azgate request no client chose (audit/correlate.ts joins on it).
    headers: ctx.tracing.forward([...head.headers.filter(([k]) => k.toLowerCase() !== "x-ms-correlation-request-id"), ["x-ms-correlation-request-id", requestId]], requestSpan),
    session: { user: identity.name, app: authorized.app, azure_identity: authorized.azureIdentity, session_id: identity.session_id },
    client_key: client.clientKey as Record<string, unknown>,
    request_id: requestId,
    // What was decided, for the agent to check it forwards exactly that (forward.ts).
    ...(authorized.decided ? { decided: authorized.decided } : {}),
  };
  ctx.metrics.openStreams.inc();
  let result;
  try {
    result = await relayToAgents(registry, authorized.app, authorized.allowedOn, agentRequest, stream, (message) => answer(new AgentUnavailable(message)), { stored: startAudited, remote: ctx.audit.remote === true });
  } catch (e) {
    if (e instanceof AuditUnavailable) return answer(e);
    endSpan(500, (e as Error).message);
    throw e;
  } finally {
    ctx.metrics.openStreams.dec();
  }

  // 5. Audit what it did (and count it). Nothing waits on this event: it shares the next write (audit/sink.ts).
  //    First let the answer go: the tunnel writes a turn's frames when the turn ends (websocket.ts), after this.
  await new Promise((next) => setImmediate(next));
  const { outcome, lastError, bytesIn } = result;
  endSpan(outcome?.status ?? 502, outcome?.error ?? (outcome ? undefined : lastError));
  const durationMs = Math.round(performance.now() - started);
  ctx.metrics.requests.inc({ app: authorized.app, identity: authorized.azureIdentity, method: head.method, status: String(outcome ? outcome.status : 502) });
  if (outcome?.upstreamMs !== undefined) {
    ctx.metrics.upstream.observe({ app: authorized.app }, outcome.upstreamMs / 1000);
    ctx.metrics.overhead.observe({ app: authorized.app }, Math.max(durationMs - outcome.upstreamMs, 0) / 1000);
  }
  void ctx.audit
    .emitLater(
      audit(outcome && !outcome.error ? "APP_REQUEST" : "APP_REQUEST_FAILED", {
      ...base,
      ...about,
      ...audited,
      status: outcome?.status ?? 502,
      bytes_in: bytesIn,
      bytes_out: outcome?.bytes ?? 0,
      duration_ms: durationMs,
      azure_request_id: outcome?.azureRequestId ?? null,
      ...(outcome?.answer.correlation_id ? { azure_correlation_id: outcome.answer.correlation_id } : {}),
      ...(outcome?.principalId ? { azure_principal_id: outcome.principalId } : {}),
      ...(outcome?.answer.operation_url ? { azure_operation_url: outcome.answer.operation_url } : {}),
      agent: outcome?.agent ?? null,
      agent_id: outcome?.agentId ?? null,
      ...(outcome?.error || !outcome ? { error: outcome?.error ?? lastError } : {}),
      success: !!outcome && !outcome.error && outcome.status < 400,
      }),
    )
    .catch((e) => console.error("[proxy] audit failed:", e));
}
