/**
 * Which refusals of a known caller the audit log records: the ones that say
 * "not you" or "not this" (the API's api.request.denied, the web UI's
 * web.request.denied). A bad parameter or a missing object is the caller's
 * mistake, not an access decision, and is not recorded.
 */
import { isAzgateError, type AzgateError } from "../errors/index.ts";

const AUDITED_CODES = new Set(["access_denied", "unauthenticated", "locked", "cert_untrusted", "payload_too_large"]);

export function isAuditedRefusal(e: unknown): e is AzgateError {
  return isAzgateError(e) && AUDITED_CODES.has(e.code);
}
