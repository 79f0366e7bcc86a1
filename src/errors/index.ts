/**
 * Typed errors with stable codes. The CLI prints `ERROR: <message>`; the API
 * answers `{"error":{"code","message"}}` with `status`. Codes never change
 * meaning once released: scripts and tests match on them.
 */
export type ErrorCode =
  | "bad_parameter"
  | "config_invalid"
  | "resource_invalid"
  | "not_found"
  | "already_exists"
  | "access_denied"
  | "unauthenticated"
  | "login_failed"
  | "sso_failed"
  | "sso_attempt_invalid"
  | "sso_no_roles"
  | "user_locked"
  | "locked"
  | "mfa_required"
  | "method_not_allowed"
  | "payload_too_large"
  | "unsupported_media_type"
  | "cert_expired"
  | "cert_untrusted"
  | "ca_retired"
  | "proof_missing"
  | "proof_invalid"
  | "proof_mismatch"
  | "proof_replayed"
  | "proof_clock_skew"
  | "token_invalid"
  | "id_token_invalid"
  | "id_token_replayed"
  | "join_denied"
  | "issuer_unavailable"
  | "backend_locked"
  | "compare_failed"
  | "trust_required"
  | "connection_failed"
  | "rate_limited"
  | "not_implemented"
  | "version_unsupported"
  | "internal"
  // The Azure request path (client, proxy, agent): docs/tunnel-protocol.md lists them.
  | "bad_request"
  | "target_refused"
  | "host_mismatch"
  | "token_audience_mismatch"
  | "token_timeout"
  | "token_no_federated_credential"
  | "token_identity_not_found"
  | "token_agent_cannot_read_identity"
  | "token_not_an_identity"
  | "token_entra"
  | "token_unavailable"
  | "upstream_failed"
  | "target_unreachable"
  | "app_unavailable"
  | "agent_unavailable"
  | "audit_unavailable"
  | "azgate_unavailable"
  | "policy_denied";

const statusByCode: Record<ErrorCode, number> = {
  bad_parameter: 400,
  config_invalid: 400,
  resource_invalid: 400,
  not_found: 404,
  already_exists: 409,
  access_denied: 403,
  unauthenticated: 401,
  login_failed: 401,
  sso_failed: 401,
  sso_attempt_invalid: 403,
  sso_no_roles: 403,
  user_locked: 403,
  locked: 403,
  mfa_required: 403,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  cert_expired: 401,
  cert_untrusted: 401,
  ca_retired: 401,
  proof_missing: 401,
  proof_invalid: 401,
  proof_mismatch: 401,
  proof_replayed: 401,
  proof_clock_skew: 401,
  token_invalid: 401,
  id_token_invalid: 401,
  id_token_replayed: 401,
  join_denied: 403,
  issuer_unavailable: 502,
  backend_locked: 409,
  compare_failed: 409,
  trust_required: 400,
  connection_failed: 502,
  rate_limited: 429,
  not_implemented: 501,
  version_unsupported: 426,
  internal: 500,
  bad_request: 400,
  target_refused: 403,
  host_mismatch: 421,
  token_audience_mismatch: 403,
  token_timeout: 504,
  token_no_federated_credential: 502,
  token_identity_not_found: 502,
  token_agent_cannot_read_identity: 502,
  token_not_an_identity: 502,
  token_entra: 502,
  token_unavailable: 502,
  upstream_failed: 502,
  target_unreachable: 502,
  app_unavailable: 503,
  agent_unavailable: 502,
  audit_unavailable: 503,
  azgate_unavailable: 502,
  policy_denied: 403,
};

