/**
 * Admin operations, shared by the HTTP API and the local bootstrap path.
 * Each one authorises the caller by `rules`, writes, and audits.
 */
import { audit, type AuditEventId } from "../audit/events.ts";
import { endRequestsOfUser } from "./access-requests.ts";
import { putIfAbsent } from "../storage/backend.ts";
import type { AuditEvent, AuditQuery } from "../audit/sink.ts";
import { CONNECTOR_KINDS, connectorRoles, withoutSecrets, type Connector, type ConnectorKind } from "../resources/connector.ts";
import { AzgateError } from "../errors/index.ts";
import type { Resource } from "../resources/parse.ts";
import { withoutTargetSecrets, type NotificationTarget } from "../resources/notification-target.ts";
import { checkIdentityTrait, checkTraits, isBot, type User } from "../resources/user.ts";
import type { JoinToken } from "../resources/join-token.ts";
import { parseDuration } from "../util/duration.ts";
import { authorize, type Caller } from "./caller.ts";
import { checkRule } from "../rbac/engine.ts";
import type { ProxyContext } from "./context.ts";
import { clearAll } from "./lockout.ts";
import { KEYS, newSecret, secretHash } from "./keys.ts";
import { listLocks, removeLock } from "./locks.ts";
import { checkPersonName, checkUserName, createInvite, deleteInvitesOf, getUser, newUserStatus, requireRolesExist, userStamp, type UserAuth } from "./users.ts";

export const RESOURCE_KINDS = ["role", "user", "token", "github", "oidc", "saml", "lock", "notification_target", "access_rule"] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

const isConnectorKind = (k: string): k is ConnectorKind => (CONNECTOR_KINDS as readonly string[]).includes(k);

/** Where a created resource is stored. */
function resourceKey(r: Resource): string {
  if (r.kind === "token") return KEYS.joinToken(r.metadata.name);
  if (r.kind === "notification_target") return KEYS.notificationTarget(r.metadata.name);
  if (r.kind === "access_rule") return KEYS.accessRule(r.metadata.name);
  return r.kind === "role" ? KEYS.role(r.metadata.name) : r.kind === "user" ? KEYS.user(r.metadata.name) : KEYS.connector(r.kind, r.metadata.name);
}

/** Connectors are governed by their own kind or by the "connector" rule resource. */
function authorizeConnector(caller: Caller, kind: ConnectorKind, verb: string): void {
  try {
    authorize(caller, kind, verb);
  } catch (e) {
    try {
      authorize(caller, "connector", verb);
    } catch {
      throw e;
    }
  }
}

export function parseKind(kind: string): ResourceKind {
  const k = kind.toLowerCase().replace(/s$/, "");
  if (!(RESOURCE_KINDS as readonly string[]).includes(k)) {
    throw new AzgateError("bad_parameter", `unknown resource kind "${kind}"; supported: ${RESOURCE_KINDS.join(", ")}`);
  }
  return k as ResourceKind;
}

export interface TokenInfo {
  id: string;
  type: "app";
  roles: string[];
  expires: string;
  created: string;
  /** Joins allowed; unlimited until expiry when absent (as in Teleport). */
  max_uses?: number;
  uses?: number;
}

/** Expired tokens are kept this long so a late join is told "expired", not "unknown". */
export const EXPIRED_TOKEN_GRACE_MS = 24 * 3_600_000;

// ---- create / get / rm -------------------------------------------------------

