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
  | "method_not_allowed"
  | "payload_too_large"
  | "unsupported_media_type"
  | "cert_expired"
  | "cert_untrusted"
  | "proof_missing"
  | "proof_invalid"
  | "proof_mismatch"
  | "proof_replayed"
  | "proof_clock_skew"
  | "token_invalid"
  | "backend_locked"
  | "compare_failed"
  | "trust_required"
  | "connection_failed"
  | "rate_limited"
  | "not_implemented"
  | "internal";

const statusByCode: Record<ErrorCode, number> = {
  bad_parameter: 400,
  config_invalid: 400,
  resource_invalid: 400,
  not_found: 404,
  already_exists: 409,
  access_denied: 403,
  unauthenticated: 401,
  login_failed: 401,
  /** The identity provider's answer did not check out (signature, audience, nonce, issuer, replay...). */
  sso_failed: 401,
  /** Unknown, expired, used or foreign login attempt. */
  sso_attempt_invalid: 403,
  /** Authenticated by the IdP, but the connector maps nothing the user has to a role. */
  sso_no_roles: 403,
  /** Password logins only, after too many failures (not other calls: anyone can fail a login). */
  user_locked: 403,
  /** An administrator's lock (azgate admin lock) matches the user, role, Azure identity or session. */
  locked: 403,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  cert_expired: 401,
  cert_untrusted: 401,
  proof_missing: 401,
  proof_invalid: 401,
  proof_mismatch: 401,
  proof_replayed: 401,
  proof_clock_skew: 401,
  token_invalid: 403,
  backend_locked: 409,
  compare_failed: 409,
  trust_required: 400,
  connection_failed: 502,
  rate_limited: 429,
  not_implemented: 501,
  internal: 500,
};

export class AzgateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
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
