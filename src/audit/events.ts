/**
 * Every audit event azgate writes, in one registry, as errors have theirs
 * (errors/index.ts): its name, its code, its severity, what it means and the
 * fields it always carries. Events are made with `audit(id, fields)`, typed
 * by the registry, and the proxy's sink refuses any event that is not
 * registered or lacks a field (registeredSink), so the log and the reference
 * table in docs/audit-events.md (generated from here) cannot drift.
 *
 * Codes follow Teleport's lib/events/codes.go where the name is Teleport's
 * (user.login T1000I/T1000W for passwords, T1001I/T1001W for SSO,
 * access_request.create T5000I, ...review T5002I, ...expire T5005I,
 * app.session.start T2007I, app.session.request T2009I, lock.created TLK00I,
 * role.created T9000I, github.created T8000I, cert.create TC000I, ...), so a
 * SIEM rule written for Teleport reads them alike; azgate's own events take
 * codes of their own (the AZ prefix) that Teleport does not use. The last
 * letter is the severity: I info, W warning (a refusal), E error.
 */
import type { AuditEvent } from "./sink.ts";

export type Severity = "info" | "warning" | "error";

export interface AuditEventSpec {
  event: string;
  code: string;
  /** What the event says happened. */
  summary: string;
  /** Fields it always carries (beyond event, code, time). */
  fields: readonly string[];
}

const spec = <F extends readonly string[]>(event: string, code: string, summary: string, fields: F) => ({ event, code, summary, fields });

