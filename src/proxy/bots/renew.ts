/**
 * A running bot renews its certificate before it ends (the bot command does,
 * in memory), signed with the certificate it has: the account as it is now
 * (resolveCaller: the bot record, its roles, locks), the join token it came
 * with still there and unexpired, and never past the session's end set at
 * the join (its roles' max_session_ttl). A deleted or expired join token, a
 * lock or the bot's removal ends a bot at its next renewal, if not before;
 * so does a join token whose allow rules no longer admit the run, matched
 * on the run's fields its join read and its certificate keeps (bot.run).
 * A refusal here is audited as bot.renew (AZJ002E).
 */
import { audit } from "../../audit/events.ts";
import { AzgateError, isAzgateError } from "../../errors/index.ts";
import { importPublicKeyPem } from "../../pki/keys.ts";
import { issueIdentityCert } from "../../pki/certificate.ts";
import type { BotFacts, Identity } from "../../pki/identity.ts";
import { allowedAzureIdentities } from "../../rbac/engine.ts";
import type { JoinToken } from "../../resources/join-token.ts";
import type { Caller } from "../caller.ts";
import { pemOf } from "../cluster.ts";
import type { ProxyContext } from "../context.ts";
import { KEYS } from "../keys.ts";
import type { BotCertificate } from "./join.ts";
import { methodOf } from "./methods/index.ts";
import { firstMatch } from "./rules.ts";

export async function renewBot(ctx: ProxyContext, caller: Caller, req: { public_key_pem?: unknown; ttl_ms?: unknown }): Promise<BotCertificate> {
  const facts = caller.identity.bot;
  if (!facts || caller.identity.route) throw new AzgateError("access_denied", "only a bot's certificate is renewed this way; people run azgate login");
  try {
    return await renew(ctx, caller, facts, req);
  } catch (e) {
    if (isAzgateError(e)) {
      const ruleDetail = (e as { auditReason?: string }).auditReason;
      await ctx.audit.emit(audit("BOT_RENEW_FAILED", { user: caller.name, bot: facts.name, ci: facts.ci, session_id: caller.identity.session_id, error_code: e.code, reason: e.message, ...(ruleDetail ? { rule_detail: ruleDetail } : {}), success: false }));
    }
    throw e;
  }
}

async function renew(ctx: ProxyContext, caller: Caller, facts: BotFacts, req: { public_key_pem?: unknown; ttl_ms?: unknown }): Promise<BotCertificate> {
  const token = (await ctx.backend.get<JoinToken>(KEYS.joinToken(facts.token)))?.value;
  const now = ctx.clock.now();
  if (!token || token.spec.bot_name !== facts.name) throw new AzgateError("access_denied", `join token "${facts.token}" no longer joins bot "${facts.name}"; the bot cannot renew`);
  if (token.metadata.expires && Date.parse(token.metadata.expires) <= now) throw new AzgateError("token_invalid", `join token "${facts.token}" expired at ${token.metadata.expires}; the bot cannot renew`);
  // The join token's rules as they are now, on the run as the join read it: a narrowed rule ends a running bot here.
  const { impl, spec } = methodOf(token);
  if (token.spec.join_method !== facts.join_method || !facts.run || facts.issuer !== impl.issuer(spec)) {
    throw new AzgateError("join_denied", `join token "${facts.token}" no longer admits this run (its join method or issuer changed, or the certificate predates rechecks); join again`);
  }
  const match = firstMatch(impl, spec, facts.run);
  if (!("rule" in match)) throw Object.assign(new AzgateError("join_denied", `no allow rule of join token "${facts.token}" matches this run any more: ${match.mismatch}; the bot cannot renew`), { auditReason: match.detail });
  const sessionEnd = Date.parse(facts.session_expires);
  if (!(sessionEnd > now)) throw new AzgateError("cert_expired", `the bot's session ended at ${facts.session_expires}; join again`);
  const publicKey = await importPublicKeyPem(String(req.public_key_pem ?? "")).catch(() => {
    throw new AzgateError("bad_parameter", "public_key_pem must be an ECDSA P-256 public key in PEM");
  });
  const ttl = Math.min(ctx.settings.bots.certTtlMs, typeof req.ttl_ms === "number" && req.ttl_ms > 0 ? req.ttl_ms : Infinity);
  // The same session (a lock on it keeps working), with the roles as they are now.
  const identity: Identity = { ...caller.identity, roles: caller.roles.map((r) => r.metadata.name), traits: caller.traits, azure_identities: allowedAzureIdentities(caller.roles, caller.traits) };
  const cert = await issueIdentityCert({ ca: ctx.cluster.user, publicKey, identity, now: new Date(now), notAfter: new Date(Math.min(now + ttl, sessionEnd)) });
  const expires = cert.notAfter.toISOString();
  await ctx.audit.emit(audit("BOT_RENEWED", { user: caller.name, bot: facts.name, ci: facts.ci, session_id: identity.session_id, expires }));
  await ctx.audit.emit(audit("CERT_CREATED", { user: caller.name, cert_type: "bot", bot: facts.name, ci: facts.ci, session_id: identity.session_id, expires }));
  return { cert_pem: pemOf(cert), expires, session_expires: facts.session_expires, cluster_name: ctx.cluster.name, identity };
}