export async function createResources(ctx: ProxyContext, caller: Caller, resources: Resource[], force: boolean): Promise<string[]> {
  // Check everything first: permissions, existence, references. Then write.
  const plan: { resource: Resource; exists: boolean; stored?: unknown }[] = [];
  const definedHere = (n: string) => resources.some((o) => o.kind === "role" && o.metadata.name === n);
  for (const r of resources) {
    const stored = await ctx.backend.get(resourceKey(r));
    const exists = stored !== null;
    if (isConnectorKind(r.kind)) authorizeConnector(caller, r.kind, exists ? "update" : "create");
    else authorize(caller, r.kind, exists ? "update" : "create");
    if (exists && !force) throw new AzgateError("already_exists", `${r.kind} "${r.metadata.name}" already exists; use -f (--force) to overwrite it`);
    // A bot is made and removed by admin bots; a user file must not turn it into a person (or keep a person's password).
    if (r.kind === "user" && isBot(stored?.value as User | undefined)) throw new AzgateError("already_exists", `"${r.metadata.name}" is a bot; manage it with azgate admin bots (roles: admin users update --set-roles)`);
    if (r.kind === "user" && !exists) checkPersonName(r.metadata.name);
    if (r.kind === "user") await requireRolesExist(ctx, r.spec.roles.filter((n) => !definedHere(n)));
    if (r.kind === "github" || r.kind === "oidc" || r.kind === "saml") await requireRolesExist(ctx, connectorRoles(r).filter((n) => !definedHere(n)));
    plan.push({ resource: r, exists, stored: stored?.value });
  }
  const done: string[] = [];
  for (const { resource: r, exists, stored } of plan) {
    if (r.kind === "user") {
      // The record keeps its id and generation across an update; a new one gets its own (never the file's).
      const status = stored ? userStamp(stored as User) : newUserStatus();
      await ctx.backend.put<User>(KEYS.user(r.metadata.name), { ...r, spec: { ...r.spec, roles: unique(r.spec.roles), created_by: { time: ctx.clock.date().toISOString(), user: caller.name } }, status });
    } else if (r.kind === "token") {
      // Kept a day past its end, so a late join is told "expired", not "unknown".
      const end = r.metadata.expires ? new Date(Date.parse(r.metadata.expires) + EXPIRED_TOKEN_GRACE_MS) : undefined;
      await ctx.backend.put<JoinToken>(resourceKey(r), r, end ? { expires: end } : undefined);
      await ctx.audit.emit(exists ? audit("JOIN_TOKEN_UPDATED", { user: caller.name, token_id: r.metadata.name, bot: r.spec.bot_name }) : audit("JOIN_TOKEN_CREATED", { user: caller.name, token_id: r.metadata.name, roles: r.spec.roles, bot: r.spec.bot_name, join_method: r.spec.join_method, expires: r.metadata.expires ?? null }));
      done.push(`token "${r.metadata.name}" has been ${exists ? "updated" : "created"}`);
      continue;
    } else await ctx.backend.put(resourceKey(r), r);
    await ctx.audit.emit(resourceEvent(r.kind, exists ? "updated" : "created", { user: caller.name, name: r.metadata.name, ...(r.kind === "user" ? { roles: (r as User).spec.roles } : {}) }));
    done.push(`${r.kind} "${r.metadata.name}" has been ${exists ? "updated" : "created"}`);
  }
  return done;
}

export async function getResources(ctx: ProxyContext, caller: Caller, kind: ResourceKind, name?: string, withSecrets = false): Promise<unknown[]> {
  if (isConnectorKind(kind)) return getConnectors(ctx, caller, kind, name, withSecrets);
  if (kind === "notification_target") return getTargets(ctx, caller, name, withSecrets);
  authorize(caller, kind, name ? "read" : "list");
  if (kind === "lock") return listLocks(ctx, name);
  if (kind === "token") {
    const tokens = await listTokens(ctx);
    const named = await listJoinTokens(ctx);
    if (!name) return [...tokens, ...named];
    const found = [...tokens.filter((t) => t.id === name || t.id === secretHash(name).slice(0, 16)), ...named.filter((t) => t.metadata.name === name)];
    return found;
  }
  const prefix = kind === "role" ? KEYS.roles : kind === "access_rule" ? KEYS.accessRules : KEYS.users;
  if (name) {
    const item = await ctx.backend.get(prefix + name);
    if (!item) throw new AzgateError("not_found", `${kind} "${name}" is not found`);
    return [item.value];
  }
  return (await ctx.backend.list(prefix)).map((i) => i.value);
}

/**
 * Connectors hold secrets: `read` shows them (with --with-secrets), and
 * `readnosecrets` (or `read`) shows the rest, as in Teleport.
 */
async function getConnectors(ctx: ProxyContext, caller: Caller, kind: ConnectorKind, name: string | undefined, withSecrets: boolean): Promise<unknown[]> {
  if (!name) authorizeConnector(caller, kind, "list");
  if (withSecrets) authorizeConnector(caller, kind, "read");
  else {
    try {
      authorizeConnector(caller, kind, "readnosecrets");
    } catch {
      authorizeConnector(caller, kind, "read");
    }
  }
  const items = name ? [await ctx.backend.get<Connector>(KEYS.connector(kind, name))] : await ctx.backend.list<Connector>(KEYS.connectors(kind));
  if (name && !items[0]) throw new AzgateError("not_found", `${kind} "${name}" is not found`);
  return items.map((i) => (withSecrets ? i!.value : withoutSecrets(i!.value)));
}

