/**
 * The control calls on an agent's tunnel (docs/tunnel-protocol.md): each
 * message defined once, with its schema, for both ends. The caller validates
 * every answer it gets and the callee every request, so neither trusts the
 * other's shape: a malformed call or answer is `bad_request`. The agent calls
 * heartbeat and renew; the proxy calls identity_facts at apps login,
 * identity_list for access requests (a glob's matches, a short name), and
 * trust on agents' and app sessions' tunnels when a CA rotates; an app
 * session's local proxy calls reissue on its own tunnel.
 */
import { z } from "zod";
import { agentAppSchema } from "../config/schema.ts";
import { AzgateError } from "../errors/index.ts";
import { GUID as GUID_PATTERN } from "../azure/guid.ts";
import { MAX_LISTED_IDENTITIES } from "./types.ts";
import { PHASES } from "../pki/rotation.ts";
import { controlCall, respondJsonMeta, type Meta, type TunnelSession, type TunnelStream } from "../tunnel/index.ts";

/** The heartbeat: which apps this agent serves, every HEARTBEAT_INTERVAL_MS. */
export const heartbeatRequest = z.object({
  type: z.literal("heartbeat"),
  host_name: z.string().max(253),
  version: z.string().max(64),
  /** What the agent can do (azure/forwarding.ts AGENT_FEATURES); older agents send none. */
  features: z.array(z.string().max(32)).max(32).optional(),
  apps: z.array(agentAppSchema).max(100),
  /** A GUID, or nothing: it reaches workstations' shells and tokens (azure/guid.ts). */
  tenant_id: z.string().regex(GUID_PATTERN, "must be a GUID (the Entra tenant's ID)").optional(),
});

/** A control call's failure, on any call: a registered error code (an agent one version older may send none) and its message. */
const failure = z.object({ ok: z.literal(false), code: z.string().max(64).optional(), message: z.string().max(4096) });

const GUID = z.string().regex(GUID_PATTERN, "must be a GUID");

export const heartbeatAnswer = z.union([
  // Optional fields: a proxy one version older may not send them (the agent then keeps its defaults).
  z.object({
    ok: z.literal(true),
    cluster_name: z.string().max(253).optional(),
    interval_ms: z.number().int().min(1_000).max(600_000).optional(),
    /** The replica that answered. */
    proxy_id: z.string().max(128).optional(),
    /** Every replica there is: the agent holds a tunnel to each. */
    peers: z.array(z.object({ id: z.string().max(128), addr: z.string().max(300) })).max(64).optional(),
  }),
  failure,
]);

/** Certificate renewal over the tunnel, at two thirds of the host certificate's life. */
export const renewRequest = z.object({ type: z.literal("renew"), public_key_pem: z.string().max(4096) });

export const renewAnswer = z.union([
  z.object({
    ok: z.literal(true),
    host_id: z.string().max(128),
    cluster_name: z.string().max(253),
    cert_pem: z.string().max(16_384),
    expires: z.string().max(64),
    host_ca_pem: z.string().max(16_384),
    /** Every host CA trusted now, and their endorsements (api/types.ts HostCertificate); a proxy one version older sends neither. */
    host_ca_pems: z.array(z.string().max(16_384)).max(2).optional(),
    ca_endorsements: z.array(z.object({ pem: z.string().max(16_384), jws: z.string().max(4_096) })).max(2).optional(),
  }),
  failure,
]);

/** Proxy to agent, at apps login: the identity's facts from a real token's claims (api/types.ts IdentityFacts). */
export const identityFactsRequest = z.object({ type: z.literal("identity_facts"), identity: z.string().min(1).max(1024) });

export const identityFactsAnswer = z.union([z.object({ ok: z.literal(true), client_id: GUID, principal_id: GUID, tenant_id: GUID }), failure]);

/**
 * Proxy to agent, for access requests: the user-assigned identities the
 * agent's own identity can read in ARM. The META says how many; the stream's
 * body carries them as one JSON array of resource IDs (a META frame holds
 * 16 KiB, a list of identities more).
 */
