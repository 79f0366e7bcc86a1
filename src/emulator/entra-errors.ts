import { randomUUID } from "node:crypto";

/**
 * Errors in Entra ID's shape: clients build their messages from error,
 * error_description (with an AADSTS code), error_codes, timestamp, trace_id
 * and correlation_id.
 */
export function entraError(status: number, error: string, code: number, description: string) {
  const timestamp = new Date().toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  const trace = randomUUID();
  const correlation = randomUUID();
  return {
    status,
    body: {
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${trace} Correlation ID: ${correlation} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: trace,
      correlation_id: correlation,
      error_uri: `https://login.microsoftonline.com/error?code=${code}`,
    },
  };
}