/** Targets hold secrets (URLs with keys, passwords): as connectors, `read` shows them with --with-secrets, `readnosecrets` the rest. */
async function getTargets(ctx: ProxyContext, caller: Caller, name: string | undefined, withSecrets: boolean): Promise<unknown[]> {
  if (!name) authorize(caller, "notification_target", "list");
  if (withSecrets) authorize(caller, "notification_target", "read");
  else if (!checkRule(caller.roles, "notification_target", "readnosecrets").allowed) authorize(caller, "notification_target", "read");
  const items = name ? [await ctx.backend.get<NotificationTarget>(KEYS.notificationTarget(name))] : await ctx.backend.list<NotificationTarget>(KEYS.notificationTargets);
  if (name && !items[0]) throw new AzgateError("not_found", `notification_target "${name}" is not found`);
  return items.map((i) => (withSecrets ? i!.value : withoutTargetSecrets(i!.value)));
}

export async function removeResource(ctx: ProxyContext, caller: Caller, kind: ResourceKind, name: string): Promise<string> {
  if (isConnectorKind(kind)) {
    authorizeConnector(caller, kind, "delete");
    if (!(await ctx.backend.delete(KEYS.connector(kind, name)))) throw new AzgateError("not_found", `${kind} "${name}" is not found`);
    await ctx.audit.emit(resourceEvent(kind, "deleted", { user: caller.name, name }));
    return `${kind} connector "${name}" has been deleted`;
  }
  authorize(caller, kind, "delete");
  if (kind === "token") return removeToken(ctx, caller, name);
  if (kind === "lock") return removeLock(ctx, caller, name);
  if (kind === "notification_target" || kind === "access_rule") {
    if (!(await ctx.backend.delete(kind === "access_rule" ? KEYS.accessRule(name) : KEYS.notificationTarget(name)))) throw new AzgateError("not_found", `${kind} "${name}" is not found`);
    await ctx.audit.emit(resourceEvent(kind, "deleted", { user: caller.name, name }));
    return `${kind} "${name}" has been deleted`;
  }
  if (kind === "role") {
    if (!(await ctx.backend.delete(KEYS.role(name)))) throw new AzgateError("not_found", `role "${name}" is not found`);
  } else {
    if (!(await ctx.backend.delete(KEYS.user(name)))) throw new AzgateError("not_found", `user "${name}" is not found`);
    await ctx.backend.delete(KEYS.userAuth(name));
    await clearAll(ctx, name);
    await deleteInvitesOf(ctx, name);
  }
  await ctx.audit.emit(resourceEvent(kind, "deleted", { user: caller.name, name }));
  // Their pending requests are cancelled and approved ones revoked (each audited): nothing of theirs outlives them.
  if (kind === "user") await endRequestsOfUser(ctx, caller, name);
  return `${kind} "${name}" has been deleted`;
}

// ---- users --------------------------------------------------------------------

export async function addUser(ctx: ProxyContext, caller: Caller, name: string, roles: string[], traits: Record<string, string[]>) {
  authorize(caller, "user", "create");
  checkPersonName(name);
  traits = checkTraits(traits);
  roles = unique(roles);
  if (roles.length === 0) throw new AzgateError("bad_parameter", "a user needs at least one role: --roles access,editor");
  checkIdentityTrait(traits?.azure_identities);
  await requireRolesExist(ctx, roles);
  const user: User = {
    kind: "user",
    version: "v2",
    metadata: { name },
    spec: { roles, traits, created_by: { time: ctx.clock.date().toISOString(), user: caller.name } },
    status: newUserStatus(),
  };
  if (!(await putIfAbsent(ctx.backend, KEYS.user(name), user))) throw new AzgateError("already_exists", `user "${name}" already exists`);
  await ctx.audit.emit(audit("USER_CREATED", { user: caller.name, name, roles }));
  return { user, invite: await createInvite(ctx, user) };
}

export interface UserUpdate {
  roles?: string[];
  azure_identities?: string[];
  traits?: Record<string, string[]>;
}