export const AUDIT_EVENTS = {
  // ---- users and sign-in (Teleport's 1xxx) ----
  USER_LOGIN: spec("user.login", "T1000I", "A user signed in with a password (and second factor).", ["user", "method", "session_id", "success"] as const),
  USER_LOGIN_FAILED: spec("user.login", "T1000W", "A password sign-in was refused (wrong password or code, a lockout, a lock, a malformed name).", ["method", "error", "success"] as const),
  USER_SSO_LOGIN: spec("user.login", "T1001I", "A user signed in through an SSO connector.", ["user", "method", "connector", "session_id", "success"] as const),
  USER_SSO_LOGIN_FAILED: spec("user.login", "T1001W", "An SSO sign-in was refused (the identity provider's answer, the mapping, a lock).", ["method", "success"] as const),
  USER_CREATED: spec("user.create", "T1002I", "An administrator created a user (an invite follows).", ["user", "name", "roles"] as const),
  USER_UPDATED: spec("user.update", "T1003I", "An administrator changed a user's roles or Azure identities.", ["user", "name", "roles"] as const),
  USER_DELETED: spec("user.deleted", "T1004I", "A user was deleted: its sessions end, its access requests are ended.", ["user", "name"] as const),
  USER_PASSWORD_SET: spec("user.password_change", "T1005I", "A user set a password through an invite.", ["user", "success"] as const),
  USER_RESET: spec("user.reset", "AZ1002I", "An administrator reset a user: every certificate and invite of theirs is void.", ["user", "name", "generation"] as const),
  USER_LOCKED_OUT: spec("user.locked", "AZ1003W", "Too many failed sign-ins locked a user's password sign-in for a while.", ["user", "until"] as const),
  INVITE_REFUSED: spec("user.invite.refused", "AZ1001W", "An invite was refused (unknown, used, voided or expired).", ["error", "success"] as const),
  API_REQUEST_DENIED: spec("api.request.denied", "AZ1004W", "A signed-in caller was refused an API call by its roles.", ["user", "session_id", "method", "path", "error_code", "reason", "success"] as const),
  MFA_DEVICE_ADDED: spec("mfa.add", "T1006I", "A user registered a passkey or security key.", ["user", "device", "device_id", "success"] as const),
  MFA_DEVICE_DELETED: spec("mfa.delete", "T1007I", "A user removed a passkey or security key.", ["user", "device", "device_id", "success"] as const),
  MFA_DEVICE_ADD_FAILED: spec("mfa.add.failed", "AZ1005W", "A passkey or security key was not registered: its answer did not verify (a wrong origin or RP ID, an unknown or used challenge).", ["user", "reason", "success"] as const),
  MFA_DEVICE_USED: spec("mfa.used", "AZ1006I", "A passkey or security key answered a challenge: a login's, or a fresh check for an app session or a review (purpose).", ["user", "device", "device_id", "purpose", "success"] as const),
  MFA_CHECK_FAILED: spec("mfa.check.failed", "AZ1007W", "A fresh passkey check for an app session or a review was refused (the reason says why: an expired, used or another's challenge, another origin or RP ID, a counter that went back).", ["user", "purpose", "reason", "success"] as const),
  CERT_CREATED: spec("cert.create", "TC000I", "A certificate was issued (a user's at sign-in, an agent's at join or renewal).", ["cert_type", "expires"] as const),

  // ---- app sessions and Azure requests (Teleport's 2xxx) ----
  APP_SESSION_START: spec("app.session.start", "T2007I", "apps login: an app certificate for one app and Azure identity.", ["user", "app", "azure_identity", "session_id", "expires"] as const),
  APP_SESSION_DENIED: spec("app.session.denied", "AZ2001W", "apps login was refused for an app or Azure identity.", ["user", "app", "azure_identity", "reason", "success"] as const),
  APP_SESSION_CLOSED: spec("app.session.closed", "AZ2002W", "A change that ended its access (a lock, a reset or deletion, roles changed or edited, a grant revoked) closed an open app session's tunnel.", ["user", "session_id", "reason"] as const),
  APP_TUNNEL_DENIED: spec("app.tunnel.denied", "AZ2005W", "An app session's tunnel was refused at its opening.", ["user", "session_id", "error_code", "reason", "success"] as const),
  APP_REQUEST_START: spec("app.request.start", "AZ2003I", "An Azure request was authorised; written before anything reaches Azure.", ["user", "app", "azure_identity", "method", "host", "path", "request_id", "session_id"] as const),
  APP_REQUEST: spec("app.request", "T2009I", "An Azure request and Azure's answer.", ["user", "app", "azure_identity", "method", "host", "path", "request_id", "status", "success"] as const),
  APP_REQUEST_FAILED: spec("app.request", "T2009E", "An Azure request that got no answer from Azure (no agent, a broken stream).", ["user", "app", "azure_identity", "method", "host", "path", "request_id", "status", "success"] as const),
  APP_REQUEST_DENIED: spec("app.request.denied", "AZ2004W", "An Azure request was refused before it left the proxy (roles, grants, locks, policy).", ["user", "request_id", "error_code", "reason", "success"] as const),

  // ---- access requests (Teleport's 5xxx where the name is Teleport's) ----
  ACCESS_REQUEST_CREATED: spec("access_request.create", "T5000I", "A user requested an Azure identity for a while.", ["user", "access_request_id", "app", "azure_identity", "duration_ms", "success"] as const),
  ACCESS_REQUEST_REFUSED: spec("access_request.create", "AZ5000W", "A request could not be made (not requestable, no such app, too many pending).", ["user", "error_code", "reason", "success"] as const),
  ACCESS_REQUEST_REVIEWED: spec("access_request.review", "T5002I", "A reviewer (or an auto-review rule) approved or denied a request.", ["user", "access_request_id", "requester", "state", "success"] as const),
  ACCESS_REQUEST_REVIEW_REFUSED: spec("access_request.review", "AZ5007W", "A review was refused (no right to review, a wrong state, a missing code).", ["user", "access_request_id", "requester", "error_code", "reason", "success"] as const),
  ACCESS_REQUEST_APPROVED: spec("access_request.approve", "AZ5001I", "A request's approvals met its thresholds: it is approved.", ["user", "access_request_id", "requester"] as const),
  ACCESS_REQUEST_DENIED: spec("access_request.deny", "AZ5002I", "A request was denied.", ["user", "access_request_id", "requester"] as const),
  ACCESS_REQUEST_CANCELLED: spec("access_request.cancel", "AZ5003I", "A pending request was cancelled (by its requester, or the user's deletion).", ["user", "access_request_id"] as const),
  ACCESS_REQUEST_CANCEL_REFUSED: spec("access_request.cancel", "AZ5008W", "A cancel was refused.", ["user", "access_request_id", "error_code", "reason", "success"] as const),
  ACCESS_REQUEST_REVOKED: spec("access_request.revoke", "AZ5004I", "An approved request was revoked: its grant ends on the next request.", ["user", "access_request_id", "requester"] as const),
  ACCESS_REQUEST_REVOKE_REFUSED: spec("access_request.revoke", "AZ5009W", "A revoke was refused.", ["user", "access_request_id", "error_code", "reason", "success"] as const),
  ACCESS_REQUEST_EXPIRED: spec("access_request.expire", "T5005I", "A pending request passed its review deadline.", ["user", "access_request_id", "why"] as const),
  ACCESS_GRANT_START: spec("access_grant.start", "AZ5005I", "A grant's window was set by an approval.", ["user", "access_request_id", "app", "azure_identity", "not_before", "not_after"] as const),
  ACCESS_GRANT_END: spec("access_grant.end", "AZ5006I", "A grant ended (revoked, its window over, its user deleted).", ["user", "access_request_id", "app", "azure_identity", "why"] as const),

  // ---- resources (Teleport's 8xxx connectors, 9xxx roles, TLK locks, TJT tokens) ----
  ROLE_CREATED: spec("role.created", "T9000I", "A role was created.", ["user", "name"] as const),
  ROLE_UPDATED: spec("role.updated", "T9002I", "A role was changed.", ["user", "name"] as const),
  ROLE_DELETED: spec("role.deleted", "T9001I", "A role was deleted.", ["user", "name"] as const),
  GITHUB_CREATED: spec("github.created", "T8000I", "A GitHub connector was created.", ["user", "name"] as const),
  GITHUB_UPDATED: spec("github.updated", "T80002I", "A GitHub connector was changed (Teleport's code, as Teleport spells it).", ["user", "name"] as const),
  GITHUB_DELETED: spec("github.deleted", "T8001I", "A GitHub connector was deleted.", ["user", "name"] as const),
  OIDC_CREATED: spec("oidc.created", "T8100I", "An OIDC connector was created.", ["user", "name"] as const),
  OIDC_UPDATED: spec("oidc.updated", "T8102I", "An OIDC connector was changed.", ["user", "name"] as const),
  OIDC_DELETED: spec("oidc.deleted", "T8101I", "An OIDC connector was deleted.", ["user", "name"] as const),
  SAML_CREATED: spec("saml.created", "T8200I", "A SAML connector was created.", ["user", "name"] as const),
  SAML_UPDATED: spec("saml.updated", "T8202I", "A SAML connector was changed.", ["user", "name"] as const),
  SAML_DELETED: spec("saml.deleted", "T8201I", "A SAML connector was deleted.", ["user", "name"] as const),
  NOTIFICATION_TARGET_CREATED: spec("notification_target.created", "AZN100I", "A notification target was created.", ["user", "name"] as const),
  NOTIFICATION_TARGET_UPDATED: spec("notification_target.updated", "AZN102I", "A notification target was changed.", ["user", "name"] as const),
  NOTIFICATION_TARGET_DELETED: spec("notification_target.deleted", "AZN101I", "A notification target was deleted.", ["user", "name"] as const),
  ACCESS_RULE_CREATED: spec("access_rule.created", "AZ5100I", "An auto-review rule was created.", ["user", "name"] as const),
  ACCESS_RULE_UPDATED: spec("access_rule.updated", "AZ5102I", "An auto-review rule was changed.", ["user", "name"] as const),
  ACCESS_RULE_DELETED: spec("access_rule.deleted", "AZ5101I", "An auto-review rule was deleted.", ["user", "name"] as const),
  LOCK_CREATED: spec("lock.created", "TLK00I", "A lock was put in force.", ["user", "name", "target"] as const),
  LOCK_DELETED: spec("lock.deleted", "TLK01I", "A lock was lifted.", ["user", "name"] as const),
  JOIN_TOKEN_CREATED: spec("join_token.create", "TJT00I", "A join token was created.", ["user", "token_id", "expires"] as const),
  JOIN_TOKEN_DELETED: spec("join_token.delete", "AZJT01I", "A join token was deleted.", ["user", "token_id"] as const),
  JOIN_TOKEN_UPDATED: spec("join_token.update", "AZJT02I", "A bot's join token was changed (admin create -f).", ["user", "token_id"] as const),

  // ---- bots (Teleport's TB and TJ codes) ----
  BOT_CREATED: spec("bot.create", "TB001I", "A bot was created: a user of kind bot, with ordinary roles.", ["user", "name", "roles"] as const),
  BOT_DELETED: spec("bot.delete", "TB003I", "A bot was deleted: its certificates stop working on their next use.", ["user", "name"] as const),
  BOT_JOINED: spec("bot.join", "TJ001I", "A bot joined with its CI's OIDC token: a short certificate carrying the CI facts.", ["user", "bot", "token_name", "join_method", "ci", "session_id", "expires", "success"] as const),
  BOT_JOIN_FAILED: spec("bot.join", "TJ001E", "A bot's join was refused (the CI token, the join token's allow rules, a replay, a lock, an expired join token).", ["token_name", "join_method", "error_code", "reason", "success"] as const),
  BOT_RENEWED: spec("bot.renew", "AZJ002I", "A running bot renewed its certificate (within its session's end).", ["user", "bot", "ci", "session_id", "expires"] as const),
  BOT_RENEW_FAILED: spec("bot.renew", "AZJ002E", "A running bot's renewal was refused (its join token gone, expired or no longer admitting its run, its session ended).", ["user", "bot", "error_code", "reason", "success"] as const),

  // ---- agents and the proxy ----
  AGENT_JOINED: spec("agent.join", "AZJ001I", "An agent joined with a join token.", ["host_id", "token_id", "success"] as const),
  AGENT_CONNECTED: spec("agent.connect", "AZA001I", "An agent's tunnel opened.", ["host_id"] as const),
  AGENT_DISCONNECTED: spec("agent.disconnect", "AZA002I", "An agent's tunnel closed.", ["host_id", "reason"] as const),
  AGENT_CONTROL_REFUSED: spec("agent.control.refused", "AZA003W", "An agent's control call was malformed and refused.", ["host_id", "call", "error_code", "reason", "success"] as const),
  VERSION_REFUSED: spec("version.refused", "AZ0002W", "An agent's or client's tunnel was refused: the proxy no longer serves its version (both are named).", ["peer", "peer_version", "version", "error_code", "success"] as const),
  BACKUP_CREATED: spec("backup.create", "AZ0003I", "A backup of the backend was taken (admin backup, admin backend clone): every record, secrets included.", ["user", "items"] as const),
  BACKUP_RESTORED: spec("backup.restore", "AZ0004I", "A backup was restored into an empty backend (admin restore, admin backend clone).", ["items", "cluster", "taken"] as const),
  PROXY_STARTED: spec("proxy.start", "AZP000I", "A proxy replica started.", ["cluster", "listen"] as const),

  // ---- key rotation (docs/rotation.md) ----
  CERT_RETIRED_REFUSED: spec("cert.retired", "AZC001W", "A certificate from a CA that a rotation retired was refused (a client or agent that missed the rotation, or a retired key in other hands).", ["user", "cert_type", "ca_pin", "error_code", "success"] as const),
  CA_ROTATED: spec("ca.rotate", "AZC000I", "A CA rotation moved to its next phase (by an administrator, or on its schedule); the final standby retires a CA.", ["user", "ca_type", "phase", "from_phase", "mode", "ca_pins"] as const),

  // ---- notifications ----
  NOTIFICATION_SENT: spec("notification.sent", "AZN000I", "A notification reached its target.", ["target", "notification_id", "notification_event", "attempts", "success"] as const),
  NOTIFICATION_FAILED: spec("notification.failed", "AZN001W", "A notification could not be sent; retried later, or given up.", ["target", "notification_id", "notification_event", "attempts", "error", "success"] as const),

  // ---- the web UI ----
  WEB_SESSION_START: spec("web.session.start", "AZW000I", "A browser signed in to the web UI.", ["user", "session_id", "expires"] as const),
  WEB_SESSION_END: spec("web.session.end", "AZW001I", "A browser session ended (signed out).", ["user", "session_id", "why"] as const),
  WEB_SESSION_CUT: spec("web.session.end", "AZW001W", "A browser session was ended by a lock, a reset or a deletion.", ["user", "session_id", "why", "error_code"] as const),
  WEB_REQUEST_DENIED: spec("web.request.denied", "AZW010W", "A web page or form was refused (roles, CSRF).", ["user", "session_id", "method", "path", "error_code", "reason", "success"] as const),
  AUDIT_RETENTION: spec("audit.retention", "AZ0001I", "Audit events older than audit.retention were deleted (the file sink's whole days, PostgreSQL's rows in batches).", ["before", "events", "oldest"] as const),
  AUDIT_EXPORTED: spec("audit.export", "AZW020I", "The audit log was exported from the web UI.", ["user", "format"] as const),
} as const;