export const identityListRequest = z.object({ type: z.literal("identity_list") });

export const identityListAnswer = z.union([z.object({ ok: z.literal(true), count: z.number().int().min(0).max(MAX_LISTED_IDENTITIES), truncated: z.boolean() }), failure]);

/** The body of an identity_list answer: resource IDs (each checked again by the proxy, parseIdentityId). */
export const identityListBody = z.array(z.string().max(1024)).max(MAX_LISTED_IDENTITIES);

const PIN = z.string().regex(/^sha256:[0-9a-f]{64}$/, "must be a CA pin (sha256: and 64 hex digits)");
const PEM = z.string().max(16_384).regex(/^-----BEGIN CERTIFICATE-----/, "must be a PEM certificate");
const PHASE = z.enum(PHASES);

/**
 * Proxy to agent or app session, when a CA's rotation moves and when a tunnel
 * opens (pki/rotation.ts): the host CAs trusted now, each one's signed word
 * for the other (the peer adds a CA only on the word of one it trusts,
 * pki/endorsement.ts), which CA signs each kind of certificate now, and
 * whether the peer's certificate is from another (then it gets a new one: an
 * agent by `renew`, an app session by `reissue`).
 */
export const trustRequest = z.object({
  type: z.literal("trust"),
  cluster_name: z.string().max(253),
  host_ca_pems: z.array(PEM).min(1).max(2),
  endorsements: z.array(z.object({ pem: PEM, jws: z.string().max(4_096) })).max(2),
  signing: z.object({ host: PIN, user: PIN }),
  phase: z.object({ host: PHASE, user: PHASE }),
  /** The certificate this tunnel was opened with is not from the CA that signs now: get a new one (renew, or reissue). */
  renew: z.boolean(),
});

/**
 * What a peer reads of /v1/ping to learn the host CAs (api/trust.ts
 * learnHostCas), often before it can verify who answers: only these fields,
 * bounded, the pins in their one form, so a man in the middle can neither
 * make the peer parse without end nor put text of his own in its messages.
 */
export const pingTrust = z.object({
  cluster_name: z.string().max(253).regex(/^[\x21-\x7e]+$/, "printable, no spaces"),
  ca_pins: z.array(PIN).min(1).max(2),
  host_ca_pems: z.array(PEM).min(1).max(2),
  ca_endorsements: z.array(z.object({ pem: PEM, jws: z.string().max(4_096) })).max(2).optional(),
  retired_ca_pins: z.array(z.object({ pin: PIN, retired: z.string().datetime() })).max(32).optional(),
}).passthrough();
/** The most of /v1/ping a peer reads (two CAs, two endorsements, the rest small). */
export const PING_MAX_BYTES = 64 * 1024;

/** The pins the peer trusts after it (the proxy records an agent's, for `admin status`). */
export const trustAnswer = z.union([z.object({ ok: z.literal(true), trusted_pins: z.array(PIN).max(8) }), failure]);

/**
 * App session to proxy, on its own tunnel: its certificate again, for a new
 * key, from the user CA that signs now; the same identity, route, session
 * and end. Proxies answer it only for a caller whose account is still in good
 * standing (caller.ts), as every request.
 */
export const reissueRequest = z.object({ type: z.literal("reissue"), public_key_pem: z.string().max(4096) });
export const reissueAnswer = z.union([z.object({ ok: z.literal(true), cert_pem: z.string().max(16_384), expires: z.string().max(64) }), failure]);

/** Every control call: its request and answer, by the request's `type`. */
export const CONTROL_CALLS = {
  heartbeat: { request: heartbeatRequest, answer: heartbeatAnswer },
  renew: { request: renewRequest, answer: renewAnswer },
  identity_facts: { request: identityFactsRequest, answer: identityFactsAnswer },
  identity_list: { request: identityListRequest, answer: identityListAnswer },
  trust: { request: trustRequest, answer: trustAnswer },
  reissue: { request: reissueRequest, answer: reissueAnswer },
} as const;