export async function updateUser(ctx: ProxyContext, caller: Caller, name: string, update: UserUpdate): Promise<User> {
  authorize(caller, "user", "update");
  // Checked before anything is read or written, the same on every backend (a NUL would reach PostgreSQL's jsonb as a 500).
  if (update.traits !== undefined) checkTraits(update.traits);
  if (update.azure_identities !== undefined) checkTraits({ azure_identities: update.azure_identities });
  if (update.roles) update = { ...update, roles: unique(update.roles) };
  checkIdentityTrait(update.azure_identities, "azure_identities");
  checkIdentityTrait(update.traits?.azure_identities);
  if (update.azure_identities) update = { ...update, azure_identities: unique(update.azure_identities) };
  if (update.roles) {
    if (update.roles.length === 0) throw new AzgateError("bad_parameter", "--set-roles needs at least one role");
    await requireRolesExist(ctx, update.roles);
  }
  const next = await changeUser(ctx, name, (user) => {
    const traits = { ...user.spec.traits, ...(update.traits ?? {}) };
    // --set-azure-identities replaces the trait, as in tctl.
    if (update.azure_identities) traits.azure_identities = update.azure_identities;
    return { ...user, spec: { ...user.spec, roles: update.roles ?? user.spec.roles, traits: checkTraits(traits) } };
  });
  await ctx.audit.emit(audit("USER_UPDATED", { user: caller.name, name, roles: next.spec.roles }));
  return next;
}

/** Rewrites a user record with `change`, retrying when another writer got there first; the record keeps its expiry. */
async function changeUser(ctx: ProxyContext, name: string, change: (user: User) => User): Promise<User> {
  for (let attempt = 0; ; attempt++) {
    const item = await ctx.backend.get<User>(KEYS.user(name));
    if (!item) throw new AzgateError("not_found", `user "${name}" is not found`);
    const next = change(item.value);
    try {
      await ctx.backend.compareAndSwap(item.key, item.revision, next, item.expires ? { expires: new Date(item.expires) } : undefined);
      return next;
    } catch (e) {
      if ((e as AzgateError).code !== "compare_failed" || attempt >= 5) throw e;
    }
  }
}

/**
 * Resets a user, as Teleport's reset does: the password and the OTP device
 * stop working at once, the credential generation is bumped (every
 * certificate issued before is refused on its next use), earlier invites are
 * voided, a lockout is lifted, and a new invite sets new credentials.
 */
export async function resetUser(ctx: ProxyContext, caller: Caller, name: string) {
  authorize(caller, "user", "update");
  checkUserName(name);
  const user = await changeUser(ctx, name, (u) => {
    if (isBot(u)) throw new AzgateError("bad_parameter", `"${name}" is a bot: bots have no password to reset; remove it (azgate admin bots rm) to end its sessions`);
    const stamp = userStamp(u);
    return { ...u, status: { id: stamp.id || crypto.randomUUID(), generation: stamp.generation + 1 } };
  });
  // Recovery: the password, the TOTP secret and every passkey go; the invite registers new ones.
  const devices = (await ctx.backend.get<UserAuth>(KEYS.userAuth(name)))?.value.webauthn ?? [];
  await ctx.backend.delete(KEYS.userAuth(name));
  await clearAll(ctx, name);
  await ctx.audit.emit(audit("USER_RESET", { user: caller.name, name, generation: user.status!.generation, ...(devices.length ? { devices_removed: devices.map((d) => d.name) } : {}) }));
  for (const d of devices) await ctx.audit.emit(audit("MFA_DEVICE_DELETED", { user: caller.name, name, device: d.name, device_id: d.id, reason: "reset", success: true }));
  return createInvite(ctx, user);
}

const unique = (list: string[]) => [...new Set(list)];

// ---- join tokens ----------------------------------------------------------------

export async function addToken(ctx: ProxyContext, caller: Caller, type: string, ttl: string, maxUses?: number) {
  authorize(caller, "token", "create");
  if (type !== "app") throw new AzgateError("bad_parameter", `--type: unsupported token type "${type}"; supported: app`);
  const ttlMs = parseDuration(ttl, "--ttl");
  if (ttlMs > 48 * 3_600_000) throw new AzgateError("bad_parameter", "--ttl: join tokens may live at most 48h");
  if (maxUses !== undefined && (!Number.isInteger(maxUses) || maxUses < 1)) throw new AzgateError("bad_parameter", "--uses must be a whole number of at least 1");
  const token = newSecret(16);
  const hash = secretHash(token);
  const expires = new Date(ctx.clock.now() + ttlMs);
  const info: TokenInfo = {
    id: hash.slice(0, 16),
    type: "app",
    roles: ["app"],
    expires: expires.toISOString(),
    created: ctx.clock.date().toISOString(),
    ...(maxUses ? { max_uses: maxUses, uses: 0 } : {}),
  };
  await ctx.backend.put<TokenInfo>(KEYS.token(hash), info, { expires: new Date(expires.getTime() + EXPIRED_TOKEN_GRACE_MS) });
  await ctx.audit.emit(audit("JOIN_TOKEN_CREATED", { user: caller.name, token_id: info.id, roles: info.roles, expires: info.expires }));
  return { token, ...info };
}