/** What each code means, for whoever meets it: docs/reference/errors.md is generated from this and the statuses (npm run docs). */
const meaningByCode: Record<ErrorCode, string> = {
  bad_parameter: "A parameter or argument is malformed, out of range or missing; the message names it.",
  config_invalid: "The configuration (the YAML file, the AZGATE_* environment or the flags) is invalid; the message names the field and the sources.",
  resource_invalid: "A resource (a role, user, connector, lock, access rule or notification target) is invalid; the message names the field.",
  not_found: "What was named does not exist (a resource, user, access request or Azure identity), or az has no login for the app yet.",
  already_exists: "It exists already: a resource of that name (create it with -f to overwrite), a user, or this reviewer's review of the request.",
  access_denied: "The caller's roles do not allow this (deny wins), or no role allows the app or the Azure identity.",
  unauthenticated: "No valid sign-in: not logged in, or the user was deleted, reset or re-created since the certificate was issued.",
  login_failed: "A sign-in failed. A password login answers every failure alike (user name, password, second factor, a lockout); also az login through azgate, and a review's authenticator code.",
  sso_failed: "The identity provider's answer did not check out (signature, audience, nonce, issuer, replay...).",
  sso_attempt_invalid: "Unknown, expired, used or foreign login attempt.",
  sso_no_roles: "Authenticated by the IdP, but the connector maps nothing the user has to a role.",
  user_locked: "No longer sent: a login during the failed-login lockout is answered `login_failed`, as every failure is (login.ts; the audit event says locked). Kept registered so the code keeps its meaning.",
  locked: "An administrator's lock (azgate admin lock) matches the user, role, Azure identity or session.",
  mfa_required: "A role (`require_session_mfa`, `review_mfa`) or the cluster (`auth.require_session_mfa`) asks for a fresh check with a passkey or security key for this: an app session or a review; the CLI opens the browser for it. Also a check that was missing, expired, used, another user's or for another purpose.",
  method_not_allowed: "A method Azure APIs do not use (TRACE, CONNECT...): azgate forwards only GET, HEAD, PUT, POST, PATCH, DELETE and OPTIONS.",
  payload_too_large: "A body over its limit: 64 KiB for login, invites, join and SSO, 512 KiB for a SAML response, 1 MiB for signed calls.",
  unsupported_media_type: "A JSON route was sent something other than Content-Type: application/json.",
  cert_expired: "The certificate expired: log in again (an agent: join again with a new token).",
  cert_untrusted: "The certificate was not issued by this cluster (or is not valid yet), or the proxy's TLS certificate or CA is not the one trusted.",
  ca_retired: "The certificate was signed by a CA that a rotation retired (azgate admin auth rotate): log in again; an agent joins again with a new token and the CA pin the message names.",
  proof_missing: "A call that needs a signed request came without its proof of possession.",
  proof_invalid: "The proof of possession is malformed, has no nonce, or its signature does not verify against its certificate.",
  proof_mismatch: "The proof was made for another request (method, path, query or body).",
  proof_replayed: "The proof's nonce was used before.",
  proof_clock_skew: "The proof's time is outside the allowed window (60 s) of the proxy's clock.",
  token_invalid: "An invite, a join token or an Azure placeholder token that is not (or no longer) valid.",
  id_token_invalid: "A bot's join: the CI's OIDC token did not check out (malformed, a signature by a key its issuer does not publish, another issuer, a wrong audience, expired, issued in the future or too old); the message says which.",
  id_token_replayed: "A bot's join: this CI token (its issuer and token ID, jti) was used to join before; a CI token joins once.",
  join_denied: "A bot's join: the CI token is genuine, but no allow rule of the join token matches what it says (the repository, ref, environment, a fork's pull request, the project...); the message names the closest rule's first difference.",
  issuer_unavailable: "A bot's join: the proxy could not read the CI issuer's OIDC discovery document or its keys (JWKS).",
  backend_locked: "Another process holds the data dir.",
  compare_failed: "A record changed since it was read (a compare-and-swap lost); read it again and retry.",
  trust_required: "The proxy's CA is not trusted yet: give its CA pin (--ca-pin) or confirm it on a terminal.",
  connection_failed: "The proxy cannot be reached, or did not answer like an azgate proxy.",
  rate_limited: "Too many attempts: logins from one address, or a user's pending access requests.",
  not_implemented: "Not implemented; nothing sends it now. Kept registered so the code keeps its meaning.",
  version_unsupported: "The proxy no longer serves an agent or client of this version (it serves one minor version behind its own, 0.x); the message names both versions and what to upgrade.",
  internal: "An unexpected failure: a bug, or something that did not finish (the message says what; the proxy's log says more).",
  bad_request: "Malformed stream metadata or request (a client that is not azgate's, or a bug).",
  target_refused: "Not an Azure API host over HTTPS on 443, or a header that steers the request elsewhere.",
  host_mismatch: "The workstation: the Host header names another host than the CONNECT target.",
  token_audience_mismatch: "A token for one service sent to another (an ARM token to a storage host).",
  token_timeout: "The agent: Entra ID did not answer in time.",
  token_no_federated_credential: "The agent: no federated credential for its service account on this identity; the message gives the az command that makes one.",
  token_identity_not_found: "The agent: Azure does not know the identity.",
  token_agent_cannot_read_identity: "The agent's own identity may not read the identity in ARM (it needs Microsoft.ManagedIdentity/userAssignedIdentities/read).",
  token_not_an_identity: "The agent: the ID names no user-assigned managed identity.",
  token_entra: "The agent: Entra ID refused the token request; the message says why.",
  token_unavailable: "The agent could get no real token for the identity, for another cause; the message names it.",
  upstream_failed: "Azure could not be reached, or broke off.",
  target_unreachable: "The agent: the Azure host's name does not resolve.",
  app_unavailable: "No agent serves the app right now.",
  agent_unavailable: "Every agent tried went away before answering.",
  audit_unavailable: "The audit log cannot be written: nothing is forwarded.",
  azgate_unavailable: "The workstation's local proxy cannot reach the azgate proxy.",
  policy_denied: "The caller's azure_api rules refuse this Azure operation (rbac/azure-api.ts); Azure clients see AzgatePolicyDenied.",
};

