/**
 * The one join path (POST /v1/join), by the join token's method:
 *
 * - agents (method `token`): a secret join token (`admin tokens add`) and
 *   their own public key; a host certificate from the host CA. Tokens are
 *   stored by hash; expired and used-up ones are kept a day so a failed
 *   join can say which it was;
 * - bots (github, azure_devops, gitlab, kubernetes): a named join token
 *   (`kind: token`, resources/join-token.ts) and the CI's own signed OIDC
 *   token; a short user certificate (proxy/bots/join.ts).
 */
import { audit } from "../audit/events.ts";
import { AzgateError } from "../errors/index.ts";
import { importPublicKeyPem } from "../pki/keys.ts";
import { issueIdentityCert } from "../pki/certificate.ts";
import type { Identity } from "../pki/identity.ts";
import { formatDuration } from "../util/duration.ts";
import type { TokenInfo } from "./admin.ts";
import type { ProxyContext } from "./context.ts";
import type { HostCertificate } from "../api/types.ts";
import { pemOf } from "./cluster.ts";
import { currentEndorsements, hostCaPems } from "./rotation-trust.ts";
import { KEYS, secretHash } from "./keys.ts";
import { JOIN_TOKEN_NAME, type JoinToken } from "../resources/join-token.ts";
import { joinBot, type BotCertificate } from "./bots/join.ts";

export interface AgentRecord {
  host_id: string;
  host_name: string;
  joined: string;
  token_id: string;
  last_renewed?: string;
  /** The pin of the host CA that signed its current certificate (a rotation's update_clients renews it under the new CA). */
  ca_pin?: string;
  /** The host CA pins it said it trusts, at its last answer to a trust call (admin status: who has not moved yet). */
  trusted_pins?: string[];
}

/**
 * Changes a joined agent's record: read, changed, written only if no one wrote
 * it in between (compare and swap; a concurrent change is read again and this
 * one made on top of it). False when the record is gone: a change never brings
 * back an agent removed meanwhile (a get, then a put, would).
 */
export async function updateAgentRecord(ctx: ProxyContext, hostId: string, change: (r: AgentRecord) => AgentRecord): Promise<boolean> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const item = await ctx.backend.get<AgentRecord>(KEYS.agent(hostId));
    if (!item) return false;
    try {
      await ctx.backend.compareAndSwap<AgentRecord>(item.key, item.revision, change(item.value));
      return true;
    } catch (e) {
      if ((e as { code?: string }).code !== "compare_failed") throw e;
    }
  }
  throw new AzgateError("compare_failed", `agent ${hostId}'s record kept changing; try again`);
}

export interface JoinRequest {
  token: string;
  type: string;
  public_key_pem: string;
  host_name?: string;
  /** Bots: how they join, and the CI's OIDC token. */
  join_method?: string;
  id_token?: string;
  ttl_ms?: number;
}

/** Joins an agent or a bot: a named join token (or a bot's method) is a bot's, anything else an agent's secret. */
export async function join(ctx: ProxyContext, req: JoinRequest, remoteAddr?: string): Promise<HostCertificate | BotCertificate> {
  const named = JOIN_TOKEN_NAME.test(req.token) ? await ctx.backend.get<JoinToken>(KEYS.joinToken(req.token)) : null;
  if (named || (req.join_method && req.join_method !== "token")) {
    return joinBot(ctx, named?.value ?? null, { token: req.token, join_method: req.join_method, id_token: req.id_token ?? "", public_key_pem: req.public_key_pem, ttl_ms: req.ttl_ms }, remoteAddr);
  }
  return joinAgent(ctx, req, remoteAddr);
}

const NEW_TOKEN = "create a new one on the proxy: azgate admin tokens add --type=app";

export async function joinAgent(ctx: ProxyContext, req: JoinRequest, remoteAddr?: string): Promise<HostCertificate> {
  if (req.type !== "app") throw new AzgateError("bad_parameter", `cannot join as "${req.type}": agents join as "app"`);
  const publicKey = await parsePublicKey(req.public_key_pem);
  const hash = secretHash(req.token.trim());
  const token = await consumeToken(ctx, hash);
  const hostId = crypto.randomUUID();
  const record: AgentRecord = { host_id: hostId, host_name: (req.host_name ?? "").slice(0, 253) || hostId, joined: ctx.clock.date().toISOString(), token_id: token.id, ca_pin: ctx.cluster.views.host.pins[0], trusted_pins: [...ctx.cluster.views.host.pins] };
  await ctx.backend.put<AgentRecord>(KEYS.agent(hostId), record);
  const cert = await issueHostCert(ctx, hostId, publicKey);
  await ctx.audit.emit(audit("AGENT_JOINED", { host_id: hostId, host_name: record.host_name, token_id: token.id, remote_addr: remoteAddr, success: true }));
  return cert;
}