/** Tokens that can still be used (expired and used-up ones are kept a while only to explain a failed join). */
export async function listTokens(ctx: ProxyContext): Promise<TokenInfo[]> {
  return (await ctx.backend.list<TokenInfo>(KEYS.tokens)).map((i) => i.value).filter((t) => Date.parse(t.expires) > ctx.clock.now() && !(t.max_uses && (t.uses ?? 0) >= t.max_uses));
}

/** Bots' join tokens in force (expired ones are kept a day only to explain a refused join). */
export async function listJoinTokens(ctx: ProxyContext): Promise<JoinToken[]> {
  return (await ctx.backend.list<JoinToken>(KEYS.joinTokens)).map((i) => i.value).filter((t) => !t.metadata.expires || Date.parse(t.metadata.expires) > ctx.clock.now());
}

/** Accepts the token itself or its id (as `tokens ls` shows it), or a bot's join token by name. */
export async function removeToken(ctx: ProxyContext, caller: Caller, tokenOrId: string): Promise<string> {
  authorize(caller, "token", "delete");
  if (await ctx.backend.delete(KEYS.joinToken(tokenOrId)).catch(() => false)) {
    await ctx.audit.emit(audit("JOIN_TOKEN_DELETED", { user: caller.name, token_id: tokenOrId }));
    return `token "${tokenOrId}" has been deleted`;
  }
  const items = await ctx.backend.list<TokenInfo>(KEYS.tokens);
  const hash = secretHash(tokenOrId);
  const item = items.find((i) => i.key === KEYS.token(hash) || i.value.id === tokenOrId);
  if (!item || !(await ctx.backend.delete(item.key))) throw new AzgateError("not_found", `token "${tokenOrId}" is not found`);
  await ctx.audit.emit(audit("JOIN_TOKEN_DELETED", { user: caller.name, token_id: item.value.id }));
  return `token ${item.value.id} has been deleted`;
}

/** Expired invites and tokens read as absent already; this removes their files too. */
export async function sweepExpired(ctx: ProxyContext): Promise<void> {
  await ctx.backend.list(KEYS.tokens);
  await ctx.backend.list(KEYS.joinTokens);
  await ctx.backend.list(KEYS.ciTokenIds);
  await ctx.backend.list(KEYS.invites);
  await ctx.backend.list(KEYS.users); // SSO users end with their certificate
  await ctx.backend.list(KEYS.ssoAttempts);
  await ctx.backend.list(KEYS.samlRequests);
}

// ---- audit ----------------------------------------------------------------------

/**
 * Reads the audit log for `azgate admin audit ls`. `since` is an ISO time or
 * a duration back from now ("1h"); callers need `list` on `event`.
 */
/** The filters `admin audit ls` and the web UI's audit page take (the same names in both). */
export const AUDIT_FILTERS = ["since", "until", "user", "event", "request", "app", "identity", "method", "status", "action", "resource", "decision", "session", "request_id", "command", "bot", "ci"] as const;
export type AuditFilters = Partial<Record<(typeof AUDIT_FILTERS)[number] | "limit", string>>;

export async function searchAudit(ctx: ProxyContext, caller: Caller, q: AuditFilters): Promise<AuditEvent[]> {
  authorize(caller, "event", "list");
  return ctx.audit.search(auditQuery(q, ctx.clock.now()));
}

/** How far back the log reaches (its oldest event) and how long it is kept (audit.retention; null: forever). */
export async function auditReach(ctx: ProxyContext, caller: Caller): Promise<{ oldest: string | null; retention: string | null }> {
  authorize(caller, "event", "list");
  return { oldest: await ctx.audit.oldest(), retention: ctx.settings.auditRetention?.text ?? null };
}

