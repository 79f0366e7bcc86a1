/**
 * Query parameters that carry credentials in Azure URLs: a SAS token's
 * signature (`sig`), Functions keys (`code`), and the usual token and secret
 * names. Their values are replaced before a URL is written to the audit log;
 * the names stay, so an auditor still sees that a SAS was used.
 */
const SECRET_PARAMS = new Set(["sig", "code", "token", "access_token", "client_secret", "password", "secret", "key", "api-key", "subscription-key", "x-ms-signature"]);
export const REDACTED = "REDACTED";

export function redactQuery(query: string): string {
  if (!query) return query;
  return query
    .split("&")
    .map((pair) => {
      const eq = pair.indexOf("=");
      const name = eq < 0 ? pair : pair.slice(0, eq);
      let decoded = name;
      try {
        decoded = decodeURIComponent(name.replace(/\+/g, " "));
      } catch {
        // A malformed name is kept as is; its value is still judged by the raw name.
      }
      return eq >= 0 && SECRET_PARAMS.has(decoded.toLowerCase()) ? `${name}=${REDACTED}` : pair;
    })
    .join("&");
}