/** Every registered code and its HTTP status (tests walk it; docs list it). */
export const ERROR_STATUS: Readonly<Record<ErrorCode, number>> = statusByCode;

/** Every registered code and what it means. */
export const ERROR_MEANING: Readonly<Record<ErrorCode, string>> = meaningByCode;

export class AzgateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** The code Azure clients see in ARM's error shape, where it differs from `code` (az prints it). */
  readonly azureCode?: string;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AzgateError";
    this.code = code;
    this.status = statusByCode[code];
  }
}

export const isAzgateError = (e: unknown): e is AzgateError => e instanceof AzgateError;

export function toErrorBody(e: AzgateError) {
  return { error: { code: e.code, message: e.message } };
}

/** Rebuilds an error from an API error body; unknown codes become `internal`. */
export function fromErrorBody(status: number, body: unknown): AzgateError {
  const err = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
  if (err && typeof err.message === "string") {
    const code = (err.code && err.code in statusByCode ? err.code : "internal") as ErrorCode;
    return new AzgateError(code, err.message);
  }
  return new AzgateError("internal", `unexpected response from the proxy (HTTP ${status})`);
}

// ---- the Azure request path: one class per code (jose's errors.ts is the model) ----

export class AccessDenied extends AzgateError {
  static readonly code = "access_denied";
  constructor(message: string) {
    super(AccessDenied.code, message);
  }
}

/** A role or the cluster asks this session for a fresh passkey check it did not have (require_session_mfa). */
export class MfaRequired extends AzgateError {
  static readonly code = "mfa_required";
  constructor(message: string) {
    super(MfaRequired.code, message);
  }
}

/** The caller's azure_api rules refuse the operation; az prints `(AzgatePolicyDenied) <message>`. */
export class PolicyDenied extends AzgateError {
  static readonly code = "policy_denied";
  override readonly azureCode = "AzgatePolicyDenied";
  /** What the audit event of the refusal records (the operation and the rule). */
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(PolicyDenied.code, message);
  }
}

export class BadRequest extends AzgateError {
  static readonly code = "bad_request";
  constructor(message: string) {
    super(BadRequest.code, message);
  }
}

export class TargetRefused extends AzgateError {
  static readonly code = "target_refused";
  constructor(message: string) {
    super(TargetRefused.code, message);
  }
}

export class MethodNotAllowed extends AzgateError {
  static readonly code = "method_not_allowed";
  constructor(message: string) {
    super(MethodNotAllowed.code, message);
  }
}

export class HostMismatch extends AzgateError {
  static readonly code = "host_mismatch";
  constructor(message: string) {
    super(HostMismatch.code, message);
  }
}

/** The placeholder token is not this session's, or not valid; `problem` says which check failed. */
export class PlaceholderInvalid extends AzgateError {
  static readonly code = "token_invalid";
  constructor(
    readonly problem: "malformed" | "signature" | "expired" | "identity" | "resource",
    message: string,
  ) {
    super(PlaceholderInvalid.code, message);
  }
}

export class TokenAudienceMismatch extends AzgateError {
  static readonly code = "token_audience_mismatch";
  constructor(message: string) {
    super(TokenAudienceMismatch.code, message);
  }
}

export type TokenFailure = "timeout" | "no_federated_credential" | "identity_not_found" | "agent_cannot_read_identity" | "not_an_identity" | "entra" | "unavailable";

/** The agent could not get a real token; the code (`token_<reason>`) says why, the message names the identity. */
export class TokenUnavailable extends AzgateError {
  constructor(
    readonly reason: TokenFailure,
    message: string,
  ) {
    super(`token_${reason}` as ErrorCode, message);
  }
}

export class UpstreamFailed extends AzgateError {
  static readonly code = "upstream_failed";
  constructor(message: string) {
    super(UpstreamFailed.code, message);
  }
}

export class TargetUnreachable extends AzgateError {
  static readonly code = "target_unreachable";
  constructor(message: string) {
    super(TargetUnreachable.code, message);
  }
}

export class AppUnavailable extends AzgateError {
  static readonly code = "app_unavailable";
  constructor(message: string) {
    super(AppUnavailable.code, message);
  }
}

export class AgentUnavailable extends AzgateError {
  static readonly code = "agent_unavailable";
  constructor(message: string) {
    super(AgentUnavailable.code, message);
  }
}

export class AuditUnavailable extends AzgateError {
  static readonly code = "audit_unavailable";
  constructor(message: string) {
    super(AuditUnavailable.code, message);
  }
}
