/**
 * The proxy's two WebSocket endpoints. Each is authenticated once, at the
 * upgrade, by a certificate and a proof of possession:
 *   /v1/tunnel/agent  agents (host certificates): heartbeats, renewals, and
 *                     the streams the proxy opens to them;
 *   /v1/tunnel/client clients (app certificates): one stream per Azure request.
 */
import { audit } from "../audit/events.ts";
import type { WebSocket } from "ws";
import { AzgateError, isAzgateError } from "../errors/index.ts";
import { verifyProof } from "../auth/proof-verify.ts";
import { AZGATE_ERROR_HEADER, errorHeaderValue } from "../api/error-header.ts";
import { botFields, type Identity } from "../pki/identity.ts";
import type { UpgradeAnswer, UpgradeRequest } from "../runtime/index.ts";
import { answerControl, callControl, parseControlRequest } from "../api/control.ts";
import { caPin } from "../pki/pin.ts";
import { onAuthorityChange } from "./cluster.ts";
import { auditRetired, reissueCert, retiredIssuer, trustMessage } from "./rotation-trust.ts";
import { attachSession, ErrorCode, respondJsonMeta, type TunnelSession, type TunnelStream } from "../tunnel/index.ts";
import type { ProxyContext } from "./context.ts";
import { KEYS } from "./keys.ts";
import { renewHostCert, updateAgentRecord } from "./join.ts";
import { clientAddress } from "./client-address.ts";
import type { AgentTunnel, AppRegistry } from "./registry.ts";
import { handleAppRequest } from "./app-request.ts";
import { resolveCaller } from "./caller.ts";
import { authorizeRoute } from "./authorize-request.ts";
import type { ProxyPeer } from "./peers.ts";
import type { Clock } from "../util/clock.ts";
import { VERSION } from "../version.ts";
import { VERSION_HEADER, versionRefusal } from "../api/version.ts";

export const HEARTBEAT_INTERVAL_MS = 10_000;

/** What a tunnel keeps of its upgrade: who opened it, its certificate's end and CA, a client's key and address. */
interface Opened {
  identity: Identity;
  notAfter: Date;
  clientKey?: JsonWebKey;
  issuerPin: string;
  addr: string;
}


export interface TunnelServer {
  /** Answers a WebSocket upgrade to /v1/tunnel/agent or /v1/tunnel/client (runtime/serve.ts); null for any other path. */
  upgrade(req: UpgradeRequest): Promise<UpgradeAnswer>;
  /** Tells every connected agent and client to move, waits up to `deadlineMs` for open streams, then closes. */
  drain(deadlineMs: number): Promise<void>;
  close(): void;
  counts(): { agents: number; clients: number };
  /** Open app sessions and the pin of the CA of each one's certificate (admin status, during a rotation). */
  clientIssuers(): { user: string; session_id: string; issuerPin: string }[];
  /** True once drain() began: the proxy is shutting down. */
  isDraining(): boolean;
}

/** Who this replica is, and the replicas agents should also hold tunnels to. */
export interface ReplicaInfo {
  id: string;
  peers: () => Promise<ProxyPeer[]>;
}

