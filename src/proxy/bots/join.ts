/**
 * A bot joins with its CI's own signed token, through the one join path
 * (proxy/join.ts). In order, each refusal audited as bot.join with its code:
 *
 *   1. the join token: one of ours, not expired, of the method asked for;
 *   2. the CI token: its issuer's keys, audience, times (id-token.ts), and
 *      what its method checks first (the organisation, a service account);
 *   3. an allow rule of the join token that matches the run (rules.ts);
 *   4. the bot: it exists, is a bot, and no lock matches it or its roles;
 *   5. its token ID not seen before (a CI token joins once, on every
 *      replica), recorded only now: a refusal before it spends nothing.
 *
 * Then a short certificate (bots.cert_ttl, at most an hour, never past what
 * the roles allow) for the key the bot made in memory, carrying the bot's
 * name and the run's facts for every audit event to come.
 */
import { createHash } from "node:crypto";
import { audit } from "../../audit/events.ts";
import { AzgateError, isAzgateError } from "../../errors/index.ts";
import { importPublicKeyPem } from "../../pki/keys.ts";
import { issueIdentityCert } from "../../pki/certificate.ts";
import type { Identity } from "../../pki/identity.ts";
import { allowedAzureIdentities, sessionTtlMs } from "../../rbac/engine.ts";
import type { JoinToken } from "../../resources/join-token.ts";
import { botUserName, isBot, type User } from "../../resources/user.ts";
import { putIfAbsent } from "../../storage/backend.ts";
import { pemOf } from "../cluster.ts";
import type { ProxyContext } from "../context.ts";
import { KEYS } from "../keys.ts";
import { checkLocks } from "../locks.ts";
import { loadRoles, userStamp } from "../users.ts";
import { verifyCiToken } from "./id-token.ts";
import type { BotCertificate } from "../../api/types.ts";
import { methodOf } from "./methods/index.ts";
import { checkedFacts, firstMatch, runFields, type Claims } from "./rules.ts";

export interface BotJoinRequest {
  /** The join token's name. */
  token: string;
  join_method?: string;
  /** The CI's OIDC token. */
  id_token: string;
  public_key_pem: string;
  /** A shorter certificate than bots.cert_ttl. */
  ttl_ms?: number;
}

export type { BotCertificate };

/** Skew allowed past a CI token's exp before its ID is forgotten (the verify allows as much). */
const ID_SKEW_MS = 60_000;

export async function joinBot(ctx: ProxyContext, stored: JoinToken | null, req: BotJoinRequest, remoteAddr?: string): Promise<BotCertificate> {
  const seen: { ci?: Record<string, string> } = {};
  const tokenName = String(req.token ?? "").slice(0, 64);
  const method = stored?.spec.join_method ?? String(req.join_method ?? "").slice(0, 32);
  try {
    return await admit(ctx, stored, req, remoteAddr, seen);
  } catch (e) {
    const err = isAzgateError(e) ? e : new AzgateError("internal", "internal error; see the proxy log");
    if (!isAzgateError(e)) console.error("[proxy] bot join failed:", e);
    // The log says what the rule wanted too; the caller was told only what its own run said.
    const ruleDetail = (e as { auditReason?: string }).auditReason;
    await ctx.audit.emit(audit("BOT_JOIN_FAILED", { token_name: tokenName, join_method: method, ...(stored ? { bot: stored.spec.bot_name } : {}), ...(seen.ci ? { ci: seen.ci } : {}), error_code: err.code, reason: err.message, ...(ruleDetail ? { rule_detail: ruleDetail } : {}), remote_addr: remoteAddr, success: false }));
    throw err;
  }
}

