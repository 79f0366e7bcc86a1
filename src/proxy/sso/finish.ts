/**
 * The end every SSO protocol shares: the identity provider vouched for a
 * user, the connector mapped them to roles; now make the temporary user,
 * issue the certificate for the client's key, and hand it to the attempt.
 */
import { audit } from "../../audit/events.ts";
import { AzgateError } from "../../errors/index.ts";
import { importPublicKeyPem } from "../../pki/keys.ts";
import { issueIdentityCert } from "../../pki/certificate.ts";
import type { Identity } from "../../pki/identity.ts";
import { allowedAzureIdentities, sessionTtlMs } from "../../rbac/engine.ts";
import type { Traits } from "../../rbac/types.ts";
import type { Connector } from "../../resources/connector.ts";
import { checkIdentityTrait, isBot, type User } from "../../resources/user.ts";
import { parseDuration } from "../../util/duration.ts";
import { pemOf } from "../cluster.ts";
import type { ProxyContext } from "../context.ts";
import { KEYS } from "../keys.ts";
import { loadRoles, newUserStatus } from "../users.ts";
import { checkLocks } from "../locks.ts";
import { ssoUserName } from "../../sso/mapping.ts";
import { completeAttempt, type SsoAttempt } from "./attempt.ts";

export interface SsoIdentity {
  /** The user's name as the IdP gave it (username_claim, NameID, GitHub login); finishSsoLogin decides whether it can be one here. */
  user: string;
  /**
   * Who the person is at the IdP, stable for life: OIDC issuer and `sub`,
   * SAML issuer and NameID, GitHub's numeric user id. The user record is
   * bound to it, so two people whose names clean to the same user name
   * never share one account.
   */
  subject: string;
  roles: string[];
  traits: Traits;
}

/**
 * Where the sign-in ends: for the CLI, a certificate for its key and the URL
 * of its loopback with the pickup code; for the web UI, the identity its
 * browser session carries (web/session.ts), for as long as the certificate would last.
 */
export type SsoEnd = { redirect: string; identity: Identity; ttlMs: number } | { web: Identity; ttlMs: number };