export function tunnelServer(ctx: ProxyContext, registry: AppRegistry, replica: ReplicaInfo = { id: "single", peers: async () => [] }): TunnelServer {
  /** Open agent tunnels, with the host and the pin of the CA that signed the certificate each was opened with. */
  const agents = new Map<TunnelSession, { hostId: string; issuerPin: string }>();
  /** Open client tunnels, with the app certificate each was opened with and its CA's pin. */
  const clients = new Map<TunnelSession, { identity: Identity; issuerPin: string }>();
  // A change that may end access (a lock, a user deleted, reset or given other roles, a role edited or deleted,
  // a grant revoked or ended): close the tunnels whose route is no longer allowed at once, with their open
  // streams (every new request is refused anyway; this ends the ones in flight). The same decision as each
  // request's (authorize-request.ts authorizeRoute: roles, or a grant in force with its roles and locks).
  // Any replica's change is heard; changes that come together are checked once.
  let pending = false;
  const recheck = () => {
    if (pending) return;
    pending = true;
    queueMicrotask(() => {
      pending = false;
      for (const [session, { identity }] of clients) {
        authorizeRoute(ctx, registry, identity).catch((e) => {
          if (!isAzgateError(e) || !["locked", "unauthenticated", "access_denied", "mfa_required"].includes(e.code) || !clients.has(session)) return;
          clients.delete(session);
          void ctx.audit.emit(audit("APP_SESSION_CLOSED", { user: identity.name, ...botFields(identity), session_id: identity.session_id, reason: e.message }));
          session.close(ErrorCode.REFUSED_STREAM, e.message);
        });
      }
    });
  };
  const unwatch = [
    ctx.backend.watch(KEYS.locks, (e) => e.type !== "delete" && recheck()),
    ...[KEYS.users, KEYS.roles, KEYS.accessGrants, KEYS.accessRequests].map((prefix) => ctx.backend.watch(prefix, () => recheck())),
    // A CA's rotation moved (on any replica): every peer hears the CAs trusted now, and a tunnel whose CA was retired drains.
    onAuthorityChange(ctx.cluster, () => followRotation()),
  ];
  const followRotation = () => {
    for (const [session, agent] of agents) {
      const retired = retiredIssuer(ctx, "host", agent.issuerPin);
      if (retired) void session.drain(DRAIN_RETIRED_MS, retired.message);
      else void tellTrust(ctx, session, "host", agent.issuerPin, agent.hostId);
    }
    for (const [session, client] of clients) {
      const retired = retiredIssuer(ctx, "user", client.issuerPin);
      if (!retired) {
        void tellTrust(ctx, session, "user", client.issuerPin);
        continue;
      }
      clients.delete(session);
      void ctx.audit.emit(audit("APP_SESSION_CLOSED", { user: client.identity.name, session_id: client.identity.session_id, reason: retired.message, error_code: retired.code }));
      void session.drain(DRAIN_RETIRED_MS, retired.message);
    }
  };
  let draining = false;

  /** Who opens the tunnel, checked once at the upgrade: a certificate and a proof of possession, the account as it is now. */
  const authenticate = async (kind: "host" | "user", req: UpgradeRequest): Promise<Opened> => {
    if (draining) throw new AzgateError("connection_failed", "this proxy is shutting down; connect to another");
    const view = ctx.cluster.views[kind];
    const { identity, cert, issuer } = await verifyProof({
      authorization: req.header("authorization"),
      method: "GET",
      pathAndQuery: req.path + req.search,
      cas: view.trusted,
      retired: { retired: view.retired, current: view.pins },
      replay: ctx.replay,
      now: ctx.clock.now(),
    }).catch(async (e) => {
      await auditRetired(ctx, e, `tunnel ${kind === "host" ? "agent" : "client"}`);
      throw e;
    });
    // The CA it came from: a rotation that retires it ends the tunnel (followRotation) and refuses its requests.
    const issuerPin = await caPin(issuer);
    if (identity.kind !== kind) throw new AzgateError("access_denied", kind === "host" ? "this endpoint is for agents" : "this endpoint is for app sessions; run azgate apps login");
    // A version this proxy no longer serves (api/version.ts): refused, naming both, and audited (the caller is known now).
    const peerVersion = req.header(VERSION_HEADER);
    const tooOld = versionRefusal(peerVersion, kind === "host" ? "agent" : "client");
    if (tooOld) {
      await ctx.audit.emit(audit("VERSION_REFUSED", { ...(kind === "host" ? { host_id: identity.name } : { user: identity.name, session_id: identity.session_id }), peer: kind === "host" ? "agent" : "client", peer_version: peerVersion ?? null, version: VERSION, error_code: tooOld.code, reason: tooOld.message, success: false }));
      throw tooOld;
    }
    if (kind === "host" && !(await ctx.backend.get(KEYS.agent(identity.name)))) {
      throw new AzgateError("access_denied", `agent ${identity.name} was removed from the cluster; join it again with a new token`);
    }
    if (kind === "user" && !identity.route) throw new AzgateError("access_denied", "a user session cannot open a tunnel; run azgate apps login first");
    // The account as it is now: deleted, reset, recreated or locked accounts open no tunnel.
    if (kind === "user") {
      await resolveCaller(ctx, identity).catch(async (e) => {
        const code = isAzgateError(e) ? e.code : "internal";
        await ctx.audit.emit(audit("APP_TUNNEL_DENIED", { user: identity.name, ...botFields(identity), session_id: identity.session_id, app: identity.route?.app, azure_identity: identity.route?.azure_identity, error_code: code, reason: (e as Error).message, success: false }));
        throw e;
      });
    }
    // A client's key checks its placeholders at the agent, exported once here. Agents have no use for theirs.
    const clientKey = kind === "user" ? ((await crypto.subtle.exportKey("jwk", await cert.publicKey.export({ name: "ECDSA", namedCurve: "P-256" }, ["verify"]))) as JsonWebKey) : undefined;
    // What the tunnel keeps of its certificate: its end and, for clients, its key (not the parsed certificate:
    // it would live as long as the tunnel, and parsed X.509 objects per idle tunnel add up).
    return { identity, notAfter: cert.notAfter, clientKey, issuerPin, addr: clientAddress(req.socketAddr, req.header("x-forwarded-for"), ctx.settings.trustedProxies) };
  };

  const openAgent = ({ identity, notAfter, issuerPin, addr }: Opened, ws: WebSocket) => {
    const tunnel: AgentTunnel = { id: crypto.randomUUID(), hostId: identity.name, hostName: identity.name, session: null as unknown as TunnelSession, connectedAt: ctx.clock.now() };
    tunnel.session = attachSession(ws, {
      role: "acceptor",
      name: `agent ${identity.name}`,
      onStream: (stream) => void serveAgentStream(ctx, registry, replica, tunnel, identity, stream),
    });
    agents.set(tunnel.session, { hostId: identity.name, issuerPin });
    closeAtExpiry(ctx.clock, tunnel.session, notAfter);
    // What it must trust now (after a rotation moved while it was away, or mid-rotation at its first start).
    void tellTrust(ctx, tunnel.session, "host", issuerPin, identity.name);
    void ctx.audit.emit(audit("AGENT_CONNECTED", { host_id: identity.name, remote_addr: addr }));
    void tunnel.session.closed().then((info) => {
      agents.delete(tunnel.session);
      registry.removeTunnel(tunnel.id);
      void ctx.audit.emit(audit("AGENT_DISCONNECTED", { host_id: identity.name, reason: info.reason }));
    });
  };

  // Synchronous on purpose: the session must listen before the first frame is delivered.
  const openClient = ({ identity, notAfter, clientKey, issuerPin, addr }: Opened, ws: WebSocket) => {
    const session = attachSession(ws, {
      role: "acceptor",
      name: `client ${identity.name}`,
      onStream: (stream) => {
        // The one control call a workstation makes on its tunnel; every other stream is an Azure request.
        if (stream.meta.type === "reissue") return void answerReissue(ctx, identity, notAfter, issuerPin, stream);
        void handleAppRequest(ctx, registry, { identity, clientKey: clientKey!, remoteAddr: addr, issuerPin }, stream).catch((e) => {
          console.error("[proxy] client stream failed:", e);
          stream.reset(ErrorCode.INTERNAL_ERROR, "internal error; see the proxy log");
        });
      },
    });
    clients.set(session, { identity, issuerPin });
    closeAtExpiry(ctx.clock, session, notAfter);
    // Mid-rotation, the session hears at once which CAs to trust and whether to get a new certificate; after
    // one, which CAs no longer count (a session that redialled across the final standby still trusts the old one).
    const { host, user } = ctx.cluster.views;
    if (host.rotation.phase !== "standby" || user.rotation.phase !== "standby" || host.retired.length > 0) void tellTrust(ctx, session, "user", issuerPin);
    void session.closed().then(() => clients.delete(session));
  };

  // A Map, not an object: a path such as /constructor must find nothing.
  const endpoints = new Map<string, ["host" | "user", (o: Opened, ws: WebSocket) => void]>([["/v1/tunnel/agent", ["host", openAgent]], ["/v1/tunnel/client", ["user", openClient]]]);

  return {
    async upgrade(req) {
      const endpoint = endpoints.get(req.path);
      if (!endpoint) return null;
      const [kind, open] = endpoint;
      try {
        const opened = await authenticate(kind, req);
        return { accept: (ws: WebSocket) => open(opened, ws) };
      } catch (e) {
        // An upgrade refusal carries no body, so the reason travels in a header.
        const err = isAzgateError(e) ? e : new AzgateError("internal", "internal error");
        return { refuse: { status: err.status, headers: { [AZGATE_ERROR_HEADER]: errorHeaderValue(err) } } };
      }
    },
    async drain(deadlineMs) {
      draining = true;
      await Promise.all([...agents.keys(), ...clients.keys()].map((s) => s.drain(deadlineMs, "proxy is shutting down")));
    },
    close() {
      for (const stop of unwatch) stop();
      for (const s of [...agents.keys(), ...clients.keys()]) s.close(ErrorCode.UNAVAILABLE, "proxy is shutting down");
    },
    counts: () => ({ agents: agents.size, clients: clients.size }),
    clientIssuers: () => [...clients.values()].map((c) => ({ user: c.identity.name, session_id: c.identity.session_id, issuerPin: c.issuerPin })),
    isDraining: () => draining,
  };
}

