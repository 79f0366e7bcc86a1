/**
 * Relaying one authorised request to an agent: pick a server the caller may
 * use, open a stream on its tunnel, copy the body there and the answer back,
 * and fail over to another server when one goes away before answering: only
 * while no byte of the request's body has gone to an agent, and, unless the
 * method is safe (GET, HEAD, OPTIONS), only while the request cannot have
 * reached Azure (the agent had not been let forward it, or it refused the
 * stream unread). A DELETE or a POST action whose agent died after sending
 * it is answered as failed, not sent to Azure a second time under one start
 * event; nor is a request the client has given up on.
 *
 * Nothing reaches Azure before the request's start event is stored
 * (`audited`). When the audit log is remote (a PostgreSQL commit), an agent
 * that can hold gets the request at once, marked held, and makes its checks
 * while the event is written; the RELEASE follows once it is stored, or a
 * reset if it cannot be. Otherwise the agent gets the request once it is
 * stored: a local append is over before the hold would have paid for its
 * second message (A/B at 16 connections: 4 to 7 % more requests a second and
 * 6 to 15 % less CPU without it, the same latency at one; on PostgreSQL the
 * hold saves 0.17 ms a request at one connection).
 */
import { readAzureAnswer, type AzureAnswer } from "../azure/client-info.ts";
import { isGuid } from "../azure/guid.ts";
import { RELEASE, type AgentRequest } from "../azure/forwarding.ts";
import { methodOverride } from "../azure/operation.ts";
import { ErrorCode, StreamResetError, type TunnelStream } from "../tunnel/index.ts";
import { headerValue, responseHeadSchema, responseTrailerSchema, type HeaderList } from "../tunnel/http.ts";
import type { AppRegistry, AppServer } from "./registry.ts";

const MAX_ATTEMPTS = 3;

export type Relayed = { ok: true; status: number; bytes: number; azureRequestId: string | null; answer: AzureAnswer; principalId?: string; agent: string; agentId: string; error?: string; upstreamMs?: number };
type RelayOutcome = Relayed | { ok: false; retryable: boolean; error: string };

/** The request's start event: stored once `stored` resolves; `remote` when the log is PostgreSQL (above). */
export interface Audited {
  stored: Promise<void>;
  remote: boolean;
}

export interface RelayResult {
  /** The answer an agent gave, or null when none could take the request. */
  outcome: Relayed | null;
  /** Why the last attempt failed. */
  lastError: string;
  /** Request body bytes read from the client. */
  bytesIn: number;
}

/**
 * Tries up to three servers of `app` that `allowed` lets through; answers the
 * client (or resets its stream) in every case but one: when `audited` fails,
 * it throws that error, and the caller answers.
 */
export async function relayToAgents(registry: AppRegistry, app: string, allowed: (s: AppServer) => boolean, request: AgentRequest, client: TunnelStream, refuse: (message: string) => Promise<void>, audited: Audited): Promise<RelayResult> {
  const body = new BodyPump(client);
  let outcome: Relayed | null = null;
  let lastError = "no agent could take the request";
  const tried = new Set<string>();
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    if (client.resetError) break; // the client gave up: nothing more to try for
    // The next server not tried yet (a retry on the one that just failed would fail again).
    const server = registry.servers(app, allowed).find((s) => !tried.has(s.tunnel.id));
    if (!server) break;
    tried.add(server.tunnel.id);
    const result = await relay(server, request, body, client, audited);
    if (result.ok) {
      outcome = result;
      break;
    }
    lastError = result.error;
    if (!result.retryable || !body.replayable) break;
  }
  if (!outcome && !client.isClosed) {
    // Bytes already went to an agent: the client must see the stream fail, not a clean refusal.
    if (body.started || client.resetError) client.reset(ErrorCode.UNAVAILABLE, lastError);
    else await refuse(lastError);
  }
  return { outcome, lastError, bytesIn: body.bytes };
}

/** Methods Azure never changes anything for: sent again on another agent even after the first may have forwarded them. */
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** A safe method that says it is another (X-HTTP-Method-Override: DELETE) is not taken as safe: who knows what reads it. */
function isSafe(request: AgentRequest): boolean {
  return SAFE_METHODS.has(request.method.toUpperCase()) && !methodOverride(request.headers);
}

/** Why the client gave up on its request (its stream reset), or null while it waits (read afresh: it changes across awaits). */
function cancelled(client: TunnelStream): string | null {
  return client.resetError ? `the client cancelled the request: ${client.resetError.reason}` : null;
}

/** Azure's own id for the request (ARM, Storage, Key Vault all send one), for matching with Azure's logs. */
function azureRequestId(headers: HeaderList): string | null {
  return headerValue(headers, "x-ms-request-id")[0] ?? headerValue(headers, "x-ms-correlation-request-id")[0] ?? null;
}

