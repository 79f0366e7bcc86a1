/**
 * The control calls on an agent's tunnel (docs/tunnel-protocol.md): each
 * message defined once, with its schema, for both ends. The caller validates
 * every answer it gets and the callee every request, so neither trusts the
 * other's shape: a malformed call or answer is `bad_request`. The agent calls
 * heartbeat and renew; the proxy calls identity_facts at apps login.
 */
import { z } from "zod";
import { agentAppSchema } from "../config/schema.ts";
import { AzgateError } from "../errors/index.ts";
import { GUID as GUID_PATTERN } from "../azure/guid.ts";
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
  }),
  failure,
]);

/** Proxy to agent, at apps login: the identity's facts from a real token's claims (api/types.ts IdentityFacts). */
export const identityFactsRequest = z.object({ type: z.literal("identity_facts"), identity: z.string().min(1).max(1024) });

export const identityFactsAnswer = z.union([z.object({ ok: z.literal(true), client_id: GUID, principal_id: GUID, tenant_id: GUID }), failure]);

/** Every control call: its request and answer, by the request's `type`. */
export const CONTROL_CALLS = {
  heartbeat: { request: heartbeatRequest, answer: heartbeatAnswer },
  renew: { request: renewRequest, answer: renewAnswer },
  identity_facts: { request: identityFactsRequest, answer: identityFactsAnswer },
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

export const isControlCall = (type: unknown): type is ControlCall => typeof type === "string" && Object.hasOwn(CONTROL_CALLS, type);
