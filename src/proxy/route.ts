/**
 * One client stream, one Azure request: authorise it against the caller's
 * current roles, audit it, and relay it to an agent serving the app, failing
 * over to another agent when one goes away before answering.
 */
import { isAzureEndpoint } from "../azure/endpoints.ts";
import { AZURE_METHODS, isAzureMethod } from "../azure/methods.ts";
import { redactQuery } from "../azure/redact.ts";
import { isAzgateError } from "../errors/index.ts";
import type { Identity } from "../pki/identity.ts";
import { checkAzureIdentity } from "../rbac/engine.ts";
import { ErrorCode, StreamResetError, type TunnelStream } from "../tunnel/index.ts";
import { headerValue, requestHeadSchema, respondJson, responseHeadSchema, type HeaderList, type RequestHead, type ResponseTrailer } from "../tunnel/http.ts";
import { resolveCaller } from "./caller.ts";
import type { ProxyContext } from "./context.ts";
import type { AppRegistry, AppServer } from "./registry.ts";

/** What the proxy tells the agent about a stream, beyond the request head. */
export interface AgentStreamMeta extends RequestHead {
  session: { user: string; app: string; azure_identity: string; session_id: string };
  /** The client's app key (public JWK): the agent verifies the placeholder token with it. */
  client_key: JsonWebKey;
  request_id: string;
}

export interface ClientSession {
  identity: Identity;
  clientKey: JsonWebKey;
  remoteAddr?: string;
}

const MAX_ATTEMPTS = 3;

export async function routeClientStream(ctx: ProxyContext, registry: AppRegistry, client: ClientSession, stream: TunnelStream): Promise<void> {
  const requestId = crypto.randomUUID();
  const started = Date.now();
  const refuse = (status: number, code: string, message: string) =>
    respondJson(stream, status, { error: { code, message: `azgate: ${message}` } }, [["x-azgate-request-id", requestId]]).catch(() => undefined);

  const parsed = requestHeadSchema.safeParse(stream.meta);
  if (!parsed.success) return refuse(400, "bad_request", "malformed request metadata");
  const head = parsed.data;
  const url = new URL(head.url);
  const route = client.identity.route;
  if (!route?.azure_identity) return refuse(403, "access_denied", "this session has no Azure identity; run azgate apps login APP --azure-identity NAME");

  const base = { user: client.identity.name, app: route.app, azure_identity: route.azure_identity, session_id: client.identity.session_id, request_id: requestId };
  const deny = async (status: number, code: string, reason: string) => {
    ctx.metrics.denials.inc({ reason: code });
    await ctx.audit.emit({ event: "app.request.denied", code: "T2009W", ...base, method: head.method, host: url.hostname, path: url.pathname, error_code: code, reason, success: false });
    return refuse(status, code, reason);
  };

  let caller;
  try {
    caller = await resolveCaller(ctx, client.identity);
  } catch (e) {
    return deny(isAzgateError(e) ? e.status : 401, isAzgateError(e) ? e.code : "unauthenticated", (e as Error).message);
  }
  // Authorised per app server, on its own labels: only servers the caller's roles allow are tried.
  const known = registry.all(route.app);
  if (known.length === 0) return refuse(503, "app_unavailable", `no agent serves app "${route.app}" right now; azgate apps ls shows the apps that are up`);
  const azureIdentity = route.azure_identity;
  const allowedOn = (s: AppServer) => checkAzureIdentity(caller.roles, caller.traits, s.app, azureIdentity).allowed;
  if (!known.some(allowedOn)) return deny(403, "access_denied", checkAzureIdentity(caller.roles, caller.traits, known[0].app, azureIdentity).reason);
  if (!isAzureMethod(head.method)) return deny(405, "method_not_allowed", `method ${head.method} is not used by Azure APIs; azgate forwards only ${AZURE_METHODS.join(", ")}`);
  if (url.protocol !== "https:" || !isAzureEndpoint(url.hostname) || (url.port && url.port !== "443")) {
    return deny(403, "target_refused", `${url.host} is not an Azure API host over HTTPS`);
  }

  // Credentials in the query (a SAS signature, a function key) never reach the audit log.
  const request = { method: head.method, host: url.hostname, path: url.pathname, query: redactQuery(url.search.slice(1)) };
  // Written before anything is forwarded: when the audit log cannot be written, nothing goes out.
  try {
    await ctx.audit.emit({ event: "app.request.start", code: "T2009I", ...base, ...request });
  } catch (e) {
    console.error("[proxy] audit failed, request refused:", (e as Error).message);
    return refuse(503, "audit_unavailable", "the audit log cannot be written; the request was not forwarded");
  }

  const meta: AgentStreamMeta = { ...head, session: base, client_key: client.clientKey, request_id: requestId };
  const body = new BodyPump(stream.readable.getReader());
  let outcome: RelayOutcome | null = null;
  let lastError = "no agent could take the request";
  ctx.metrics.openStreams.inc();
  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const server = pickServer(registry, route.app, allowedOn, attempt);
      if (!server) break;
      const tried = await relay(server, meta, body, stream);
      if (tried.ok) {
        outcome = tried;
        break;
      }
      lastError = tried.error;
      // Only a request whose body was fully read and empty can be replayed on another agent.
      if (!tried.retryable || !body.replayable) break;
    }
  } finally {
    ctx.metrics.openStreams.dec();
  }
  if (!outcome && !stream.isClosed) {
    if (body.started || stream.resetError) stream.reset(ErrorCode.UNAVAILABLE, lastError);
    else await refuse(502, "agent_unavailable", lastError);
  }
  const durationMs = Date.now() - started;
  ctx.metrics.requests.inc({ app: route.app, identity: route.azure_identity, method: head.method, status: String(outcome?.ok ? outcome.status : 502) });
  if (outcome?.ok && outcome.upstreamMs !== undefined) {
    ctx.metrics.upstream.observe({ app: route.app }, outcome.upstreamMs / 1000);
    ctx.metrics.overhead.observe({ app: route.app }, Math.max(durationMs - outcome.upstreamMs, 0) / 1000);
  }
  // One event per forwarded request, with what it did.
  void ctx.audit
    .emit({
      event: "app.request",
      code: outcome?.ok && !outcome.error ? "T2009I" : "T2009E",
      ...base,
      ...request,
      status: outcome?.status ?? 502,
      bytes_in: body.bytes,
      bytes_out: outcome?.bytes ?? 0,
      duration_ms: durationMs,
      azure_request_id: outcome?.azureRequestId ?? null,
      agent: outcome?.agent ?? null,
      agent_id: outcome?.agentId ?? null,
      ...(outcome?.error || !outcome ? { error: outcome?.error ?? lastError } : {}),
      success: !!outcome && !outcome.error && outcome.status < 400,
    })
    .catch((e) => console.error("[proxy] audit failed:", e));
}

