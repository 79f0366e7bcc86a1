/**
 * x-azgate-error: a refusal's code and message in a header, where a body
 * cannot say it (a refused WebSocket upgrade: the dialler sees only the
 * status and headers) or must stay in Azure's shape for the client (a
 * forwarded request's answer, which the workstation reads to tell "no agent
 * serves the app" from Azure's own 503). One format for both: URL-encoded
 * JSON, {"code": ..., "message": ...}.
 */
import type { AzgateError } from "../errors/index.ts";

export const AZGATE_ERROR_HEADER = "x-azgate-error";

export function errorHeaderValue(err: AzgateError): string {
  return encodeURIComponent(JSON.stringify({ code: err.code, message: err.message }));
}

/** The code and message a header carries; null when it carries none (absent, or not azgate's format). */
export function readErrorHeader(value: string | undefined): { code: string; message: string } | null {
  if (!value) return null;
  try {
    const parsed = JSON.parse(decodeURIComponent(value)) as { code?: unknown; message?: unknown };
    return typeof parsed.code === "string" && typeof parsed.message === "string" ? { code: parsed.code, message: parsed.message } : null;
  } catch {
    return null;
  }
}