/** How long a tunnel whose CA a rotation retired may finish its open streams. */
const DRAIN_RETIRED_MS = 10_000;

/**
 * The trust call (api/control.ts): the CAs trusted now, their endorsements and
 * who signs. An agent's answer (the pins it trusts now) goes into its record,
 * for admin status; an older peer that does not know the call is left alone.
 */
async function tellTrust(ctx: ProxyContext, session: TunnelSession, peer: "host" | "user", issuerPin: string, hostId?: string): Promise<void> {
  try {
    const answer = await callControl(session, "trust", await trustMessage(ctx, peer, issuerPin));
    if (!answer.ok || !hostId) return;
    await updateAgentRecord(ctx, hostId, (r) => ({ ...r, trusted_pins: answer.trusted_pins }));
  } catch {
    // The peer went away, or predates the call: it learns at its next connection, or from /v1/ping.
  }
}

/** A workstation's reissue call on its app session's tunnel (api/control.ts), answered as the API answers one. */
async function answerReissue(ctx: ProxyContext, identity: Identity, notAfter: Date, issuerPin: string, stream: TunnelStream): Promise<void> {
  try {
    const req = parseControlRequest("reissue", stream.meta);
    answerControl(stream, "reissue", { ok: true, ...(await reissueCert(ctx, identity, notAfter, issuerPin, req.public_key_pem)) });
  } catch (e) {
    const err = isAzgateError(e) ? e : new AzgateError("internal", "internal error; see the proxy log");
    respondJsonMeta(stream, { ok: false, code: err.code, message: err.message });
  }
}