function pickServer(registry: AppRegistry, app: string, allowed: (s: AppServer) => boolean, attempt: number): AppServer | undefined {
  const servers = registry.servers(app, allowed);
  return servers[attempt % Math.max(servers.length, 1)];
}

type Relayed = { ok: true; status: number; bytes: number; azureRequestId: string | null; agent: string; agentId: string; error?: string; upstreamMs?: number };
type RelayOutcome = Relayed | { ok: false; retryable: boolean; error: string };

/** Azure's own id for the request (ARM, Storage, Key Vault all send one), for matching with Azure's logs. */
function azureRequestId(headers: HeaderList): string | null {
  return headerValue(headers, "x-ms-request-id")[0] ?? headerValue(headers, "x-ms-correlation-request-id")[0] ?? null;
}

async function relay(server: AppServer, meta: AgentStreamMeta, body: BodyPump, client: TunnelStream): Promise<RelayOutcome> {
  let upstream: TunnelStream;
  try {
    upstream = server.tunnel.session.open(meta as unknown as Record<string, unknown>);
  } catch (e) {
    return { ok: false, retryable: true, error: `agent ${server.tunnel.hostName}: ${(e as Error).message}` };
  }
  // A reset on either side is passed to the other with its code and reason.
  void client.done().then(() => client.resetError && upstream.reset(client.resetError.code, client.resetError.reason));
  body.attach(upstream.writable.getWriter());

  let head;
  try {
    head = await upstream.readMeta();
  } catch (e) {
    return { ok: false, retryable: true, error: `agent ${server.tunnel.hostName} went away: ${(e as Error).message}` };
  }
  const parsed = responseHeadSchema.safeParse(head);
  if (!parsed.success) {
    upstream.reset(ErrorCode.PROTOCOL_ERROR, "malformed response head");
    return { ok: false, retryable: false, error: `agent ${server.tunnel.hostName} sent a malformed response` };
  }
  void upstream.done().then(() => upstream.resetError && client.reset(upstream.resetError.code, upstream.resetError.reason));
  const result: Relayed = { ok: true, status: parsed.data.status, bytes: 0, azureRequestId: azureRequestId(parsed.data.headers), agent: server.tunnel.hostName, agentId: server.tunnel.hostId };
  const count = new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, out) {
      result.bytes += chunk.byteLength;
      out.enqueue(chunk);
    },
  });
  try {
    client.sendMeta(parsed.data);
    await upstream.readable.pipeThrough(count).pipeTo(client.writable, { preventClose: true, preventAbort: true, preventCancel: true });
    const trailer = (await upstream.readMeta()) as ResponseTrailer | null;
    if (trailer) client.sendMeta(trailer as unknown as Record<string, unknown>);
    if (trailer?.error) result.error = trailer.error;
    result.upstreamMs = trailer?.timings?.upstream_ms;
    client.end();
  } catch (e) {
    const err = e instanceof StreamResetError ? e : new StreamResetError(ErrorCode.INTERNAL_ERROR, (e as Error).message, false);
    client.reset(err.code, err.reason);
    upstream.reset(err.code, err.reason);
    result.error = err.reason || "stream reset";
  }
  return result;
}

/**
 * Copies the client's request body to the current upstream. It remembers
 * whether any byte was read, which decides if a failed attempt can be retried.
 */
class BodyPump {
  private writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  private running = false;
  private ended = false;
  started = false;
  /** Request body bytes read from the client. */
  bytes = 0;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  get replayable(): boolean {
    return this.ended && !this.started;
  }

  attach(writer: WritableStreamDefaultWriter<Uint8Array>): void {
    this.writer = writer;
    if (this.ended) {
      writer.close().catch(() => undefined);
      return;
    }
    if (!this.running) {
      this.running = true;
      void this.run();
    }
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        const { done, value } = await this.reader.read();
        if (done) {
          this.ended = true;
          await this.writer?.close();
          return;
        }
        this.started = true;
        this.bytes += value.byteLength;
        await this.writer!.write(value);
      }
    } catch (e) {
      const reset = e instanceof StreamResetError ? e : null;
      await this.writer?.abort(reset ?? e).catch(() => undefined);
    }
  }
}