export type AuditEventId = keyof typeof AUDIT_EVENTS;
type FieldsOf<K extends AuditEventId> = { [F in (typeof AUDIT_EVENTS)[K]["fields"][number]]: unknown } & Record<string, unknown>;

/** An event of the registry, with its fields: what every emit passes to the sink. */
export function audit<K extends AuditEventId>(id: K, fields: FieldsOf<K>): Omit<AuditEvent, "time"> {
  const s = AUDIT_EVENTS[id];
  return { ...fields, event: s.event, code: s.code };
}

const byCode = new Map<string, AuditEventSpec>(Object.values(AUDIT_EVENTS).map((s) => [s.code, s]));

/** Why an event is not one of the registry's (an unknown name or code, a pair that does not match, a missing field), or null. */
export function unregistered(e: { event?: unknown; code?: unknown; [k: string]: unknown }): string | null {
  const s = typeof e.code === "string" ? byCode.get(e.code) : undefined;
  if (!s) return `audit event code ${JSON.stringify(e.code)} is not registered (audit/events.ts)`;
  if (s.event !== e.event) return `audit event ${JSON.stringify(e.event)} does not go with code ${s.code} (${s.event})`;
  const missing = s.fields.filter((f) => !(f in e));
  return missing.length ? `audit event ${s.event} (${s.code}) lacks ${missing.join(", ")}` : null;
}

/** The severity a code says. */
export const severityOf = (code: string): Severity => (code.endsWith("W") ? "warning" : code.endsWith("E") ? "error" : "info");

/** The reference table of docs/audit-events.md, made from the registry (scripts/gen-docs.ts writes it; a test compares). */
export function auditEventsMarkdown(): string {
  const rows = Object.entries(AUDIT_EVENTS).map(([id, s]) => `| \`${s.event}\` | \`${s.code}\` | ${severityOf(s.code)} | ${s.summary} | ${s.fields.map((f) => `\`${f}\``).join(", ")} | \`${id}\` |`);
  return [
    "# Audit events",
    "",
    "Every event azgate writes, generated from `src/audit/events.ts` (`npm run docs` rewrites this file; `test/audit-events.test.ts` fails when it is stale).",
    "Codes are Teleport's where the event's name is Teleport's; azgate's own events have `AZ` codes. The last letter is the severity:",
    "`I` info, `W` a refusal, `E` an error. Each event also carries `time`, and often `remote_addr`, `reason` and the IDs of what it is about.",
    "",
    "| event | code | severity | what happened | always carries | id |",
    "|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}