export async function finishSsoLogin(
  ctx: ProxyContext,
  connector: Connector,
  attempt: { key: string; revision: string; value: SsoAttempt; expires?: string },
  given: SsoIdentity,
): Promise<SsoEnd> {
  const via = attempt.value.web ? { via: "web" } : {};
  const refuse = async (err: AzgateError, what: Record<string, unknown>): Promise<never> => {
    await ctx.audit.emit(audit("USER_SSO_LOGIN_FAILED", { method: connector.kind, connector: connector.metadata.name, ...via, remote_addr: attempt.value.remote_addr, ...what, success: false }));
    auditedHere.add(err);
    throw err;
  };
  // The IdP's name as it is, or no login: a name cleaned into another could be another person's (sso/mapping.ts).
  const name = ssoUserName(given.user);
  if (!name) {
    await refuse(
      new AzgateError(
        "sso_failed",
        `${connector.kind} connector "${connector.metadata.name}" names this user ${JSON.stringify(given.user.slice(0, 200))}, which is not an azgate user name (1-128 letters, digits, '.', '_', '@', '+' or '-', starting with a letter or digit); azgate does not rewrite names, since two people's could become one. Ask an administrator to ${nameFix(connector)}`,
      ),
      { idp_user: given.user.slice(0, 200), subject: given.subject, error: "the identity provider's user name is not an azgate user name" },
    );
  }
  const who = { ...given, user: name! };
  const login = { user: who.user, method: connector.kind, connector: connector.metadata.name, remote_addr: attempt.value.remote_addr };
  if (who.roles.length === 0) {
    await refuse(
      new AzgateError(
        "sso_no_roles",
        `user "${who.user}" signed in with ${connector.kind} connector "${connector.metadata.name}", but nothing they have maps to a role; ask an administrator to check the connector's ${mappingField(connector)}`,
      ),
      { ...login, error: "no roles mapped" },
    );
  }
  try {
    // An identity provider's azure_identities claim enters as the trait does from an administrator: in the one grammar.
    checkIdentityTrait(who.traits.azure_identities, `the ${connector.kind} connector "${connector.metadata.name}" mapped azure_identities`);
  } catch (e) {
    await ctx.audit.emit(audit("USER_SSO_LOGIN_FAILED", { ...login, success: false, error: (e as Error).message }));
    throw e;
  }
  const existingItem = await ctx.backend.get<User>(KEYS.user(who.user));
  const existing = existingItem?.value;
  const owner = existing?.spec.created_by?.connector;
  if (isBot(existing)) {
    await refuse(new AzgateError("already_exists", `"${who.user}" is a bot; bots join with their CI's token, never through SSO`), { ...login, error: "the name is a bot's" });
  }
  if (!existing && /^bot-/i.test(who.user)) {
    await refuse(new AzgateError("bad_parameter", `"${who.user}" starts with bot-, which names bots; an SSO login cannot make a person of that name (map the identity provider's user to another)`), { ...login, error: "the name is a bot's" });
  }
  if (existing && !owner) {
    await refuse(new AzgateError("already_exists", `a local user named "${who.user}" exists; an SSO login cannot take it over`), { ...login, error: "local user with this name" });
  }
  // The name is held by another person (another connector, or another subject at this one): refused, never merged.
  // A record from before subjects were kept (no `subject`) is taken over by its connector's next login of that name.
  if (owner && (owner.type !== connector.kind || owner.id !== connector.metadata.name || (owner.subject !== undefined && owner.subject !== who.subject))) {
    await refuse(
      new AzgateError(
        "already_exists",
        `the user name "${who.user}" is in use by another person's sign-in (${owner.type} connector "${owner.id}"); ask an administrator to ${owner.type === connector.kind && owner.id === connector.metadata.name ? nameFix(connector, "unique") : `delete user "${who.user}" if it is the same person moving to this connector, or else to give each connector's people names of their own`}`,
      ),
      { ...login, subject: who.subject, error: "user name held by another SSO identity" },
    );
  }
  const roles = await loadRoles(ctx, who.roles);
  if (roles.length === 0) await refuse(new AzgateError("sso_no_roles", `the roles ${who.roles.join(", ")} mapped by connector "${connector.metadata.name}" do not exist`), { ...login, error: "mapped roles do not exist" });
  try {
    await checkLocks(ctx, { user: who.user, roles: roles.map((r) => r.metadata.name), session_ids: [] });
  } catch (e) {
    if (!(e instanceof AzgateError)) throw e;
    await refuse(e, { ...login, error: e.message });
  }

  const now = ctx.clock.now();
  const limits = [sessionTtlMs(roles)];
  if (connector.spec.max_session_ttl) limits.push(parseDuration(connector.spec.max_session_ttl));
  if (attempt.value.ttl_ms && attempt.value.ttl_ms > 0) limits.push(attempt.value.ttl_ms);
  const notAfter = new Date(now + Math.min(...limits));

  // A temporary user: it expires with its last certificate, so the backend keeps no SSO users nobody uses.
  // The same person signing in again keeps the record's id (earlier sessions go on) and never shortens its life.
  const recordExpires = new Date(Math.max(notAfter.getTime(), existingItem?.expires ? Date.parse(existingItem.expires) : 0));
  const user: User = {
    kind: "user",
    version: "v2",
    metadata: { name: who.user, expires: recordExpires.toISOString() },
    spec: {
      roles: roles.map((r) => r.metadata.name),
      traits: who.traits,
      created_by: { time: new Date(now).toISOString(), connector: { type: connector.kind, id: connector.metadata.name, identity: who.user, subject: who.subject } },
    },
    status: existing?.status ?? newUserStatus(),
  };
  try {
    await ctx.backend.compareAndSwap<User>(KEYS.user(who.user), existingItem?.revision ?? null, user, { expires: recordExpires });
  } catch (e) {
    // Another login of this name landed in between: try again rather than overwrite it.
    if ((e as AzgateError).code === "compare_failed") throw new AzgateError("sso_failed", `another sign-in for "${who.user}" happened at the same moment; run azgate login --auth again`);
    throw e;
  }

  const identity: Identity = {
    kind: "user",
    name: who.user,
    roles: user.spec.roles,
    traits: who.traits,
    azure_identities: allowedAzureIdentities(roles, who.traits),
    login_method: "sso",
    session_id: crypto.randomUUID(),
    user_id: user.status!.id,
    generation: user.status!.generation,
  };
  if (attempt.value.web) {
    // Used once: of two deliveries of the same answer, one signs in.
    if (!(await ctx.backend.delete(attempt.key))) throw new AzgateError("sso_attempt_invalid", "this login attempt has already been completed");
    await ctx.audit.emit(audit("USER_SSO_LOGIN", { ...login, via: "web", success: true, session_id: identity.session_id, roles: identity.roles }));
    return { web: identity, ttlMs: notAfter.getTime() - now };
  }
  const publicKey = await importPublicKeyPem(attempt.value.public_key_pem);
  const cert = await issueIdentityCert({ ca: ctx.cluster.user, publicKey, identity, now: new Date(now), notAfter });
  const code = await completeAttempt(ctx, attempt, { cert_pem: pemOf(cert), expires: cert.notAfter.toISOString(), user: who.user, roles: identity.roles });
  await ctx.audit.emit(audit("USER_SSO_LOGIN", { ...login, success: true, session_id: identity.session_id, roles: identity.roles }));
  await ctx.audit.emit(audit("CERT_CREATED", { user: who.user, cert_type: "user", session_id: identity.session_id, expires: cert.notAfter.toISOString() }));

  const back = new URL(attempt.value.client_redirect);
  back.searchParams.set("code", code);
  return { redirect: back.toString(), identity, ttlMs: notAfter.getTime() - now };
}

/**
 * Refusals finishSsoLogin audited itself, with what only it knows (the name, the subject): the callback
 * (routes.ts) does not record them a second time.
 */
const auditedHere = new WeakSet<Error>();
export const auditedByFinish = (e: unknown): boolean => e instanceof Error && auditedHere.has(e);

/** What an administrator changes so that the connector names each person with a user name of their own. */
function nameFix(c: Connector, kind: "valid" | "unique" = "valid"): string {
  const names = kind === "valid" ? "such names" : "names unique to each person";
  if (c.kind === "oidc") return `set connector "${c.metadata.name}"'s username_claim (now "${c.spec.username_claim ?? "email"}") to a claim whose values are ${names} (preferred_username or email, say)`;
  if (c.kind === "saml") return `have the identity provider send connector "${c.metadata.name}" a NameID whose values are ${names} (the email address, say)`;
  return `check connector "${c.metadata.name}": GitHub logins are ${names}`;
}

function mappingField(c: Connector): string {
  return c.kind === "github" ? "teams_to_roles" : c.kind === "oidc" ? "claims_to_roles" : "attributes_to_roles";
}