async function admit(ctx: ProxyContext, stored: JoinToken | null, req: BotJoinRequest, remoteAddr: string | undefined, seen: { ci?: Record<string, string> }): Promise<BotCertificate> {
  // 1. The join token.
  if (!stored) throw new AzgateError("token_invalid", `join token "${String(req.token).slice(0, 64)}" is not known to this cluster (or expired more than a day ago); an administrator creates one with azgate admin create token.yaml`);
  const name = stored.metadata.name;
  if (stored.metadata.expires && Date.parse(stored.metadata.expires) <= ctx.clock.now()) throw new AzgateError("token_invalid", `join token "${name}" expired at ${stored.metadata.expires}; an administrator renews it (azgate admin create -f)`);
  if (req.join_method && req.join_method !== stored.spec.join_method) throw new AzgateError("bad_parameter", `join token "${name}" is for join method ${stored.spec.join_method}, not ${req.join_method}`);
  const publicKey = await importPublicKeyPem(String(req.public_key_pem ?? "")).catch(() => {
    throw new AzgateError("bad_parameter", "public_key_pem must be an ECDSA P-256 public key in PEM");
  });

  // 2. The CI token, against its issuer.
  const { impl, spec } = methodOf(stored);
  const issuer = impl.issuer(spec);
  const audience = spec.audience ?? impl.defaultAudience(ctx.settings.bots.audience ?? ctx.cluster.name);
  const claims = (await verifyCiToken(ctx, req.id_token, { issuer, audience, maxAgeMs: impl.maxAgeMs })) as Claims;
  seen.ci = checkedFacts(impl.facts(claims), (shown) => (seen.ci = shown));
  const wrong = impl.precheck?.(spec, claims);
  if (wrong) throw new AzgateError("id_token_invalid", `the CI token was refused: ${wrong}`);

  // 3. The allow rules, on the run's fields read once (and kept in the certificate, for renewals).
  const run = runFields(impl, claims);
  const match = firstMatch(impl, spec, run);
  if (!("rule" in match)) {
    throw Object.assign(new AzgateError("join_denied", `no allow rule of join token "${name}" matches this run: ${match.mismatch}`), { auditReason: match.detail });
  }

  // 4. The bot as the backend has it now: checked before its token ID is spent, so a join refused as locked can be tried again with the same token once the lock is lifted.
  const bot = stored.spec.bot_name;
  const user = (await ctx.backend.get<User>(KEYS.user(botUserName(bot))))?.value ?? null;
  if (!user || !isBot(user)) throw new AzgateError("not_found", `bot "${bot}" (named by join token "${name}") does not exist; an administrator adds it with azgate admin bots add ${bot} --roles ...`);
  const roles = await loadRoles(ctx, user.spec.roles);
  await checkLocks(ctx, { user: user.metadata.name, roles: roles.map((r) => r.metadata.name), session_ids: [] });

  // 5. Once per token ID, on every replica (the backend), until the token could no longer pass; before any certificate is issued.
  if (impl.singleUse) {
    const jti = typeof claims.jti === "string" && claims.jti.length <= 256 ? claims.jti : null;
    if (!jti) throw new AzgateError("id_token_invalid", "the CI token was refused: it has no token ID (jti) to be used once by");
    const hash = createHash("sha256").update(`${issuer}\n${jti}`).digest("hex");
    const until = new Date(claims.exp! * 1000 + ID_SKEW_MS);
    if (!(await putIfAbsent(ctx.backend, KEYS.ciTokenId(hash), { token: name, joined: ctx.clock.date().toISOString() }, { expires: until }))) {
      throw new AzgateError("id_token_replayed", `this CI token (jti ${jti.slice(0, 64)}) has joined before; a CI token joins once: fetch a fresh one`);
    }
  }

  const now = ctx.clock.now();
  const sessionEnd = now + sessionTtlMs(roles);
  const ttl = Math.min(ctx.settings.bots.certTtlMs, req.ttl_ms && req.ttl_ms > 0 ? req.ttl_ms : Infinity);
  const identity: Identity = {
    kind: "user",
    name: user.metadata.name,
    roles: roles.map((r) => r.metadata.name),
    traits: user.spec.traits,
    azure_identities: allowedAzureIdentities(roles, user.spec.traits),
    login_method: "bot",
    session_id: crypto.randomUUID(),
    user_id: userStamp(user).id,
    generation: userStamp(user).generation,
    bot: { name: bot, token: name, join_method: stored.spec.join_method, ci: seen.ci, session_expires: new Date(sessionEnd).toISOString(), issuer, run },
  };
  const cert = await issueIdentityCert({ ca: ctx.cluster.user, publicKey, identity, now: new Date(now), notAfter: new Date(Math.min(now + ttl, sessionEnd)) });
  const expires = cert.notAfter.toISOString();
  await ctx.audit.emit(audit("BOT_JOINED", { user: identity.name, bot, token_name: name, join_method: stored.spec.join_method, ci: seen.ci, rule: match.rule + 1, session_id: identity.session_id, expires, remote_addr: remoteAddr, success: true }));
  await ctx.audit.emit(audit("CERT_CREATED", { user: identity.name, cert_type: "bot", bot, ci: seen.ci, session_id: identity.session_id, expires }));
  return { cert_pem: pemOf(cert), expires, session_expires: identity.bot!.session_expires, cluster_name: ctx.cluster.name, identity };
}
