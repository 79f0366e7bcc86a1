/**
 * A running bot renews its certificate before it ends (the bot command does,
 * in memory), signed with the certificate it has: the account as it is now
 * (resolveCaller: the bot record, its roles, locks), the join token it came
 * with still there and unexpired, and never past the session's end set at
 * the join (its roles' max_session_ttl). A deleted or expired join token, a
 * lock or the bot's removal ends a bot at its next renewal, if not before.
 */
import { audit } from "../../audit/events.ts";
import { AzgateError } from "../../errors/index.ts";
import { importPublicKeyPem } from "../../pki/keys.ts";
import { issueIdentityCert } from "../../pki/certificate.ts";
import type { Identity } from "../../pki/identity.ts";
import { allowedAzureIdentities } from "../../rbac/engine.ts";
import type { JoinToken } from "../../resources/join-token.ts";
import type { Caller } from "../caller.ts";
import { pemOf } from "../cluster.ts";
import type { ProxyContext } from "../context.ts";
import { KEYS } from "../keys.ts";
import type { BotCertificate } from "./join.ts";

export async function renewBot(ctx: ProxyContext, caller: Caller, req: { public_key_pem?: unknown; ttl_ms?: unknown }): Promise<BotCertificate> {
  const facts = caller.identity.bot;
  if (!facts || caller.identity.route) throw new AzgateError("access_denied", "only a bot's certificate is renewed this way; people run azgate login");
  const token = (await ctx.backend.get<JoinToken>(KEYS.joinToken(facts.token)))?.value;
  const now = ctx.clock.now();
  if (!token || token.spec.bot_name !== facts.name) throw new AzgateError("access_denied", `join token "${facts.token}" no longer joins bot "${facts.name}"; the bot cannot renew`);
  if (token.metadata.expires && Date.parse(token.metadata.expires) <= now) throw new AzgateError("token_invalid", `join token "${facts.token}" expired at ${token.metadata.expires}; the bot cannot renew`);
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