/** A tunnel lives no longer than the certificate it was opened with; the peer reconnects with a renewed one. */
function closeAtExpiry(clock: Clock, session: TunnelSession, notAfter: Date): void {
  const t = clock.after(notAfter.getTime() - clock.now(), () => void session.drain(10_000, "certificate expired; reconnect with a renewed one")).unref();
  void session.closed().then(() => t.cancel());
}

/** A control call an agent opens on its tunnel (api/control.ts): validated, answered, a malformed one refused and audited. */
export async function serveAgentStream(ctx: ProxyContext, registry: AppRegistry, replica: ReplicaInfo, tunnel: AgentTunnel, identity: Identity, stream: TunnelStream): Promise<void> {
  try {
    const type = stream.meta.type;
    if (type === "heartbeat") {
      const hb = parseControlRequest("heartbeat", stream.meta);
      // An agent too old to send its version at the upgrade says it here (api/version.ts).
      const tooOld = versionRefusal(hb.version, "agent");
      if (tooOld) {
        await ctx.audit.emit(audit("VERSION_REFUSED", { host_id: identity.name, peer: "agent", peer_version: hb.version, version: VERSION, error_code: tooOld.code, reason: tooOld.message, success: false }));
        throw tooOld;
      }
      tunnel.hostName = hb.host_name || identity.name;
      tunnel.holds = hb.features?.includes("hold") ?? false;
      tunnel.listsIdentities = hb.features?.includes("identity_list") ?? false;
      registry.heartbeat(tunnel, hb.apps.map((a) => ({ ...a, ...(hb.tenant_id ? { tenant_id: hb.tenant_id } : {}) })));
      // Every answer lists the replicas, so the agent follows replicas coming and going.
      const peers = (await replica.peers()).map((p) => ({ id: p.id, addr: p.addr }));
      answerControl(stream, "heartbeat", { ok: true, cluster_name: ctx.cluster.name, interval_ms: HEARTBEAT_INTERVAL_MS, proxy_id: replica.id, peers });
    } else if (type === "renew") {
      const req = parseControlRequest("renew", stream.meta);
      answerControl(stream, "renew", { ok: true, ...(await renewHostCert(ctx, identity, req.public_key_pem)) });
    } else {
      stream.reset(ErrorCode.REFUSED_STREAM, `unknown stream type "${String(type)}"`);
    }
  } catch (e) {
    const err = isAzgateError(e) ? e : new AzgateError("internal", "internal error; see the proxy log");
    if (err.code === "bad_request") void ctx.audit.emit(audit("AGENT_CONTROL_REFUSED", { host_id: identity.name, call: String(stream.meta.type).slice(0, 32), error_code: err.code, reason: err.message, success: false }));
    respondJsonMeta(stream, { ok: false, code: err.code, message: err.message });
  }
}