export type ControlCall = keyof typeof CONTROL_CALLS;
export type ControlRequest<C extends ControlCall> = z.infer<(typeof CONTROL_CALLS)[C]["request"]>;
export type ControlAnswer<C extends ControlCall> = z.infer<(typeof CONTROL_CALLS)[C]["answer"]>;
export type HeartbeatAnswer = ControlAnswer<"heartbeat">;

/**
 * Makes a control call and validates the answer: a malformed answer is the
 * peer's error (`bad_request`), never taken on trust.
 */
export async function callControl<C extends ControlCall>(session: TunnelSession, call: C, request: ControlRequest<C>, timeoutMs?: number): Promise<ControlAnswer<C>> {
  const raw = await controlCall<unknown>(session, CONTROL_CALLS[call].request.parse(request) as Meta, timeoutMs);
  const parsed = CONTROL_CALLS[call].answer.safeParse(raw);
  if (!parsed.success) throw new AzgateError("bad_request", `the answer to ${call} is malformed (${parsed.error.issues[0]?.path.join(".") || "shape"}: ${parsed.error.issues[0]?.message})`);
  return parsed.data as ControlAnswer<C>;
}

/** Reads a control call's request as its schema says, or throws `bad_request` naming what is wrong. */
export function parseControlRequest<C extends ControlCall>(call: C, meta: Meta): ControlRequest<C> {
  const parsed = CONTROL_CALLS[call].request.safeParse(meta);
  if (!parsed.success) throw new AzgateError("bad_request", `malformed ${call} (${parsed.error.issues[0]?.path.join(".") || "shape"}: ${parsed.error.issues[0]?.message})`);
  return parsed.data as ControlRequest<C>;
}

/** Answers a control call with its typed answer. */
export function answerControl<C extends ControlCall>(stream: TunnelStream, _call: C, answer: ControlAnswer<C>): void {
  respondJsonMeta(stream, answer as Meta);
}

/** Answers a control call whose answer carries a body (identity_list): the META, then the body, then the end. */
export async function answerControlWithBody<C extends ControlCall>(stream: TunnelStream, _call: C, answer: ControlAnswer<C>, body: Uint8Array): Promise<void> {
  if (stream.isClosed || stream.resetError) return;
  stream.sendMeta(answer as Meta);
  await stream.write(body);
  stream.end();
}

/**
 * A control call whose answer carries a body (identity_list): the answer
 * validated as callControl does, the body read up to `maxBytes` (more is the
 * peer's error), all within `timeoutMs`.
 */
export async function callControlWithBody<C extends ControlCall>(session: TunnelSession, call: C, request: ControlRequest<C>, opts: { maxBytes: number; timeoutMs: number }): Promise<{ answer: ControlAnswer<C>; body: Uint8Array }> {
  const stream = session.open(CONTROL_CALLS[call].request.parse(request) as Meta);
  stream.end();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const read = async () => {
    const parsed = CONTROL_CALLS[call].answer.safeParse(await stream.readMeta());
    if (!parsed.success) throw new AzgateError("bad_request", `the answer to ${call} is malformed (${parsed.error.issues[0]?.path.join(".") || "shape"}: ${parsed.error.issues[0]?.message})`);
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (let c = await stream.read(); c; c = await stream.read()) {
      size += c.length;
      if (size > opts.maxBytes) throw new AzgateError("bad_request", `the answer to ${call} is over ${opts.maxBytes} bytes`);
      chunks.push(c);
    }
    const body = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) body.set(c, (at += c.length) - c.length);
    return { answer: parsed.data as ControlAnswer<C>, body };
  };
  try {
    return await Promise.race([read(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer to ${call} within ${opts.timeoutMs / 1000}s`)), opts.timeoutMs)))]);
  } finally {
    clearTimeout(timer);
    stream.reset(0, "done");
  }
}

export const isControlCall = (type: unknown): type is ControlCall => typeof type === "string" && Object.hasOwn(CONTROL_CALLS, type);