/** A new certificate for a joined agent, for its current or a new key. */
export async function renewHostCert(ctx: ProxyContext, identity: Identity, publicKeyPem: string): Promise<HostCertificate> {
  if (identity.kind !== "host") throw new AzgateError("access_denied", "only agents renew host certificates");
  const removed = () => new AzgateError("access_denied", `agent ${identity.name} was removed from the cluster; join it again with a new token`);
  if (!(await ctx.backend.get<AgentRecord>(KEYS.agent(identity.name)))) throw removed();
  const cert = await issueHostCert(ctx, identity.name, await parsePublicKey(publicKeyPem));
  // Removed while the certificate was made: it is not handed out, and the record stays gone.
  if (!(await updateAgentRecord(ctx, identity.name, (r) => ({ ...r, last_renewed: ctx.clock.date().toISOString(), ca_pin: ctx.cluster.views.host.pins[0] })))) throw removed();
  await ctx.audit.emit(audit("CERT_CREATED", { cert_type: "host", host_id: identity.name, expires: cert.expires }));
  return cert;
}

async function consumeToken(ctx: ProxyContext, hash: string): Promise<TokenInfo> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const item = await ctx.backend.get<TokenInfo>(KEYS.token(hash));
    if (!item) {
      if (await ctx.backend.get(KEYS.invite(hash))) {
        throw new AzgateError("token_invalid", `this is a user invite, not a join token; ${NEW_TOKEN}`);
      }
      throw new AzgateError("token_invalid", `the join token is not valid (unknown, deleted, or expired more than a day ago); ${NEW_TOKEN}`);
    }
    const t = item.value;
    if (t.type !== "app") throw new AzgateError("token_invalid", `the join token is for "${t.type}", not for app agents; ${NEW_TOKEN}`);
    const expiredFor = ctx.clock.now() - Date.parse(t.expires);
    if (expiredFor >= 0) throw new AzgateError("token_invalid", `the join token expired ${formatDuration(expiredFor)} ago; ${NEW_TOKEN}`);
    const uses = t.uses ?? 0;
    if (t.max_uses && uses >= t.max_uses) {
      throw new AzgateError("token_invalid", `the join token is used up (${uses} of ${t.max_uses} joins); ${NEW_TOKEN}`);
    }
    try {
      await ctx.backend.compareAndSwap<TokenInfo>(item.key, item.revision, { ...t, uses: uses + 1 }, { expires: item.expires ? new Date(item.expires) : undefined });
      return t;
    } catch (e) {
      if ((e as AzgateError).code !== "compare_failed") throw e;
    }
  }
  throw new AzgateError("internal", "the join token is being used by many agents at once; try again");
}

async function issueHostCert(ctx: ProxyContext, hostId: string, publicKey: CryptoKey): Promise<HostCertificate> {
  const identity: Identity = {
    kind: "host",
    name: hostId,
    roles: ["app"],
    traits: {},
    azure_identities: [],
    login_method: "join-token",
    session_id: crypto.randomUUID(),
  };
  const cert = await issueIdentityCert({ ca: ctx.cluster.host, publicKey, identity, now: ctx.clock.date(), notAfter: new Date(ctx.clock.now() + ctx.settings.hostCertTtlMs) });
  const host = ctx.cluster.views.host;
  const endorsements = await currentEndorsements(ctx);
  // Every host CA trusted now (two while it rotates) and their endorsements: an agent joining mid-rotation trusts both.
  return { host_id: hostId, cluster_name: ctx.cluster.name, cert_pem: pemOf(cert), expires: cert.notAfter.toISOString(), host_ca_pem: pemOf(host.tls.cert), host_ca_pems: hostCaPems(ctx), ...(endorsements.length ? { ca_endorsements: endorsements } : {}) };
}

async function parsePublicKey(pem: string): Promise<CryptoKey> {
  try {
    return await importPublicKeyPem(pem);
  } catch {
    throw new AzgateError("bad_parameter", "public_key_pem must be an ECDSA P-256 public key in PEM");
  }
}