/** "The log reaches back to T (retention 90d)": what a search can find at most. */
export function reachLine(oldest: string | null, retention: string | null): string {
  const kept = retention ? `retention ${retention}: older events are deleted` : "no retention: events are kept forever";
  return oldest ? `The audit log reaches back to ${oldest} (${kept}).` : `The audit log is empty (${kept}).`;
}

/** Checks and converts the filters, naming the one that is wrong; a duration counts back from `now`. */
export function auditQuery(q: AuditFilters, now: number): AuditQuery {
  const time = (v: string | undefined, name: string) => {
    if (!v) return undefined;
    const t = /^\d{4}-\d\d-\d\d/.test(v) ? new Date(v) : new Date(now - parseDuration(v, name));
    if (Number.isNaN(t.getTime())) throw new AzgateError("bad_parameter", `${name}: "${v}" is neither a time (2026-11-24T10:00:00Z) nor a duration (1h)`);
    return t;
  };
  let limit: number | undefined;
  if (q.limit !== undefined && q.limit !== "") {
    limit = Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new AzgateError("bad_parameter", `limit: "${q.limit}" must be a whole number from 1 to 100000`);
  }
  for (const k of AUDIT_FILTERS) if ((q[k]?.length ?? 0) > 1024) throw new AzgateError("bad_parameter", `${k}: at most 1024 characters`);
  if (q.status && !/^([1-5][0-9][0-9]|[1-5]xx)$/i.test(q.status)) throw new AzgateError("bad_parameter", `status: "${q.status}" must be an HTTP status (403) or a class (4xx)`);
  if (q.decision && !["unrestricted", "allow", "deny", "would_deny"].includes(q.decision)) throw new AzgateError("bad_parameter", `decision: "${q.decision}" must be unrestricted, allow, deny or would_deny`);
  if (q.method && !/^[A-Za-z]{1,16}$/.test(q.method)) throw new AzgateError("bad_parameter", `method: "${q.method}" is not an HTTP method`);
  const opt = (v: string | undefined) => v || undefined;
  return {
    since: time(q.since, "since"),
    until: time(q.until, "until"),
    user: opt(q.user),
    event: opt(q.event),
    request: opt(q.request),
    app: opt(q.app),
    azureIdentity: opt(q.identity),
    method: opt(q.method),
    status: opt(q.status),
    action: opt(q.action),
    resource: opt(q.resource),
    decision: opt(q.decision),
    session: opt(q.session),
    requestId: opt(q.request_id),
    command: opt(q.command),
    bot: opt(q.bot),
    ci: opt(q.ci),
    limit,
  };
}

/** A resource's created/updated/deleted event, from the registry (a user's creation from a file is user.create, as from users add). */
function resourceEvent(kind: string, what: "created" | "updated" | "deleted", fields: { user: string; name: string; roles?: string[] }) {
  const ids: Record<string, Record<typeof what, ResourceEventId>> = {
    role: { created: "ROLE_CREATED", updated: "ROLE_UPDATED", deleted: "ROLE_DELETED" },
    user: { created: "USER_CREATED", updated: "USER_UPDATED", deleted: "USER_DELETED" },
    github: { created: "GITHUB_CREATED", updated: "GITHUB_UPDATED", deleted: "GITHUB_DELETED" },
    oidc: { created: "OIDC_CREATED", updated: "OIDC_UPDATED", deleted: "OIDC_DELETED" },
    saml: { created: "SAML_CREATED", updated: "SAML_UPDATED", deleted: "SAML_DELETED" },
    notification_target: { created: "NOTIFICATION_TARGET_CREATED", updated: "NOTIFICATION_TARGET_UPDATED", deleted: "NOTIFICATION_TARGET_DELETED" },
    access_rule: { created: "ACCESS_RULE_CREATED", updated: "ACCESS_RULE_UPDATED", deleted: "ACCESS_RULE_DELETED" },
  };
  const id = ids[kind]?.[what];
  if (!id) throw new AzgateError("internal", `no audit event is registered for ${kind}.${what}`);
  return audit(id, { roles: [], ...fields });
}
type ResourceEventId = Extract<AuditEventId, `${"ROLE" | "USER" | "GITHUB" | "OIDC" | "SAML" | "NOTIFICATION_TARGET" | "ACCESS_RULE"}_${"CREATED" | "UPDATED" | "DELETED"}`>;