async function relay(server: AppServer, meta: AgentRequest, body: BodyPump, client: TunnelStream, audited: Audited): Promise<RelayOutcome> {
  const held = audited.remote && server.tunnel.holds === true;
  if (!held) await audited.stored;
  // A client that gave up while the event was written has nothing to send on.
  if (cancelled(client)) return { ok: false, retryable: false, error: cancelled(client)! };
  let upstream: TunnelStream;
  try {
    upstream = server.tunnel.session.open(held ? { ...meta, hold: true } : meta);
  } catch (e) {
    return { ok: false, retryable: true, error: `agent ${server.tunnel.hostName}: ${(e as Error).message}` };
  }
  // From here (or from the release, for a held request) the agent may have sent the request to Azure: only a safe
  // method is tried again elsewhere, or a stream the agent refused unread (REFUSED_STREAM: it was draining).
  // (An agent that lies, forwarding a request and then saying REFUSED_STREAM, can call Azure twice: it holds the
  // identity's tokens anyway, and could call Azure as often as it likes.)
  const resendable = () => isSafe(meta) || upstream.resetError?.code === ErrorCode.REFUSED_STREAM;
  // A reset on either side is passed to the other with its code and reason.
  void client.done().then(() => client.resetError && upstream.reset(client.resetError.code, client.resetError.reason));
  if (held) {
    try {
      await audited.stored;
    } catch (e) {
      upstream.reset(ErrorCode.CANCEL, "the request could not be audited");
      throw e;
    }
    if (upstream.resetError) return { ok: false, retryable: true, error: `agent ${server.tunnel.hostName}: ${upstream.resetError.reason}` };
    // The client's reset reaches the held stream before this (above), but nothing here should hang on that order.
    if (cancelled(client)) {
      upstream.reset(ErrorCode.CANCEL, "the client cancelled the request");
      return { ok: false, retryable: false, error: cancelled(client)! };
    }
    upstream.sendMeta(RELEASE);
  }
  // The body (and its END) after the release: END closes this side of the stream.
  body.attach(upstream);

  let head;
  try {
    head = await upstream.readMeta();
  } catch (e) {
    const retryable = resendable();
    return { ok: false, retryable, error: `agent ${server.tunnel.hostName} went away: ${(e as Error).message}${retryable ? "" : `; the ${meta.method} may have reached Azure, so it is not sent again`}` };
  }
  const parsed = responseHeadSchema.safeParse(head);
  if (!parsed.success) {
    upstream.reset(ErrorCode.PROTOCOL_ERROR, "malformed response head");
    return { ok: false, retryable: false, error: `agent ${server.tunnel.hostName} sent a malformed response` };
  }
  void upstream.done().then(() => upstream.resetError && client.reset(upstream.resetError.code, upstream.resetError.reason));
  const result: Relayed = { ok: true, status: parsed.data.status, bytes: 0, azureRequestId: azureRequestId(parsed.data.headers), answer: readAzureAnswer(parsed.data.status, parsed.data.headers), agent: server.tunnel.hostName, agentId: server.tunnel.hostId };
  try {
    client.sendMeta(parsed.data);
    // Chunk by chunk from stream to stream: each side's flow control holds the other back.
    for (let chunk = await upstream.read(); chunk; chunk = await upstream.read()) {
      result.bytes += chunk.byteLength;
      await client.write(chunk);
    }
    const trailer = responseTrailerSchema.safeParse(await upstream.readMeta()).data ?? null;
    if (trailer) client.sendMeta(trailer);
    if (trailer?.error) result.error = trailer.error;
    result.upstreamMs = trailer?.timings?.upstream_ms;
    if (trailer?.principal_id && isGuid(trailer.principal_id)) result.principalId = trailer.principal_id;
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
  private target: TunnelStream | null = null;
  private running = false;
  private ended = false;
  started = false;
  /** Request body bytes read from the client. */
  bytes = 0;

  constructor(private readonly source: TunnelStream) {}

  /** No byte of the body has gone to an agent yet (a held request fails before its body is attached). */
  get replayable(): boolean {
    return !this.started;
  }

  attach(target: TunnelStream): void {
    this.target = target;
    if (this.ended) {
      target.end();
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
        const chunk = await this.source.read();
        if (!chunk) {
          this.ended = true;
          this.target?.end();
          return;
        }
        this.started = true;
        this.bytes += chunk.byteLength;
        await this.target!.write(chunk);
      }
    } catch (e) {
      this.target?.reset(ErrorCode.CANCEL, (e as Error).message);
    }
  }
}
